"""python -m tfxc.extract: images -> dense features of a keras-hub vision backbone, in tfxc's dense layout.

  # a folder per class (ImageNet's layout), a ResNet-50 preset saved to disk, 10% val and 10% test rows
  python -m tfxc.extract --folder /data/imagenet/train --preset presets/resnet_50_imagenet --out data/inet-r50
  # webdataset shards with integer class ids in .cls entries (Glint360K), split by a file of ref,split lines
  python -m tfxc.extract --webdataset '/data/glint360k/shard-{000000..001366}.tar' --preset presets/face_r50 \\
      --split-file glint_splits.csv --out data/glint360k
  # insightface's MXNet RecordIO set (train.rec + train.idx), identity ids from the records, an IResNet preset
  python -m tfxc.extract --recordio /data/ms1m-retinaface/train.rec --preset presets/iresnet_r50 --out data/ms1m
  # a CSV catalog of paths and taxa (TreeOfLife-10M), the species level, a CLIP image embedding normalised
  python -m tfxc.extract --catalog /data/tol/catalog.csv --path-column path --label-column species \\
      --preset presets/bioclip --normalize --out data/treeoflife

The output (`tfxc.images.feature_store`) trains with every head: `python -m tfxc.train --data-dir OUT ...`
or `--train OUT`. Images stream through the graph in batches (decoded and converted by the preset's own
image converter, `tfxc.images.preprocessing`), with a progress line and the time left; the features are
written in row chunks, and a run killed at any point resumes where its last chunk ended when started
again with the same arguments, to byte-identical files (the batches are the same ones).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

import numpy as np

from tfxc.cli import Progress, main_wrapper, non_negative_int, positive_int, setup_logging
from tfxc.errors import ConfigError, DataError, TfxcError
from tfxc.images import DEFAULT_MAX_PIXELS
from tfxc.images.feature_store import FeatureStore, parse_fractions, read_split_file, split_by_rows
from tfxc.images.recordio import RecordIOSource
from tfxc.images.sources import SPLITS, FolderSource, WebDatasetSource, open_source
from tfxc.utils.display import json_text
from tfxc.utils.io import refuse_to_overwrite_inputs
from tfxc.utils.locks import DirectoryLock
from tfxc.utils.memory import peak_rss_gb
from tfxc.utils.pipeline_errors import PipelineErrors

DEFAULT_SPLIT = "train=0.8,val=0.1,test=0.1"


def plan_rows(source, split: str, split_file: str, seed: int):
    """(labels int64 [N], splits int8 [N], class names or None) of a pass over the source without bytes.

    Splits: a split file's if given, else `split`'s fractions if given, else the source's own (split
    folders, a split column), else `DEFAULT_SPLIT`'s.
    """
    by_file = read_split_file(split_file) if split_file else None
    labels, own, refs_splits = [], [], []
    for row, item in enumerate(source.items(with_bytes=False)):
        labels.append(item.label)
        own.append(item.split)
        if by_file is not None:
            if item.ref not in by_file:
                raise DataError(f"image {row} ({item.ref}) is not in the split file", path=split_file)
            refs_splits.append(SPLITS.index(by_file[item.ref]))
    if not labels:
        raise DataError("the source holds no image", field=json_text(source.describe())[:200])
    if by_file is not None:
        splits = np.array(refs_splits, np.int8)
    elif split or None in own:
        splits = split_by_rows(len(labels), parse_fractions(split or DEFAULT_SPLIT), seed)
    else:
        splits = np.array([SPLITS.index(s) for s in own], np.int8)
    if source.label_kind == "id":
        return np.array(labels, np.int64), splits, None
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[name] for name in labels], np.int64), splits, names


def build_features(preset: str, pooling: str, image_size: int, precision: str):
    """(the converter, a `VisionFeatures` layer) of a preset, bfloat16 where `precision` resolves to it."""
    from tfxc import precision as precisions
    from tfxc.images.backbones import VisionFeatures, load_vision_backbone
    from tfxc.images.preprocessing import load_converter

    mixed = precisions.resolve({"bfloat16": "mixed_bfloat16"}.get(precision, precision)) == "mixed_bfloat16"
    features = VisionFeatures(load_vision_backbone(preset, mixed_bfloat16=mixed), pooling)
    return load_converter(preset, image_size), features


class _Recent:
    """The last images handed to the input pipeline, to name the one a failed batch could not decode."""

    def __init__(self, size: int):
        self.items = collections.deque(maxlen=size)

    def culprit(self, convert) -> str | None:
        """"ref: reason" of the first recent image `convert` refuses, or None."""
        from tfxc._tf import tf
        from tfxc.images.preprocessing import reason_of

        for ref, data in self.items:
            try:
                convert(tf.constant(data))
            except (tf.errors.InvalidArgumentError, ValueError) as e:
                return f"{ref}: {reason_of(e)}"
        return None


def image_batches(source, converter, batch_size: int, skip: int, recent: _Recent, errors: PipelineErrors,
                  max_pixels: int):
    """float32 [b, S, S, 3] batches of the source's images from the `skip`-th on, decoded in `tf.data` (an
    image over `max_pixels` refused before its decoding); read them inside `errors.unwrapped()`, where an
    image the source cannot read raises its own DataError."""
    from tfxc._tf import tf
    from tfxc.images.preprocessing import image_inputs

    def encoded():
        for item in source.items(with_bytes=True, skip=skip):
            recent.items.append((item.ref, item.data))
            yield item.data

    ds = tf.data.Dataset.from_generator(errors.generator(encoded), output_signature=tf.TensorSpec([], tf.string))
    ds = ds.map(image_inputs(converter, max_pixels, setting="--max-pixels"), num_parallel_calls=2,
                deterministic=True)
    return ds.batch(batch_size).prefetch(2)


def refuse_output_over_source(out: str, source) -> None:
    """Raises a `TfxcError` when `out` is or holds what the source reads (an image folder, a catalog and its
    image root, a shard), or lies inside an image folder, whose listing it would join (its class folders
    then read as an empty split layout)."""
    if isinstance(source, WebDatasetSource):
        inputs = {f"webdataset shard {i}": shard for i, shard in enumerate(source.shards)}
    elif isinstance(source, FolderSource):
        inputs = {"image folder": source.root}
    elif isinstance(source, RecordIOSource):
        inputs = {"RecordIO file": source.faces.rec_path, "RecordIO index": source.faces.idx_path}
    else:
        inputs = {"catalog": source.path, "catalog's image root": source.root}
    refuse_to_overwrite_inputs(out, inputs, "--out")
    if isinstance(source, FolderSource):
        root = os.path.realpath(source.root)
        if os.path.realpath(out).startswith(root.rstrip(os.sep) + os.sep):
            raise TfxcError(f"--out {out} is inside the image folder {source.root}; the extraction would be written "
                            "among the images it reads, choose a path outside it")


def extract(args) -> dict:
    if args.recordio and (args.folder or args.webdataset or args.catalog):
        raise ConfigError("give exactly one image source: --recordio reads a RecordIO set alone")
    source = RecordIOSource(args.recordio) if args.recordio else open_source(
        args.folder, args.webdataset, args.catalog, label_entry=args.label_entry, path_column=args.path_column,
        label_column=args.label_column, split_column=args.split_column, root=args.root)
    refuse_output_over_source(args.out, source)
    settings = {"source": source.describe(), "preset": os.path.abspath(args.preset), "pooling": args.pooling,
                "image_size": args.image_size, "batch_size": args.batch_size, "precision": args.precision,
                "split": args.split, "split_file": os.path.abspath(args.split_file) if args.split_file else "",
                "seed": args.seed, "normalize": args.normalize}
    lock = DirectoryLock(args.out, os.path.join(args.out, ".extract.lock"), "a tfxc.extract run")
    try:
        return _extract(source, settings, args)
    finally:
        lock.release()


def _extract(source, settings, args) -> dict:
    from tfxc._tf import tf

    store = FeatureStore(args.out, settings)
    if store.finished_settings() == settings and store.saved_settings() is None:
        with open(os.path.join(args.out, "extract.json"), encoding="utf-8") as f:
            return {**json.load(f), "already_done": True}
    if store.finished_settings() not in (None, settings) and not args.restart:
        raise TfxcError(f"{args.out} holds an extraction made with other settings; add --restart to replace it")
    converter, features = build_features(args.preset, args.pooling, args.image_size, args.precision)
    if store.saved_settings() == settings and not args.restart:
        labels, splits = store.load_plan()
        done = store.done()
    else:
        if store.saved_settings() is not None and not args.restart:
            raise TfxcError(f"{args.out} holds a partial extraction made with other settings; rerun with those, "
                            "or add --restart to start over")
        labels, splits, names = plan_rows(source, args.split, args.split_file, args.seed)
        store.write_plan(labels, splits, (item.ref for item in source.items(with_bytes=False)), names,
                         features.output_dim)
        done = 0
    store.open()
    total, height = len(labels), converter.image_size[0]
    embed = tf.function(lambda x: features(x, training=False), reduce_retracing=True,
                        input_signature=[tf.TensorSpec([None, height, converter.image_size[1], 3], tf.float32)])
    offsets = np.array([np.sum(splits[:done] == i) for i in range(len(SPLITS))], np.int64)
    recent, errors = _Recent(4 * args.batch_size + 64), PipelineErrors()
    progress, position = Progress("extracted", total=total, start=done), done
    started, last_commit, warm = time.time(), done, None  # warm: (time, rows) after the first batch (tracing)
    try:
        with errors.unwrapped():
            batches = iter(image_batches(source, converter, args.batch_size, done, recent, errors, args.max_pixels))
        for images in _read(batches, errors):
            h = embed(images).numpy()
            warm = warm or (time.time(), position + len(h))
            if args.normalize:
                h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
            rows = splits[position:position + len(h)]
            store.write(rows, offsets, h)
            offsets += np.bincount(rows, minlength=len(SPLITS))
            position += len(h)
            progress.update(len(h))
            if position - last_commit >= args.chunk_rows:
                store.commit(position)
                last_commit = position
    except tf.errors.InvalidArgumentError as e:
        from tfxc.images.preprocessing import image_inputs, reason_of

        bad = recent.culprit(image_inputs(converter, args.max_pixels, setting="--max-pixels"))
        raise DataError(f"cannot use an image: {bad}" if bad else
                        f"cannot use an image after image {position}: {reason_of(e)}", field="image") from None
    finally:
        progress.close()
    if position != total:
        raise DataError(f"the source yielded {position} images, but its first pass counted {total}; it changed "
                        "during the extraction")
    finished = time.time()
    seconds = finished - started
    steady = (position - warm[1]) / max(finished - warm[0], 1e-9) if warm and position > warm[1] else None
    card = {"images": total, "dim": features.output_dim, "num_labels": int(labels.max()) + 1,
            "splits": {s: int(np.sum(splits == i)) for i, s in enumerate(SPLITS)}, "pooling": features.pooling,
            "backbone": type(features.backbone).__name__, "image_size": list(converter.image_size),
            "resumed_at": done, "seconds": round(seconds, 2),
            "images_per_s": round((total - done) / max(seconds, 1e-9), 2),
            "steady_images_per_s": None if steady is None else round(steady, 2), "peak_rss_gb": round(peak_rss_gb(), 3)}
    store.finish(card)
    return card


def _read(batches, errors: PipelineErrors):
    """The batches of an iterator over a dataset, each read inside `errors.unwrapped()`."""
    while True:
        with errors.unwrapped():
            try:
                images = next(batches)
            except StopIteration:
                return
        yield images


def config_defaults(parser, path: str) -> dict:
    """The options a --config file sets: {dest: value}, each key checked against the parser's options."""
    from tfxc.registry import did_you_mean
    from tfxc.utils.json_files import read_json_object

    known = {action.dest: action for action in parser._actions if action.dest not in ("help", "config")}
    out = {}
    for key, value in read_json_object(path, "the extraction config").items():
        if key == "comment":
            continue
        dest = key.replace("-", "_")
        if dest not in known:
            raise TfxcError(f"{path}: unknown option '{key}'{did_you_mean(dest, known)}; options: "
                            f"{', '.join(sorted(known))}")
        expected = type(known[dest].default)
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise TfxcError(f"{path}: '{key}' must be a {expected.__name__}, got {json_text(value)}")
        out[dest] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tfxc.extract", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sources = parser.add_argument_group("the images (one source)")
    sources.add_argument("--folder", default="", help="ROOT/<class>/<image> (or ROOT/{train,val,test}/<class>/...)")
    sources.add_argument("--webdataset", default="",
                         help="tar shards: a directory, a glob or a brace range (shard-{000..099}.tar)")
    sources.add_argument("--label-entry", default="cls",
                         help="the webdataset entry holding the label: cls (an integer class id) or a name entry (txt)")
    sources.add_argument("--catalog", default="", help="a CSV file with a path and a label column per image")
    sources.add_argument("--path-column", default="")
    sources.add_argument("--label-column", default="", help="the catalog's class column (e.g. a taxon level)")
    sources.add_argument("--split-column", default="", help="the catalog's column of train/val/test, if any")
    sources.add_argument("--root", default="", help="what catalog paths are relative to (default: its folder)")
    sources.add_argument("--recordio", default="", help="insightface's MXNet RecordIO set: train.rec (train.idx "
                                                        "beside it), labels from the records' headers")
    parser.add_argument("--config", default="", help="a JSON object of these options (their long names, - or _), "
                                                     "e.g. configs/extract_glint360k.json; flags given override it")
    parser.add_argument("--preset", default="", help="a keras-hub image backbone preset directory (required)")
    parser.add_argument("--out", default="", help="the output directory ({train,val,test}/features.npy ...; required)")
    parser.add_argument("--pooling", default="auto", help="auto, avg, max, cls or embedding (tfxc.images.backbones)")
    parser.add_argument("--image-size", type=non_negative_int, default=0,
                        help="resize to this square size (default: the preset's)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="auto: bfloat16 matmuls where the machine has them natively")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise each feature vector")
    parser.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                        help="refuse an image of more pixels (width x height, read from its header before decoding; "
                             "default: Pillow's limit, %(default)s)")
    parser.add_argument("--split", default="", help=f"row fractions, e.g. {DEFAULT_SPLIT} (the default where the "
                                                    "source names no splits)")
    parser.add_argument("--split-file", default="", help="a CSV of ref,split lines, one per image")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="the seed of --split's row draw")
    parser.add_argument("--chunk-rows", type=positive_int, default=4096, help="rows between resume points")
    parser.add_argument("--restart", action="store_true", help="drop a partial extraction made with other settings")
    return parser


@main_wrapper
def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        parser.set_defaults(**config_defaults(parser, args.config))
        args = parser.parse_args(argv)
    if not (args.preset and args.out):
        parser.error("--preset and --out are required (on the command line or in --config)")
    if args.split and args.split_file:
        parser.error("give --split or --split-file, not both")
    setup_logging()
    print(json_text(extract(args), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
