"""How a `tfxc.predictors.Predictor` reaches a trained model: one backend per artifact kind
(`tfxc.artifacts`): a model directory (its own checkpoints, or its head's linked parts, assembled), an
ensemble of model directories, or a SavedModel.

Each backend has the same small interface: `top_k(x, k) -> (scores float32 [n, k], ids int64 [n, k])`,
`encode(x) -> float32 [n, dim]`, `featurizer()` (the TF-IDF featurizer of a text bag-of-words model, or
None), `export(path, top_k, format)` (`tfxc.export.FORMATS`), and the sizes and label names the API reports. `x` is CSR feature rows, a
list of strings, or `EncodedImages` (`tfxc.predictors.inputs`).
"""

from __future__ import annotations

import numpy as np

from tfxc.errors import TfxcError
from tfxc.export import ONNX, SAVED_MODEL
from tfxc.predictors.inputs import model_batch, signature_inputs

__all__ = ["EnsembleBackend", "ModelDirBackend", "SavedModelBackend"]


class ModelDirBackend:
    """Ranks with the restored Keras model (the head's own evaluation top-k)."""

    def __init__(self, path: str, trust_imports=False, overrides=()):
        from tfxc.model_dir import ModelDir

        self.path = path
        self.model_dir = ModelDir(path)
        config = self.model_dir.load_config(overrides, trust_imports=trust_imports)
        self.config, self.model, self.info = self.model_dir.restore(config, need_rows=False)
        self.num_features, self.num_labels = self.info.num_features, self.info.num_labels
        self.label_names = self.info.label_names()
        self.label_freq, self.num_train_points = self.info.label_freq, self.info.num_points("train")
        self.input_kind = self.model.encoder.input_kind
        self.head_name = self.config.model.head.name  # what a threshold on its scores means
        self._top_k = {}

    def _ranker(self, k):
        if k not in self._top_k:
            self._top_k[k] = self.model.head.evaluation_top_k(self.model, k)
        return self._top_k[k]

    def top_k(self, x, k):
        scores, ids = self._ranker(min(k, self.num_labels))(model_batch(x, self.model.encoder))
        return np.asarray(scores, np.float32), np.asarray(ids, np.int64)

    def encode(self, x):
        return self.model.embedding(model_batch(x, self.model.encoder)).numpy()

    def featurizer(self):
        from tfxc.data.text_features import TfidfFeaturizer

        path = self.info.featurizer_path
        return TfidfFeaturizer.load(path) if path else None

    def export(self, path: str, top_k, format: str = SAVED_MODEL):
        if format == ONNX:
            from tfxc.export.onnx import export_onnx

            return export_onnx(self.model, self.config, self.info, path, top_k=top_k)
        from tfxc.export.saved_model import export_saved_model

        return export_saved_model(self.model, self.config, self.info, path, top_k=top_k)


class EnsembleBackend:
    """Ranks with an ensemble's members (`tfxc.runs.members`), their lists combined as its evaluation combines them."""

    def __init__(self, path: str, trust_imports=False, overrides=()):
        from tfxc.model_dir import ModelDir

        self.path = path
        model_dir = ModelDir(path)
        record = model_dir.ensemble()
        if record is None:  # artifact.json is written after ensemble.json: this is an older, unfinished one
            raise TfxcError(f"{path} is an ensemble whose members have not been combined yet (no ensemble.json): "
                            "finish its training with the same command, or --link-parts")
        self.method, self.list_size = record["method"], record["list_size"]
        self.members = [ModelDirBackend(member, trust_imports, overrides) for member in model_dir.ensemble_members()]
        first = self.members[0]
        for member in self.members[1:]:
            if (member.num_labels, member.num_features, member.input_kind) != (
                    first.num_labels, first.num_features, first.input_kind):
                raise TfxcError(f"{member.path} reads other inputs or ranks other labels than the first member of "
                                f"{path}; an ensemble's members must be trained on the same data")
        self.num_features, self.num_labels, self.label_names = first.num_features, first.num_labels, first.label_names
        self.label_freq, self.num_train_points = first.label_freq, first.num_train_points
        self.input_kind = first.input_kind
        # Combined scores (`tfxc.eval.ensemble`) are the members' by the method's rule, not one head's.
        self.head_name = None

    def _combined(self, lists, k):
        from tfxc.eval.ensemble import combine

        scores, ids = combine([s for s, _ in lists], [i for _, i in lists], self.method, min(k, self.num_labels))
        return scores, ids

    def _width(self, k):
        return min(max(k, self.list_size), self.num_labels)

    def top_k(self, x, k):
        return self._combined([member.top_k(x, self._width(k)) for member in self.members], k)

    def encode(self, x):
        return self.members[0].encode(x)

    def featurizer(self):
        return self.members[0].featurizer()

    def export(self, path: str, top_k, format: str = SAVED_MODEL):
        from tfxc.export.ensemble import EnsembleTopK
        from tfxc.export.onnx import export_onnx
        from tfxc.export.saved_model import export_saved_model

        first = self.members[0]
        ensemble = EnsembleTopK([member.model for member in self.members], self.method, self.list_size,
                                self.num_labels)
        write = export_onnx if format == ONNX else export_saved_model
        return write(first.model, first.config, first.info, path, top_k=top_k, ensemble=ensemble)


class SavedModelBackend:
    """Ranks through the SavedModel's `top_k` signature (what a server runs)."""

    def __init__(self, path: str, trust_imports=False, overrides=()):
        from tfxc.export.served import ServedModel

        if overrides:  # its graph was written with them fixed
            raise TfxcError(f"{path} is a SavedModel: its settings were fixed when it was exported; give its "
                            f"model directory to change {', '.join(overrides)}")
        # Each read raises one TfxcError naming the damaged file (export.json, label_freq.npy, variables, ...).
        self.path = path
        self._served = served = ServedModel(path)
        self.num_features, self.num_labels = served.num_features, served.num_labels
        self.input_kind = served.input_kind
        self.num_train_points = served.num_train_points
        self.label_freq = served.label_freq()
        self._signature = served.signature("top_k")
        self.default_k = served.top_k  # serving_default's k
        self.label_names = served.label_names()
        from tfxc.eval.classification import export_head

        self.head_name = export_head(path).get("name")  # what a threshold on its scores means

    def top_k(self, x, k):
        from tfxc._tf import tf

        out = self._signature(**signature_inputs(x), k=tf.constant(k, tf.int32))
        return out["scores"].numpy(), out["label_ids"].numpy()

    def encode(self, x):
        return self._served.signature("embed")(**signature_inputs(x))["raw_embedding"].numpy()

    def featurizer(self):
        return self._served.featurizer()

    def export(self, path: str, top_k, format: str = SAVED_MODEL):
        """A copy of this SavedModel (its k is fixed: another `top_k` is refused)."""
        from tfxc.predictors.saving import copy_model

        if format == ONNX:
            raise TfxcError(f"{self.path} is a SavedModel, whose signatures start from strings or checked feature "
                            "rows; export the ONNX twin from its model directory")
        if top_k is not None and top_k != self._served.top_k:
            raise TfxcError(f"{self.path} is a SavedModel exported with k {self._served.top_k}; export its model "
                            f"directory for k {top_k}")
        copy_model(self.path, path)
        return path
