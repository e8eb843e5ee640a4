"""The ONNX twin of a trained model: `tfxc.export --format onnx`, `Predictor.export(path, format="onnx")`.

ONNX Runtime has no tokenisers or image decoders that match TensorFlow Text's and TensorFlow's, so the twin
starts where the SavedModel turns its strings into ids. Its inputs are what the encoder reads:

  * feature rows: the CSR triple of the SavedModel's signatures, `feat_idx` int64 [nnz], `feat_val` float32
    [nnz], `row_splits` int64 [B + 1];
  * text: the outputs of the SavedModel's `tokenize` signature under the same names (a ragged one as
    `NAME_values` and `NAME_row_splits`), e.g. `token_ids` int32 [B, T] and `padding_mask` bool [B, T] of
    a WordPiece encoder; the SavedModel, or the files in `tokenizer/`, make them from strings;
  * images: `images` float32 [B, S, S, 3], the pixels the encoder's converter makes of a decoded image.

Its outputs are the head's top k, `label_ids` int64 [B, k] and `scores` float32 [B, k] (ONNX's TopK in the
graph; k fixed at export). Every head converts as it serves: a label tree's beam search is a fixed number of
levels in the graph, MACH's buckets a gather and a sum. An ensemble's members and their combination
(`tfxc.export.ensemble`) go in one graph. The label index is not used: the twin ranks with the exact head.
A head whose products run in bfloat16 serves in float32 (ONNX Runtime's CPU kernels have no bfloat16 MatMul).

Written (atomically) to OUT/:
  model.onnx      the graph and its weights
  onnx.json       its inputs and outputs (names, dtypes, shapes), k, sizes, the opset and converter
  labels.txt      label names, line i = label id i
  tokenizer/      text models: the encoder's settings (settings.json) and its tokeniser's files
"""

from __future__ import annotations

import os

import numpy as np

from tfxc._tf import tf
from tfxc.compat import ONNX, stamped
from tfxc.errors import ConfigError
from tfxc.utils.display import json_text
from tfxc.utils.graph import portable_ops
from tfxc.utils.io import atomic_directory, refuse_to_overwrite_inputs

MODEL_FILE = "model.onnx"
RECORD_FILE = "onnx.json"
LABELS_FILE = "labels.txt"
TOKENIZER_DIR = "tokenizer"
# ONNX opset 17 (ONNX 1.12, 2022): every op the converted heads use, and what ONNX Runtime 1.12+ runs.
DEFAULT_OPSET = 17
# Why a text model's tokeniser is not in the graph (onnx.json says it).
TOKENIZER_STAYS_IN_TF = ("ONNX has no op for TensorFlow Text's WordPiece, SentencePiece and byte-level BPE "
                         "tokenisers or for tfxc's hashed n-grams and TF-IDF featurizer, so the ids come from "
                         "the SavedModel's `tokenize` signature (or a re-implementation from tokenizer/)")
# The sample a text model's tokeniser is traced on, for the shapes and dtypes of the twin's inputs.
_SAMPLE_TEXT = "how do i transfer money to my card"


def _converter():
    """tf2onnx, with the handlers of the TensorFlow ops tfxc's models use that it lacks (`_erfc`)."""
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError("--format onnx needs tf2onnx and onnxruntime: pip install -e '.[onnx]'") from None
    global _HANDLERS_ADDED
    if not _HANDLERS_ADDED:
        from tf2onnx.handler import tf_op

        tf_op("Erfc")(_Erfc)
        _HANDLERS_ADDED = True
    return tf2onnx


_HANDLERS_ADDED = False


class _Erfc:
    """erfc(x) = 1 - erf(x): Keras writes the exact GELU (BERT's) with TensorFlow's Erfc, which tf2onnx 1.17
    does not map; ONNX has Erf from opset 9."""

    @classmethod
    def version_9(cls, ctx, node, **kwargs):
        from tf2onnx import utils

        x = node.input[0]
        dtype = ctx.get_dtype(x)
        erf = ctx.make_node("Erf", [x], shapes=[ctx.get_shape(x)], dtypes=[dtype])
        one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, utils.map_onnx_to_numpy_type(dtype)))
        node.type = "Sub"
        ctx.replace_inputs(node, [one.output[0], erf.output[0]])


def _flat_specs(sample: dict, fixed_rows: bool = False) -> tuple[list, list]:
    """The twin's inputs for a batch like `sample` (a dict of tensors and ragged tensors): TensorSpecs with
    every dimension unknown (`fixed_rows`: all but the first, for pixels of a fixed size), and for each the
    (key, part) it rebuilds (part None, "values" or "row_splits")."""
    specs, parts = [], []
    for key, value in sample.items():
        if isinstance(value, tf.RaggedTensor):
            if value.ragged_rank != 1:
                raise ConfigError(f"the encoder's input {key!r} is ragged in {value.ragged_rank} dimensions; "
                                  "the ONNX export flattens one")
            specs += [tf.TensorSpec([None] * value.flat_values.shape.rank, value.dtype, name=f"{key}_values"),
                      tf.TensorSpec([None], value.row_splits.dtype, name=f"{key}_row_splits")]
            parts += [(key, "values"), (key, "row_splits")]
        else:
            # Keras picks a convolution's kernel by the input's static channels: an image's stay known.
            shape = [None, *value.shape[1:]] if fixed_rows else [None] * value.shape.rank
            specs.append(tf.TensorSpec(shape, value.dtype, name=key))
            parts.append((key, None))
    return specs, parts


def _rebuilt(flat, parts) -> dict:
    """The encoder's batch from the twin's flat inputs (the inverse of `_flat_specs`)."""
    batch, values = {}, {}
    for tensor, (key, part) in zip(flat, parts):
        if part is None:
            batch[key] = tensor
        elif part == "values":
            values[key] = tensor
        else:
            batch[key] = tf.RaggedTensor.from_row_splits(values.pop(key), tensor, validate=False)
    return batch


class _Inputs:
    """How the twin's inputs become the encoder's batch: `specs` (the input signature) and `batch(*flat)`."""

    def __init__(self, model, featurizer):
        kind = "text" if featurizer is not None else model.encoder.input_kind
        self.kind = kind
        if kind == "features":
            # The SavedModel's CSR triple: one row_splits for ids and values.
            self.specs = [tf.TensorSpec([None], tf.int64, name="feat_idx"),
                          tf.TensorSpec([None], tf.float32, name="feat_val"),
                          tf.TensorSpec([None], tf.int64, name="row_splits")]
            self._parts = None
            return
        if kind == "text":
            texts = tf.constant([_SAMPLE_TEXT, "hi"])
            sample = featurizer(texts) if featurizer is not None else model.encoder.tokenize(texts)
        elif kind == "image":
            from tfxc.export.serving_modules import ImageServingModule

            sample = model.encoder.decode_images(tf.constant([ImageServingModule.filler]))
        else:
            raise ConfigError(f"no ONNX inputs for an encoder reading {kind!r}")
        self.specs, self._parts = _flat_specs(sample, fixed_rows=kind == "image")

    def batch(self, flat) -> dict:
        if self._parts is None:
            feat_idx, feat_val, row_splits = flat
            return {"feat_idx": tf.RaggedTensor.from_row_splits(feat_idx, row_splits, validate=False),
                    "feat_val": tf.RaggedTensor.from_row_splits(feat_val, row_splits, validate=False)}
        return _rebuilt(flat, self._parts)


def _ranker(model, inputs: _Inputs, k: int, ensemble=None):
    """The graph function the twin is converted from: the flat inputs -> {"label_ids", "scores"} of the top k."""
    head = model.head

    def top_k(*flat):
        batch = inputs.batch(flat)
        if ensemble is not None:
            scores, ids = ensemble(batch, k)
        else:
            with head.products_in(tf.float32):
                scores, ids = head.top_k(model.encoder(batch, training=False), k)
        return {"label_ids": tf.cast(ids, tf.int64), "scores": tf.cast(scores, tf.float32)}

    return tf.function(top_k, input_signature=inputs.specs, autograph=False)


def _fold_captured_tensors(proto, concrete) -> None:
    """Makes constants of the graph inputs tf2onnx left for tensors the traced function captured rather than
    built (a keras-hub ViT's position ids, made once when the layer was built), from their values."""
    from onnx import numpy_helper

    captured = {internal.name: external for external, internal in concrete.graph.captures}
    for value in list(proto.graph.input):
        if value.name in captured:
            array = np.asarray(tf.convert_to_tensor(captured[value.name]).numpy())
            proto.graph.initializer.append(numpy_helper.from_array(array, value.name))
            proto.graph.input.remove(value)


def _check(proto, opset: int) -> None:
    """Refuses a converted graph that ONNX Runtime could not load: tf2onnx leaves a TensorFlow op it cannot
    convert in the graph as it is, and only logs it.

    Raises:
      ConfigError: naming those ops.
    """
    import onnx

    def nodes(graph):  # with those of the branches and loop bodies (If, Loop) inside
        for node in graph.node:
            yield node
            for attribute in node.attribute:
                for body in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                    yield from nodes(body)

    unknown = sorted({node.op_type for node in nodes(proto.graph)
                      if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type, opset)})
    if unknown:
        raise ConfigError(f"the model uses TensorFlow ops that have no ONNX form at opset {opset}: "
                          f"{', '.join(unknown)}; this model has no ONNX twin")
    onnx.checker.check_model(proto)


def _io(values) -> list[dict]:
    """onnx.json's description of a graph's inputs or outputs (ONNX ValueInfo protos)."""
    from onnx import helper

    out = []
    for value in values:
        shape = value.type.tensor_type.shape
        out.append({"name": value.name, "dtype": helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name,
                    "shape": [d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in shape.dim]})
    return out


def export_onnx(model, config, info, out_dir: str, top_k: int | None = None, ensemble=None,
                opset: int = DEFAULT_OPSET) -> str:
    """Writes the ONNX twin of `model` (see the module docstring) to `out_dir`, atomically; returns its path.

    `ensemble`: a `tfxc.export.ensemble.EnsembleTopK` whose first member is `model` (`config` and `info` the
    first member's): the twin then ranks with the combined lists.

    Raises:
      ConfigError: tf2onnx is not installed, or the encoder's inputs have no flat form.
    """
    from tfxc.data.info import FEATURIZER_FILE
    from tfxc.export.saved_model import serving_featurizer

    tf2onnx = _converter()
    refuse_to_overwrite_inputs(out_dir, {"model's data": info.dir}, "ONNX directory")
    featurizer = serving_featurizer(model, config.export.inputs, info.featurizer_path)
    inputs = _Inputs(model, featurizer)
    k = min(top_k or config.export.top_k, info.num_labels)
    function = _ranker(model, inputs, k, ensemble)
    with atomic_directory(out_dir, marker=MODEL_FILE) as tmp:
        with model.encoder.tracing_for_serving(), portable_ops():
            proto, _ = tf2onnx.convert.from_function(function, input_signature=inputs.specs, opset=opset)
            _fold_captured_tensors(proto, function.get_concrete_function())
        _check(proto, opset)
        with open(os.path.join(tmp, MODEL_FILE), "wb") as f:
            f.write(proto.SerializeToString())
        with open(os.path.join(tmp, LABELS_FILE), "w", encoding="utf-8") as f:
            f.write("".join(f"{name}\n" for name in info.label_names()))
        record = {"input": inputs.kind, "inputs": _io(proto.graph.input), "outputs": _io(proto.graph.output),
                  "top_k": k, "num_labels": info.num_labels, "num_features": info.num_features,
                  "head": config.model.head.name, "opset": opset, "converter": f"tf2onnx {tf2onnx.__version__}",
                  **({} if ensemble is None else {"ensemble": {"method": ensemble.method,
                                                               "members": len(ensemble.models)}})}
        if inputs.kind == "text":
            record["tokenizer"] = {"in_graph": False, "why": TOKENIZER_STAYS_IN_TF, "dir": TOKENIZER_DIR}
            _write_tokenizer(os.path.join(tmp, TOKENIZER_DIR), config, model.encoder, info.featurizer_path,
                             FEATURIZER_FILE)
        with open(os.path.join(tmp, RECORD_FILE), "w", encoding="utf-8") as f:
            f.write(json_text(stamped(ONNX, record), indent=2) + "\n")
    return out_dir


def _write_tokenizer(directory: str, config, encoder, featurizer_path: str | None, featurizer_file: str) -> None:
    """tokenizer/: settings.json (the encoder's config section: lengths, casing, byte cap, hashing), the files
    its tokeniser reads (`Encoder.save_tokenizer`) and the TF-IDF featurizer of text converted to features."""
    import dataclasses
    import shutil

    os.makedirs(directory)
    with open(os.path.join(directory, "settings.json"), "w", encoding="utf-8") as f:
        f.write(json_text({"encoder": dataclasses.asdict(config.model.encoder)}, indent=2) + "\n")
    if featurizer_path:
        shutil.copy(featurizer_path, os.path.join(directory, featurizer_file))
    encoder.save_tokenizer(directory)
