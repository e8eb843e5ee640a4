"""Raw text in the graph: WordPiece vocabularies and the tokenisers the text encoders run in tf.data and serving."""

from tfxc.text.tokenizers import DEFAULT_MAX_BYTES, WordPieceSequences, fasttext_ids, pad_sequences, truncate_utf8
from tfxc.text.vocabulary import (PAD, RESERVED_TOKENS, UNK, learn_wordpiece_vocabulary, read_vocabulary,
                                  split_texts, write_vocabulary)

__all__ = ["DEFAULT_MAX_BYTES", "PAD", "RESERVED_TOKENS", "UNK", "WordPieceSequences", "fasttext_ids", "learn_wordpiece_vocabulary",
           "pad_sequences", "read_vocabulary", "split_texts", "truncate_utf8", "write_vocabulary"]
