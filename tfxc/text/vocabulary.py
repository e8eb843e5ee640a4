"""WordPiece vocabularies: learnt from a training split's raw text, kept as `vocab.txt` (one token per line).

The learner is tensorflow-text's (`wordpiece_tokenizer_learner_lib`, the one
behind `keras_hub.tokenizers.compute_word_piece_vocabulary`); words come from
the same split keras-hub's `WordPieceTokenizer` applies at tokenisation time
(lowercase, accents stripped, split on whitespace, punctuation and CJK
characters), so every word seen while learning tokenises as it was counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from tfxc._tf import tf
from tfxc.data.files import open_text
from tfxc.errors import DataError
from tfxc.utils.io import atomic_write_text

__all__ = ["PAD", "RESERVED_TOKENS", "UNK", "learn_wordpiece_vocabulary", "read_vocabulary", "split_texts",
           "write_vocabulary"]

PAD, UNK = "[PAD]", "[UNK]"
# Id 0 pads, so a padding mask is simply `ids != 0` for the vocabularies learnt here.
RESERVED_TOKENS = (PAD, UNK, "[CLS]", "[SEP]", "[MASK]")


def split_texts(texts: tf.Tensor, lowercase: bool = True) -> tf.RaggedTensor:
    """string [B] -> string ragged [B, None]: the words WordPiece sees (keras-hub's pre-tokenisation)."""
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize

    return pretokenize(texts, lowercase=lowercase, strip_accents=True, split=True, split_on_cjk=True)


def learn_wordpiece_vocabulary(texts: Iterable[str] | tf.data.Dataset, size: int, min_count: int = 2,
                               lowercase: bool = True) -> list[str]:
    """Learns a WordPiece vocabulary of at most `size` tokens from training texts.

    Args:
      texts: the training texts (strings, or a dataset of string scalars).
      size: the vocabulary's size cap, reserved tokens included.
      min_count: a token must occur this many times (tensorflow-text's `lower_thresh`).
      lowercase: lowercase before splitting (uncased vocabularies).

    Returns:
      The tokens: `RESERVED_TOKENS` first (so [PAD] is id 0), then whole words, then
      "##"-prefixed word pieces and single characters, in the learner's order.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    dataset = texts if isinstance(texts, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(
        tf.constant(list(texts), tf.string))
    words = dataset.batch(1024).map(lambda batch: split_texts(batch, lowercase), num_parallel_calls=tf.data.AUTOTUNE)
    counts = learner.count_words(words.unbatch())
    if not counts:
        raise DataError("cannot learn a WordPiece vocabulary from texts without words")
    vocab = learner.learn(counts, vocab_size=size, reserved_tokens=list(RESERVED_TOKENS), lower_thresh=min_count,
                          include_joiner_token=True, joiner="##")
    # The learner always keeps every character it saw; honour the cap after the reserved tokens.
    return vocab[:size]


def write_vocabulary(path: str | os.PathLike, vocabulary: list[str]) -> None:
    """Writes one token per line, atomically."""
    if any("\n" in token for token in vocabulary):
        raise ValueError("vocabulary tokens cannot contain a newline")
    atomic_write_text(path, "".join(token + "\n" for token in vocabulary))


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """Reads a `vocab.txt` (one token per line, line i = id i), checking that it is usable.

    The file is decoded line by line (`tfxc.data.files.open_text`), so bytes that are not UTF-8 (a vocabulary
    saved as Latin-1) are an error naming the line rather than a bare UnicodeDecodeError.

    Raises:
      DataError: naming the file, and the line of bytes that are not UTF-8 or of a repeated token.
    """
    path = os.fspath(path)
    vocabulary, line_of = [], {}
    with open_text(path) as lines:
        for line in lines:
            token = line[:-1] if line.endswith("\n") else line
            if token in line_of:
                raise DataError(f"token {token!r} repeats line {line_of[token]} (a vocabulary needs one unique "
                                "token per line)", path=path, line=lines.lineno)
            line_of[token] = lines.lineno
            vocabulary.append(token)
    if not vocabulary:
        raise DataError("the vocabulary is empty (it needs one unique token per line)", path=path)
    if UNK not in vocabulary:
        raise DataError(f"the vocabulary has no {UNK} token", path=path)
    return vocabulary
