"""TF-IDF bag-of-words features for raw text, fitted on training texts.

Tokenisation (`tfxc.data.text_terms`): by default ("unicode") the text is lowercased, and its tokens are
the runs of letters, digits and combining marks of any script, each character of a script written without
spaces (Chinese, Japanese, Thai, ...) being a token on its own; accents are kept unless
``accents="fold"``. ``"Don't re-use Café-42"`` gives ``don, t, re, use, café, 42``. The "ascii" tokenizer
(tfxc's first, ``[a-z0-9]+`` runs) is kept for featurizers saved with it. With ``ngram_max=n`` the runs of
2..n consecutive tokens, joined by one space (``"re use"``; on Chinese text, character bigrams), are terms
too.

Only a text's first `MAX_TEXT_BYTES` bytes (1 MiB, cut at a character boundary) are
tokenised, here and in the served graph (`tfxc.text.tfidf`), so one request's work is
bounded whatever its length; the shared data sets' longest text is 13 KB.

Weights (scikit-learn's ``TfidfVectorizer(sublinear_tf=True, smooth_idf=True,
norm="l2")``):

    tf(t, d)  = 1 + ln(count(t, d))            (raw count if sublinear_tf=False)
    idf(t)    = ln((1 + N) / (1 + df(t))) + 1  (N = number of training texts)
    x(t, d)   = tf * idf, then each row is divided by its L2 norm.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable

import numpy as np

from tfxc.data.text_terms import TOKENIZERS, tokenize
from tfxc.compat import FEATURIZER, FORMAT_VERSIONS, upgrade
from tfxc.errors import DataError
from tfxc.utils.io import atomic_write_text

__all__ = ["ACCENTS", "MAX_NGRAM", "MAX_TEXT_BYTES", "TfidfFeaturizer", "tokenize", "truncate_utf8"]

ACCENTS = ("keep", "fold")
MAX_NGRAM = 3
_FORMAT = "tfxc.TfidfFeaturizer"
# The cut is larger than the neural encoders' (64 KiB): a TF-IDF row costs little per byte (a 1 MB string is
# served in 0.07 s), and TF-IDF models are the ones fed whole documents.
MAX_TEXT_BYTES = 1 << 20


def truncate_utf8(text: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes, at a character boundary (`tfxc.text.truncate_utf8`'s twin)."""
    if len(text) * 4 <= max_bytes:  # no character is longer than 4 bytes: nothing to encode
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    end = max_bytes
    while end > max_bytes - 3 and data[end] & 0xC0 == 0x80:  # never split a character
        end -= 1
    return data[:end].decode("utf-8", "surrogatepass")


# Version 1 files were written by the "ascii" tokenizer, with words and bigrams only, and name its pattern.
_VERSION = FORMAT_VERSIONS[FEATURIZER]  # the "version" saved files carry (`tfxc.compat`)


class TfidfFeaturizer:
    """Maps a text to a sparse, L2-normalised TF-IDF vector.

    The vocabulary keeps the terms with document frequency >= `min_df`, ordered
    by document frequency descending, then by term (so feature 0 is the most
    common term); `max_features` keeps the first that many of that order.
    Fitting and transforming are deterministic.

    Args:
      ngram_max: 1 for words only, 2 to add word bigrams, 3 to add trigrams too.
      min_df: minimum number of training texts a term must occur in.
      max_features: if set, the size cap of the vocabulary (most frequent terms
        by document frequency, ties broken by term).
      sublinear_tf: use 1 + ln(count) instead of the raw count.
      tokens: the tokenizer, "unicode" (any script) or "ascii" (`tfxc.data.text_terms`).
      accents: "keep" them, or "fold" them away ("café" and "cafe" are then one term).

    Example:
      >>> f = TfidfFeaturizer().fit(["a cat", "a dog", "a cat and a dog"])
      >>> f.vocabulary
      ['a', 'cat', 'dog', 'and']
      >>> idx, val = f.transform("The cat!")
      >>> idx.tolist(), val.tolist()
      ([1], [1.0])
    """

    def __init__(self, *, ngram_max: int = 1, min_df: int = 1, max_features: int | None = None,
                 sublinear_tf: bool = True, tokens: str = "unicode", accents: str = "keep"):
        if not isinstance(ngram_max, int) or isinstance(ngram_max, bool) or not 1 <= ngram_max <= MAX_NGRAM:
            raise ValueError(f"ngram_max must be an int in [1, {MAX_NGRAM}], got {ngram_max!r}")
        if tokens not in TOKENIZERS or accents not in ACCENTS:
            raise ValueError(f"tokens must be one of {', '.join(TOKENIZERS)} (got {tokens!r}) and accents one of "
                             f"{', '.join(ACCENTS)} (got {accents!r})")
        if not isinstance(min_df, int) or isinstance(min_df, bool) or min_df < 1:
            raise ValueError(f"min_df must be an int >= 1, got {min_df!r}")
        if max_features is not None and (not isinstance(max_features, int)
                                         or isinstance(max_features, bool) or max_features < 1):
            raise ValueError(f"max_features must be an int >= 1 or None, got {max_features!r}")
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = bool(sublinear_tf)
        self.tokens, self.accents = tokens, accents
        self._vocabulary: list[str] | None = None
        self._df: list[int] = []
        self._num_docs = 0

    # === Fitting ===

    def terms(self, text: str) -> list[str]:
        """The terms of `text`'s first `MAX_TEXT_BYTES` bytes, with repeats: its tokens, then its bigrams, ... up
        to its `ngram_max`-grams (tokens joined by one space)."""
        tokens = tokenize(truncate_utf8(text), self.tokens, self.accents)
        terms = list(tokens)
        for n in range(2, self.ngram_max + 1):
            terms += [" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        return terms

    def fit(self, texts: Iterable[str]) -> TfidfFeaturizer:
        """Learns the vocabulary and document frequencies from `texts` (one pass).

        Args:
          texts: the training texts (any iterable of str, e.g. a generator).

        Returns:
          self.

        Raises:
          DataError: no texts, or no term reaches `min_df`.
        """
        df: collections.Counter[str] = collections.Counter()
        num_docs = 0
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
            df.update(set(self.terms(text)))
            num_docs += 1
        if num_docs == 0:
            raise DataError("cannot fit TF-IDF features on zero texts")
        kept = sorted(((t, c) for t, c in df.items() if c >= self.min_df),
                      key=lambda item: (-item[1], item[0]))
        if self.max_features is not None:
            kept = kept[:self.max_features]
        if not kept:
            raise DataError(f"empty vocabulary: no term occurs in at least min_df={self.min_df} "
                            f"of the {num_docs} texts")
        self._set_state([t for t, _ in kept], [c for _, c in kept], num_docs)
        return self

    def _set_state(self, vocabulary: list[str], df: list[int], num_docs: int) -> None:
        self._vocabulary = vocabulary
        self._df = df
        self._num_docs = num_docs
        self._index = {t: i for i, t in enumerate(vocabulary)}
        self._idf = np.log((1.0 + num_docs) / (1.0 + np.asarray(df, np.float64))) + 1.0

    # === Transforming ===

    def _check_fitted(self) -> None:
        if self._vocabulary is None:
            raise RuntimeError("TfidfFeaturizer is not fitted; call fit() or load() first")

    @property
    def num_features(self) -> int:
        """Vocabulary size (the feature space is [0, num_features))."""
        self._check_fitted()
        return len(self._vocabulary)  # type: ignore[arg-type]

    @property
    def vocabulary(self) -> list[str]:
        """The terms, in feature-id order (a copy)."""
        self._check_fitted()
        return list(self._vocabulary)  # type: ignore[arg-type]

    @property
    def document_frequency(self) -> np.ndarray:
        """int64 [num_features]: number of training texts containing each term."""
        self._check_fitted()
        return np.asarray(self._df, np.int64)

    @property
    def idf(self) -> np.ndarray:
        """float64 [num_features]: the smoothed idf of each term."""
        self._check_fitted()
        return self._idf.copy()

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """The TF-IDF vector of one text.

        Args:
          text: the raw text.

        Returns:
          (feat_idx int64 [nnz] sorted ascending, feat_val float32 [nnz]) with unit
          L2 norm; both empty when no term of `text` is in the vocabulary.
        """
        self._check_fitted()
        get = self._index.get
        ids = [i for i in map(get, self.terms(text)) if i is not None]
        if not ids:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        feat_idx, counts = np.unique(np.asarray(ids, np.int64), return_counts=True)
        tf = 1.0 + np.log(counts) if self.sublinear_tf else counts.astype(np.float64)
        weights = tf * self._idf[feat_idx]
        weights /= np.sqrt(np.dot(weights, weights))
        return feat_idx, weights.astype(np.float32)

    # === Persistence ===

    def get_config(self) -> dict:
        """The constructor arguments."""
        return {"ngram_max": self.ngram_max, "min_df": self.min_df, "max_features": self.max_features,
                "sublinear_tf": self.sublinear_tf, "tokens": self.tokens, "accents": self.accents}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the fitted state as JSON, atomically (temp file + os.replace)."""
        self._check_fitted()
        state = {
            "format": _FORMAT,
            "version": _VERSION,
            **self.get_config(),
            "num_docs": self._num_docs,
            "vocabulary": self._vocabulary,
            "document_frequency": self._df,
        }
        atomic_write_text(path, json.dumps(state, ensure_ascii=False, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> TfidfFeaturizer:
        """Reads a featurizer written by `save`.

        Raises:
          DataError: the file is missing, not JSON, from another tokenizer or
            version, or inconsistent.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            raise DataError("file not found", path=path) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"cannot read TF-IDF featurizer JSON: {e}", path=path) from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise DataError(f"not a {_FORMAT} file", path=path, field="format")
        state = upgrade(FEATURIZER, state, path)  # today's layout (tfxc.compat), or a DataError naming the file
        try:
            featurizer = cls(ngram_max=state["ngram_max"], min_df=state["min_df"],
                             max_features=state["max_features"], sublinear_tf=state["sublinear_tf"],
                             tokens=state["tokens"], accents=state["accents"])
        except (KeyError, ValueError) as e:
            raise DataError(f"bad or missing setting: {e}", path=path) from None
        vocab, df, num_docs = (state.get("vocabulary"), state.get("document_frequency"),
                               state.get("num_docs"))
        if not isinstance(num_docs, int) or num_docs < 1:
            raise DataError(f"must be a positive int, got {num_docs!r}", path=path,
                            field="num_docs")
        if (not isinstance(vocab, list) or not vocab
                or not all(isinstance(t, str) and t for t in vocab)
                or len(set(vocab)) != len(vocab)):
            raise DataError("must be a non-empty list of unique non-empty strings", path=path,
                            field="vocabulary")
        if (not isinstance(df, list) or len(df) != len(vocab)
                or not all(isinstance(c, int) and 1 <= c <= num_docs for c in df)):
            raise DataError(f"must be {len(vocab)} ints in [1, num_docs]", path=path,
                            field="document_frequency")
        featurizer._set_state(vocab, df, num_docs)
        return featurizer

    def __repr__(self) -> str:
        size = len(self._vocabulary) if self._vocabulary is not None else "unfitted"
        return (f"TfidfFeaturizer(ngram_max={self.ngram_max}, min_df={self.min_df}, "
                f"max_features={self.max_features}, sublinear_tf={self.sublinear_tf}, "
                f"tokens={self.tokens!r}, accents={self.accents!r}, num_features={size})")
