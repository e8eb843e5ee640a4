"""Open-set detection and verification of margin-head models: intents (CLINC150) and faces (pair lists).

  # 120 of the 150 intents for training, the other 30 held out for verification (every 5th of labels.txt):
  python tools/margin_eval.py split --data ../shared/data/clinc150 --out runs/data/clinc120-src
  # a model trained on the 150 intents: in-scope accuracy, and out-of-scope detection on oos/test.jsonl
  python tools/margin_eval.py openset --model-dir runs/margin/clinc150_arcface --data ../shared/data/clinc150
  # a model trained on the 120 intents: verification on pairs of the 30 held-out intents' test texts
  python tools/margin_eval.py verify --model-dir runs/margin/clinc120_arcface --pairs runs/data/clinc120-src/heldout.jsonl
  # an image model (a model directory or its SavedModel) on LFW's protocol: 10-fold accuracy, TAR@FAR, ROC
  python tools/margin_eval.py faces --model-dir runs/webface_mhs_arcface --pairs /data/lfw/pairs.txt --images /data/lfw

Open set: the 4,500 in-scope test texts are positives, the 1,000 out-of-scope test texts negatives; the
scores are the maximum softmax probability (MSP, Hendrycks & Gimpel 2017) and, for cosine heads, the
maximum cosine to a class weight. Verification: cosine similarity of the L2-normalised embeddings
(the SavedModel's `embed` output) over every pair of held-out texts; genuine pairs share an intent.
Faces: the pairs of a protocol file (LFW's pairs.txt, or a CSV of image_a,image_b,same[,fold]), scored by
`python -m tfxc.evaluate --pairs` (`tfxc.eval.verification`).
Each command prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str, records: list[dict]) -> None:
    from tfxc.utils.display import json_text
    from tfxc.utils.io import atomic_writer

    with atomic_writer(path) as f:
        for record in records:
            f.write(json_text(record) + "\n")


# === split ===
def split(args) -> dict:
    """Writes train/valid/test.jsonl and labels.txt of the kept intents, and heldout.jsonl (the held-out test rows)."""
    from tfxc.errors import TfxcError
    from tfxc.utils.io import atomic_writer, refuse_to_overwrite_inputs

    # `--out` = `--data` would write the kept intents over the full data set it reads.
    files = ["train.jsonl", "valid.jsonl", "test.jsonl", "labels.txt"]
    try:
        for name in files + ["heldout.jsonl"]:
            refuse_to_overwrite_inputs(os.path.join(args.out, name),
                                       {f"--data file {n}": os.path.join(args.data, n) for n in files}, "--out file")
    except TfxcError as e:
        raise SystemExit(f"margin_eval: error: {e}") from None
    with open(os.path.join(args.data, "labels.txt"), encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    held = set(labels[args.offset::args.every])
    kept = [name for name in labels if name not in held]
    counts = {}
    for name in ("train", "valid", "test"):
        rows = read_jsonl(os.path.join(args.data, f"{name}.jsonl"))
        write_jsonl(os.path.join(args.out, f"{name}.jsonl"), [r for r in rows if r["labels"][0] not in held])
        if name == "test":
            heldout = [r for r in rows if r["labels"][0] in held]
            write_jsonl(os.path.join(args.out, "heldout.jsonl"), heldout)
            counts["heldout"] = len(heldout)
        counts[name] = sum(r["labels"][0] not in held for r in rows)
    with atomic_writer(os.path.join(args.out, "labels.txt")) as f:
        f.write("\n".join(kept) + "\n")
    return {"kept_intents": len(kept), "held_out_intents": len(held), **counts}


# === model outputs ===
def text_outputs(model, texts: list[str], batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 [n, dim] as the encoder gives them, all-label logits float32 [n, L])."""
    from tfxc._tf import tf
    from tfxc.heads.mhs import MhsHead

    embed = tf.function(lambda batch: model.encoder(batch, training=False), reduce_retracing=True)
    features, logits = [], []
    for start in range(0, len(texts), batch_size):
        batch = model.encoder.preprocess({"text": tf.constant(texts[start:start + batch_size])})
        h = embed(batch)
        features.append(h.numpy())
        z = model.head.all_logits(h) if isinstance(model.head, MhsHead) else model.head(h)
        logits.append(tf.cast(z, tf.float32).numpy())
    return np.concatenate(features), np.concatenate(logits)


def restore(model_dir: str, trust_imports=False):
    """(model, data card) of a trained text model; the directory's `imports` run only when trusted (`--trust-imports`)."""
    from tfxc.cli import keep_out_of_import_path
    from tfxc.model_dir import ModelDir

    keep_out_of_import_path([model_dir])
    directory = ModelDir(model_dir)
    config, model, info = directory.restore(directory.load_config(trust_imports=trust_imports), need_rows=False)
    if model.encoder.input_kind != "text":
        raise SystemExit(f"{model_dir}: the model's encoder does not read raw text")
    return model, info


def max_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return 1.0 / np.exp(z).sum(axis=1)


# === openset ===
def openset(args) -> dict:
    from tfxc.eval.open_set import auroc, fpr_at_tpr

    model, info = restore(args.model_dir, args.trust_imports)
    index = {name: i for i, name in enumerate(info.label_names())}
    inscope = read_jsonl(os.path.join(args.data, "test.jsonl"))
    oos = read_jsonl(os.path.join(args.data, "oos", "test.jsonl"))
    _, z_in = text_outputs(model, [r["text"] for r in inscope])
    _, z_out = text_outputs(model, [r["text"] for r in oos])
    gold = np.array([index[r["labels"][0]] for r in inscope])
    out = {"model_dir": args.model_dir, "in_scope": len(inscope), "out_of_scope": len(oos),
           "accuracy": float(np.mean(np.argmax(z_in, axis=1) == gold) * 100)}
    msp_in, msp_out = max_softmax(z_in), max_softmax(z_out)
    out.update(auroc_msp=auroc(msp_in, msp_out) * 100, fpr95_msp=fpr_at_tpr(msp_in, msp_out) * 100)
    margin = getattr(model.head, "cosine_margin", None)
    if margin is not None:
        cos_in, cos_out = z_in.max(axis=1) / margin.scale, z_out.max(axis=1) / margin.scale
        out.update(auroc_maxcos=auroc(cos_in, cos_out) * 100, fpr95_maxcos=fpr_at_tpr(cos_in, cos_out) * 100)
    return out


# === verify ===
def verify(args) -> dict:
    from tfxc.eval.open_set import auroc, pair_similarities, tar_at_far

    model, info = restore(args.model_dir, args.trust_imports)
    rows = read_jsonl(args.pairs)
    seen = set(info.label_names())
    overlap = {r["labels"][0] for r in rows} & seen
    if overlap:
        raise SystemExit(f"{args.pairs}: intents the model was trained on: {sorted(overlap)[:5]}")
    names = sorted({r["labels"][0] for r in rows})
    groups = np.array([names.index(r["labels"][0]) for r in rows])
    embeddings, _ = text_outputs(model, [r["text"] for r in rows])
    genuine, impostor = pair_similarities(embeddings, groups)
    return {"model_dir": args.model_dir, "texts": len(rows), "intents": len(names), "genuine_pairs": int(genuine.size),
            "impostor_pairs": int(impostor.size), "tar@far=1e-2": tar_at_far(genuine, impostor, 1e-2) * 100,
            "tar@far=1e-3": tar_at_far(genuine, impostor, 1e-3) * 100, "pair_auroc": auroc(genuine, impostor) * 100}


# === faces ===
def faces(args) -> dict:
    from tfxc.evaluate import verify_pairs

    return verify_pairs(args.model_dir, args.pairs, args.images, args.roc, args.trust_imports)


def main(argv=None) -> int:
    from tfxc.cli import add_trust_args, non_negative_int, positive_int
    from tfxc.utils.display import json_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("split", help="hold intents out of training for verification")
    p.add_argument("--data", required=True, help="the clinc150 directory (train/valid/test.jsonl, labels.txt)")
    p.add_argument("--out", required=True)
    p.add_argument("--every", type=positive_int, default=5, help="hold out every N-th intent of labels.txt")
    p.add_argument("--offset", type=non_negative_int, default=0)
    p = commands.add_parser("openset", help="in-scope accuracy and out-of-scope detection")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", required=True, help="the clinc150 directory (test.jsonl and oos/test.jsonl)")
    add_trust_args(p)
    p = commands.add_parser("verify", help="TAR@FAR on pairs of texts of intents unseen in training")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--pairs", required=True, help="JSONL of the held-out intents' texts (split's heldout.jsonl)")
    add_trust_args(p)
    p = commands.add_parser("faces", help="face verification on a pair list: 10-fold accuracy, TAR@FAR, ROC")
    p.add_argument("--model-dir", required=True, help="an image model's directory or SavedModel")
    p.add_argument("--pairs", required=True, help="LFW's pairs.txt, or a CSV of image_a,image_b,same[,fold]")
    p.add_argument("--images", default="", help="the folder the pairs' images are under")
    p.add_argument("--roc", default=None, help="also write the ROC (far,tar,threshold) to this CSV")
    add_trust_args(p)
    args = parser.parse_args(argv)
    result = {"split": split, "openset": openset, "verify": verify, "faces": faces}[args.command](args)
    print(json_text(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
