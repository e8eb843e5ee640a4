"""The one place a user's rows become a model's inputs, whatever holds the model.

Rows arrive as a SciPy sparse matrix or a dense 2-D array of features, a list of strings, or (for an
image model) encoded images or image paths. `rows_of` turns them into one of three forms a reader takes
(`Rows`): CSR feature rows, a list of strings (tokenised in the graph by a text encoder, or featurized by
the model's TF-IDF featurizer when it reads feature rows), or `EncodedImages`. From those,
`signature_inputs` gives a SavedModel signature's inputs and `model_batch` a Keras model's batch.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.sparse

from tfxc.data.csr import as_csr
from tfxc.data.files import check_strings
from tfxc.errors import DataError, TfxcError

def answered(call, x, start: int, size: int, *args, name=None):
    """`call(x[start:start + size], *args)`; images TensorFlow refuses (empty, not an image, damaged, over the
    model's pixel budget) raise one DataError naming each by its row of X, or by `name(row)` (`refused_images`)."""
    rows = x[start:start + size]
    if not isinstance(rows, EncodedImages):
        return call(rows, *args)
    from tfxc._tf import tf

    try:
        return call(rows, *args)
    except tf.errors.InvalidArgumentError as e:
        from tfxc.images.preprocessing import refused_images

        named = None if name is None else (lambda j: name(start + j))
        raise refused_images(e, lambda j: call(rows[j:j + 1], *args), len(rows), start, name=named) from None


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


def rows_of(X, input_kind: str, featurizer, num_features: int):
    """`X` as the rows a model reads (see the module docstring).

    Args:
      X: the user's rows.
      input_kind: "text", "image" or "features" (what the model's encoder reads).
      featurizer: a callable returning the model's TF-IDF featurizer (or None), asked only for strings given
        to a model on feature rows.
      num_features: D, the feature space of a model on feature rows.

    Returns:
      CSR float32 [n, D] feature rows, a list of n strings, or `EncodedImages`.
    """
    if input_kind == "image":
        return EncodedImages.of(X)
    is_text = isinstance(X, (list, tuple)) and all(isinstance(t, str) for t in X)
    if input_kind == "text":
        if not is_text:
            raise TfxcError("this model reads raw text (its encoder tokenises strings); give a list of "
                            "strings instead of a feature matrix")
        check_strings(X, "X")
        return list(X)
    if is_text:
        check_strings(X, "X")
        model_featurizer = featurizer()
        if model_featurizer is None:
            raise TfxcError("this model was not trained on text; give a feature matrix instead")
        rows = [model_featurizer.transform(text) for text in X]
        indptr = np.cumsum([0] + [r[0].size for r in rows])
        indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int64)
        values = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.float32)
        return scipy.sparse.csr_matrix((values, indices, indptr), shape=(len(rows), num_features))
    x = as_csr(X)
    if x.shape[1] > num_features and x.nnz and x.indices.max() >= num_features:
        raise DataError(f"X has feature id {int(x.indices.max())} but the model knows {num_features} features")
    return x


def num_rows(x) -> int:
    """n, the rows of `rows_of`'s result."""
    return len(x) if isinstance(x, list) else x.shape[0]


def signature_inputs(x) -> dict:
    """A SavedModel signature's inputs (`tfxc.export.saved_model`) of rows: "image" or "text" strings, or
    "feat_idx" int64 [nnz], "feat_val" float32 [nnz] and "row_splits" int64 [n + 1]."""
    from tfxc._tf import tf

    if isinstance(x, EncodedImages):
        return {"image": tf.constant(list(x), tf.string)}
    if isinstance(x, list):
        return {"text": tf.constant(x, tf.string)}
    return {"feat_idx": tf.constant(x.indices, tf.int64), "feat_val": tf.constant(x.data, tf.float32),
            "row_splits": tf.constant(x.indptr, tf.int64)}


def model_batch(x, encoder) -> dict:
    """A Keras model's input batch of rows: strings and images through the encoder's own preprocessing
    (`Encoder.preprocess`, as the input pipeline runs it), feature rows as ragged "feat_idx" int64 and
    "feat_val" float32 [n, None]."""
    from tfxc._tf import tf

    inputs = signature_inputs(x)
    if "row_splits" not in inputs:
        return encoder.preprocess(inputs)
    splits = inputs["row_splits"]
    return {"feat_idx": tf.RaggedTensor.from_row_splits(inputs["feat_idx"], splits),
            "feat_val": tf.RaggedTensor.from_row_splits(inputs["feat_val"], splits)}
