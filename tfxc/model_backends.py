"""How a `tfxc.api.Classifier` reaches a trained model: a model directory, an ensemble of them, or a SavedModel.

Each backend has the same small interface: `top_k(x, k) -> (scores float32 [n, k], ids int64 [n, k])`,
`encode(x) -> float32 [n, dim]`, `featurizer()` (the TF-IDF featurizer of a text bag-of-words model, or
None), `export(path, top_k)`, and the sizes and label names the API reports. `x` is CSR feature rows, a
list of strings, or `EncodedImages`.
"""

from __future__ import annotations

import os

import numpy as np

from tfxc.errors import DataError, TfxcError

__all__ = ["EncodedImages", "EnsembleBackend", "ModelDirBackend", "SavedModelBackend", "answered"]


def answered(call, x, start: int, size: int, *args):
    """`call(x[start:start + size], *args)`; images TensorFlow refuses (empty, not an image, damaged, over the
    model's pixel budget) raise one DataError naming each by its row of X (`refused_images`)."""
    rows = x[start:start + size]
    if not isinstance(rows, EncodedImages):
        return call(rows, *args)
    from tfxc._tf import tf

    try:
        return call(rows, *args)
    except tf.errors.InvalidArgumentError as e:
        from tfxc.images.preprocessing import refused_images

        raise refused_images(e, lambda j: call(rows[j:j + 1], *args), len(rows), start) from None


class EncodedImages(list):
    """The encoded images (bytes) of an image model's rows; slices stay `EncodedImages`."""

    def __getitem__(self, index):
        out = super().__getitem__(index)
        return EncodedImages(out) if isinstance(index, slice) else out

    @classmethod
    def of(cls, X) -> "EncodedImages":
        """Encoded images (bytes) as they are, image file paths (str or os.PathLike) read."""
        if not isinstance(X, (list, tuple)):
            raise TfxcError("this model reads images: give a list of encoded images (bytes) or of image file paths")
        out = cls()
        for i, item in enumerate(X):
            if isinstance(item, (bytes, bytearray)):
                out.append(bytes(item))
            elif isinstance(item, (str, os.PathLike)):
                try:
                    with open(item, "rb") as f:
                        out.append(f.read())
                except OSError as e:
                    raise DataError(f"cannot read the image ({e.strerror})", path=os.fspath(item)) from None
            else:
                raise TfxcError(f"X[{i}] is a {type(item).__name__}; an image model reads encoded images (bytes) "
                                "or image file paths")
        return out


class ModelDirBackend:
    """Ranks with the restored Keras model (the head's own evaluation top-k)."""

    def __init__(self, path: str, trust_imports=False):
        from tfxc.model_dir import ModelDir

        self.path = path
        self.model_dir = ModelDir(path)
        config = self.model_dir.load_config(trust_imports=trust_imports)
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

    def _batch(self, x) -> dict:
        """The model's input batch of a list of strings (tokenised as the input pipeline does,
        `Encoder.preprocess`) or of CSR feature rows."""
        from tfxc._tf import tf

        if isinstance(x, EncodedImages):
            return self.model.encoder.preprocess({"image": tf.constant(list(x), tf.string)})
        if isinstance(x, list):
            return self.model.encoder.preprocess({"text": tf.constant(x, tf.string)})
        splits = tf.constant(x.indptr.astype(np.int64))
        return {"feat_idx": tf.RaggedTensor.from_row_splits(tf.constant(x.indices.astype(np.int64)), splits),
                "feat_val": tf.RaggedTensor.from_row_splits(tf.constant(x.data.astype(np.float32)), splits)}

    def top_k(self, x, k):
        scores, ids = self._ranker(min(k, self.num_labels))(self._batch(x))
        return np.asarray(scores, np.float32), np.asarray(ids, np.int64)

    def encode(self, x):
        return self.model.embedding(self._batch(x)).numpy()

    def featurizer(self):
        from tfxc.data.text_features import TfidfFeaturizer

        path = self.info.featurizer_path
        return TfidfFeaturizer.load(path) if path else None

    def export(self, path: str, top_k):
        from tfxc.export.saved_model import export_saved_model

        return export_saved_model(self.model, self.config, self.info, path, top_k=top_k)


class EnsembleBackend:
    """Ranks with an ensemble's members (`tfxc.members`), their lists combined as its evaluation combines them."""

    def __init__(self, path: str, trust_imports=False):
        from tfxc.model_dir import ModelDir

        self.path = path
        model_dir = ModelDir(path)
        record = model_dir.ensemble()
        self.method, self.list_size = record["method"], record["list_size"]
        self.members = [ModelDirBackend(member, trust_imports) for member in model_dir.ensemble_members()]
        first = self.members[0]
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

    def export(self, path: str, top_k):
        from tfxc.export.ensemble import EnsembleTopK
        from tfxc.export.saved_model import export_saved_model

        first = self.members[0]
        ensemble = EnsembleTopK([member.model for member in self.members], self.method, self.list_size,
                                self.num_labels)
        return export_saved_model(first.model, first.config, first.info, path, top_k=top_k, ensemble=ensemble)


class SavedModelBackend:
    """Ranks through the SavedModel's `top_k` signature (what a server runs)."""

    def __init__(self, path: str):
        from tfxc.export.served import ServedModel

        # Each read raises one TfxcError naming the damaged file (export.json, label_freq.npy, variables, ...).
        self.path = path
        self._served = served = ServedModel(path)
        self.num_features, self.num_labels = served.num_features, served.num_labels
        self.input_kind = served.input_kind
        self.num_train_points = served.num_train_points
        self.label_freq = served.label_freq()
        self._signature = served.signature("top_k")
        self.label_names = served.label_names()
        from tfxc.eval.classification import export_head

        self.head_name = export_head(path).get("name")  # what a threshold on its scores means

    @staticmethod
    def _inputs(x) -> dict:
        """The signatures' inputs for a list of strings or CSR feature rows."""
        from tfxc._tf import tf

        if isinstance(x, EncodedImages):
            return {"image": tf.constant(list(x), tf.string)}
        if isinstance(x, list):
            return {"text": tf.constant(x, tf.string)}
        return {"feat_idx": tf.constant(x.indices, tf.int64), "feat_val": tf.constant(x.data, tf.float32),
                "row_splits": tf.constant(x.indptr, tf.int64)}

    def top_k(self, x, k):
        from tfxc._tf import tf

        out = self._signature(**self._inputs(x), k=tf.constant(k, tf.int32))
        return out["scores"].numpy(), out["label_ids"].numpy()

    def encode(self, x):
        return self._served.signature("embed")(**self._inputs(x))["raw_embedding"].numpy()

    def featurizer(self):
        return self._served.featurizer()

    def export(self, path: str, top_k):
        raise TfxcError(f"{self.path} is already a SavedModel")
