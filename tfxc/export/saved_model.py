"""SavedModel export with flat-tensor serving signatures.

Models on features (all inputs flat, so any TF Serving / gRPC / C++ client can call them):

  serving_default(feat_idx int64 [nnz], feat_val float32 [nnz], row_splits int64 [B+1])
      -> {"label_ids": int64 [B, k], "scores": float32 [B, k], "labels": string [B, k]}
      (k = export.top_k; a head that reaches fewer labels, such as a narrow beam
      search, fills the empty slots with label id -1 and name "")
  top_k(feat_idx, feat_val, row_splits, k int32 []) -> the same with a caller-chosen k
  top_k_exact(feat_idx, feat_val, row_splits, k int32 []) -> as top_k, always from the exact head (only in
      exports served through a label index, `export.index`; `tfxc.export.index_choice`)
  embed(feat_idx, feat_val, row_splits) -> {"embedding": float32 [B, dim], L2-normalised,
      "raw_embedding": float32 [B, dim]}: the encoder's output (without the sparse block a
      sparse-term head reads beside it), for retrieval and verification by cosine

Every signature runs without XLA, so TensorFlow Serving's standard model server serves it: it disables
XLA compilation unless started with the experimental --xla_cpu_compilation_enabled, and a compiled
function then fails ("XLA compilation disabled"). A head whose fixed-k top-k is faster compiled
(`Head.serving_jit_compile`, the label tree's beam search) also gets, for Python readers,

  xla_serve(the inputs of serving_default) -> the outputs of serving_default, the head's part compiled

a function of the saved module beside the signatures (`tf.saved_model.load(path).xla_serve(...)`),
which no server calls. `python -m tfxc.export.ops DIR` lists an export's ops and what a server could
not run (`tfxc.export.ops`).

Row b of the batch is feat_idx[row_splits[b]:row_splits[b+1]] (CSR layout).
`k` of serving_default is fixed at export time (`export.top_k`). Ragged or
sparse signature inputs would be flattened into generated names on reload
(tf-notes §5), hence the explicit CSR triple.

Inputs are validated inside the graph, so every client gets the same clear
`InvalidArgumentError` instead of silently wrong scores: feature values must be
finite, feature ids in [0, num_features), row_splits a CSR index (starts at 0,
never decreases, ends at len(feat_idx)), feat_val as long as feat_idx, k >= 1.
The range check is explicit: on GPU an out-of-range `tf.gather` returns zeros
instead of raising.

Models on raw text (a text encoder, `Encoder.input_kind == "text"`) tokenise inside
the graph, with the same ops as training's `tf.data`; so do models on feature rows trained on data
converted from text, the TF-IDF featurizer fit on train put in front of them (`export.inputs`,
`serving_featurizer`):

  serving_default(text string [B]) -> {"label_ids", "scores", "labels"} as above
  top_k(text string [B], k int32 []) -> the same with a caller-chosen k
  top_k_exact(text string [B], k int32 []) -> the same from the exact head (with a label index only)
  embed(text string [B]) -> {"embedding", "raw_embedding"} as above
  tokenize(text string [B]) -> the encoder's inputs, e.g. {"token_ids": int32 [B, T],
      "padding_mask": bool [B, T]}; a ragged one as NAME_values and NAME_row_splits

Only a text's first `max_bytes` bytes are tokenised (the encoder's config: 64 KiB by
default, 1 MiB for the TF-IDF bag; cut at a character boundary, as training's tokenisation
cuts), so one text's work and memory are bounded whatever its length; the batch's total is
then bounded by its number of texts, which the caller controls as with feature rows.
Loading one needs the tensorflow-text ops registered: `import tensorflow_text` first.

Every signature answers a zero-row request with zero-row outputs of the usual widths
([0, k] ids, scores and labels; [0, dim] embeddings): the graph runs on one empty row
instead and keeps none of it, because some kernels mis-shape an empty batch (a Conv1D
on [0, T, E] returns its input, so TextCNN's features had the embedding's width).

Models on images (an image encoder, `Encoder.input_kind == "image"`) decode and convert inside the graph
(the preset's image converter, as training's `tf.data` does):

  serving_default(image string [B]) -> {"label_ids", "scores", "labels"} as above; each row an encoded
      JPEG, PNG, GIF, BMP, WebP or JPEG XL of any size
  top_k(image string [B], k int32 []) / top_k_exact(image, k) -> as for text
  embed(image string [B]) -> {"embedding", "raw_embedding"}: what face verification compares

This module writes an export; `tfxc.export.served.ServedModel` reads one back (assets, graph, signatures).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from tfxc._tf import tf
from tfxc.compat import EXPORT, stamped
from tfxc.config import config_to_json
from tfxc.export.served import (ASSETS_PATH, CONFIG_ASSET, EXPORT_ASSET, FEATURIZER_ASSET, GRAPH_FILE,
                                LABEL_FREQ_ASSET, LABELS_ASSET)
from tfxc.export.serving_modules import serving_input_kind, serving_module
from tfxc.utils.io import atomic_directory, refuse_to_overwrite_inputs
from tfxc.utils.signals import signals_deferred


def serving_featurizer(model, inputs: str, featurizer_path: str | None):
    """The TF-IDF featurizer to put in front of `model` so that its signatures take strings, or None.

    A model that reads feature rows (`Encoder.input_kind == "features"`) trained on data converted from text
    learnt on the features of `featurizer_path` (`featurizer.json`, fit on train). Its vectorizer as graph ops
    (`tfxc.text.tfidf.TfidfVectorizer`, the same features as the Python featurizer) holds no weights, so it
    can go in front of the model at export instead of in training's input pipeline, where tokenising every
    epoch's rows again costs time (`model.encoder.raw_text` does that, and needs no featurizer here).

    Args:
      inputs: `export.inputs`: "auto", "text" or "features".

    Raises:
      ConfigError: "text" without a featurizer, or "features" for a model that reads raw text or images.
    """
    from tfxc.errors import ConfigError

    kind = model.encoder.input_kind
    if kind != "features":
        if inputs == "features":
            raise ConfigError(f"export.inputs 'features': this model's encoder reads {kind} itself "
                              f"(model.encoder), so its SavedModel takes {kind}")
        return None
    if inputs == "features" or (inputs == "auto" and not featurizer_path):
        return None
    if not featurizer_path:
        raise ConfigError("export.inputs 'text': the model's data has no TF-IDF featurizer (it was not converted "
                          "from JSONL, CSV or TSV text); use 'auto' or 'features'")
    from tfxc.data.text_features import TfidfFeaturizer
    from tfxc.text.tfidf import TfidfVectorizer

    return TfidfVectorizer(TfidfFeaturizer.load(featurizer_path), name="tfidf")


def export_saved_model(model, config, info, out_dir: str, top_k: int | None = None, ensemble=None) -> str:
    """Writes the SavedModel (atomically) with the config, featurizer and train label counts as assets.

    The assets go in `assets.extra/tfxc/` (their names and contents: `tfxc.export.served`, which reads
    them back): config.json, export.json (k, input kind, sizes, train points, the label index chosen by
    `export.index`, an ensemble's combination), labels.txt, featurizer.json (text models) and label_freq.npy
    (the propensities of PSP@k derive from it).

    An ensemble (`ensemble`, a `tfxc.export.ensemble.EnsembleTopK` whose first member is `model`, with
    `config` and `info` the first member's) serves its combined lists through every top-k signature, and
    no label index: each member reads all of its labels.
    """
    from tfxc.data.folds import converted_dir
    from tfxc.data.info import DatasetInfo
    from tfxc.export.index_choice import IndexChoice, choose_label_index

    # The data card the model was restored with (its model dir's dataset/) must outlive the replace of out_dir.
    refuse_to_overwrite_inputs(out_dir, {"model's data": info.dir}, "SavedModel directory")
    if ensemble is None:
        # The validation rows of the index's recall: the card's rows if it has them, else the config's data.
        index = choose_label_index(model, config.export,
                                   [lambda: info, lambda: DatasetInfo.load(converted_dir(config.data))])
    else:
        index = IndexChoice(record={"mode": "off", "reason": "an ensemble"})
    module = serving_module(model, info.label_names(), top_k or config.export.top_k, info.num_features, index,
                            ensemble, serving_featurizer(model, config.export.inputs, info.featurizer_path))
    with atomic_directory(out_dir, marker=GRAPH_FILE) as tmp:
        # TF's writer calls back into Python from C++, which prints and drops an exception raised there.
        with signals_deferred(), model.encoder.tracing_for_serving():  # the signatures are traced here
            tf.saved_model.save(module, tmp, signatures=module.signatures())
        assets = os.path.join(tmp, ASSETS_PATH)
        os.makedirs(assets)
        with open(os.path.join(assets, CONFIG_ASSET), "w", encoding="utf-8") as f:
            f.write(config_to_json(config))
        with open(os.path.join(assets, EXPORT_ASSET), "w", encoding="utf-8") as f:
            json.dump(stamped(EXPORT, {"top_k": module.default_k, "input": serving_input_kind(module),
                       "num_features": info.num_features, "num_labels": info.num_labels,
                       "num_train_points": info.num_points("train"),
                       "index": index.record,
                       **({} if ensemble is None else {"ensemble": {"method": ensemble.method, "list_size":
                                                                      ensemble.list_size,
                                                                      "members": len(ensemble.models)}})}),
                      f, indent=2)
        np.save(os.path.join(assets, LABEL_FREQ_ASSET), np.asarray(info.label_freq, np.int64))
        with open(os.path.join(assets, LABELS_ASSET), "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in info.label_names()))
        if info.featurizer_path:
            shutil.copy(info.featurizer_path, os.path.join(assets, FEATURIZER_ASSET))
    return out_dir

