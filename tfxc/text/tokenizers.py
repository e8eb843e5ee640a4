"""In-graph tokenisers: raw strings -> ids, the same ops in `tf.data` (training) and in the SavedModel (serving).

Two kinds of inputs come out of them:
  * token sequences (`WordPieceSequences`): int32 ids [B, T] with a padding mask, for
    the sequence encoders (TextCNN, RNNs, Transformers, BERT-family backbones);
  * hashed bags of n-grams (`fasttext_ids`): int64 ragged [B, None], for FastText.

Everything here is a pure function of the text and fixed constants (the vocabulary is
baked into a tensorflow-text FastWordpiece model), with no lookup-table resources, so
the ops run unchanged inside `tf.data` under every `tf.distribute` strategy and inside
an exported SavedModel (which needs `import tensorflow_text` before loading).
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.text.vocabulary import PAD, UNK, split_texts

__all__ = ["WordPieceSequences", "fasttext_ids", "pad_sequences"]


def pad_sequences(ids: tf.RaggedTensor, pad_id: int, max_length: int) -> dict[str, tf.Tensor]:
    """Truncates ragged ids to `max_length` and pads them to the batch's longest row (at least 1).

    Padding to the batch's own longest row rather than to `max_length` keeps short
    texts (intents average ~12 tokens) from paying for a 128-long sequence.

    Returns:
      {"token_ids": int32 [B, T], "padding_mask": bool [B, T]}: True on real tokens. The mask
      comes from the row lengths, never from comparing ids with a pad id (RoBERTa pads with 1).
    """
    ids = tf.cast(ids[:, :max_length], tf.int32)
    width = tf.maximum(tf.reduce_max(ids.row_lengths()), 1)  # >= 1: convolutions and attention need a position
    return {"token_ids": ids.to_tensor(default_value=pad_id, shape=tf.stack([ids.nrows(), width])),
            "padding_mask": tf.sequence_mask(ids.row_lengths(), width)}


class WordPieceSequences(keras.layers.Layer):
    """string [B] -> {"token_ids": int32 [B, T], "padding_mask": bool [B, T]} through WordPiece.

    Normalisation and splitting are those of keras-hub's `WordPieceTokenizer` and of BERT's
    uncased tokeniser (lowercase, accents stripped, split on whitespace/punctuation/CJK);
    each word then goes through tensorflow-text's `FastWordpieceTokenizer` (Song et al.,
    2021, "Fast WordPiece Tokenization"), longest match first, "##" marking continuations.

    Args:
      vocabulary: the tokens, id = position; must contain [UNK] and the pad token.
      max_length: at most this many ids per text, special tokens included.
      lowercase: lowercase first (uncased vocabularies).
      cls_token, sep_token: wrap each text as [CLS] ... [SEP] (BERT-family inputs); None: bare ids.
      pad_token: the token whose id pads.
    """

    def __init__(self, vocabulary: list[str], max_length: int, lowercase: bool = True,
                 cls_token: str | None = None, sep_token: str | None = None, pad_token: str = PAD, **kwargs):
        super().__init__(trainable=False, **kwargs)
        import tensorflow_text as tft

        self.vocabulary_size = len(vocabulary)
        self.max_length = max_length
        self.lowercase = lowercase
        # Words come pre-split (`split_texts`), so FastWordpiece only maps each word to its pieces.
        self._wordpiece = tft.FastWordpieceTokenizer(list(vocabulary), suffix_indicator="##", max_bytes_per_word=100,
                                                     token_out_type=tf.int64, unknown_token=UNK,
                                                     no_pretokenization=True, support_detokenization=False)
        index = {token: i for i, token in enumerate(vocabulary)}
        missing = [t for t in (cls_token, sep_token, pad_token) if t is not None and t not in index]
        if missing:
            raise ValueError(f"the vocabulary has no {', '.join(missing)} token")
        self.pad_id = index[pad_token]
        self.cls_id = None if cls_token is None else index[cls_token]
        self.sep_id = None if sep_token is None else index[sep_token]
        specials = (self.cls_id is not None) + (self.sep_id is not None)
        if max_length <= specials:
            raise ValueError(f"max_length ({max_length}) leaves no room for text")

    def call(self, texts):
        ids = self._wordpiece.tokenize(split_texts(texts, self.lowercase)).merge_dims(-2, -1)  # ragged [B, None]
        specials = (self.cls_id is not None) + (self.sep_id is not None)
        ids = ids[:, :self.max_length - specials]
        rows = ids.nrows()
        if self.cls_id is not None:
            ids = tf.concat([tf.fill([rows, 1], tf.constant(self.cls_id, tf.int64)), ids], axis=1)
        if self.sep_id is not None:
            ids = tf.concat([ids, tf.fill([rows, 1], tf.constant(self.sep_id, tf.int64))], axis=1)
        return pad_sequences(ids, self.pad_id, self.max_length)


def _hash(strings: tf.Tensor, buckets: int, offset: int) -> tf.Tensor:
    return tf.strings.to_hash_bucket_fast(strings, buckets) + offset


def fasttext_ids(texts: tf.Tensor, *, word_buckets: int, ngram_buckets: int, word_ngrams: int = 2,
                 min_char_ngram: int = 3, max_char_ngram: int = 5, lowercase: bool = True) -> tf.RaggedTensor:
    """The hashed features of FastText (Joulin et al., 2017; Bojanowski et al., 2017): int64 ragged [B, None].

    Per text: its words (hashed into [0, word_buckets)), its word n-grams of 2..`word_ngrams`
    words joined by a space, and the character n-grams of min..max characters of every word
    wrapped as "<word>" (hashed into [word_buckets, word_buckets + ngram_buckets)). Hashing
    (FarmHash fingerprints) replaces FastText's word dictionary, so there is nothing to fit
    and any new word still gets its n-grams. Words are split as for WordPiece.

    Args:
      texts: string [B].
      word_buckets, ngram_buckets: sizes of the two id ranges.
      word_ngrams: 1 for words only, 2 adds word bigrams, ...
      min_char_ngram, max_char_ngram: character n-gram widths; max 0 turns them off.
    """
    import tensorflow_text as tft

    words = split_texts(texts, lowercase)  # ragged [B, W]
    parts = [_hash(words.flat_values, word_buckets, 0)]
    row_ids = [words.value_rowids()]
    for n in range(2, word_ngrams + 1):
        grams = tft.ngrams(words, n, reduction_type=tft.Reduction.STRING_JOIN, string_separator=" ")
        parts.append(_hash(grams.flat_values, ngram_buckets, word_buckets))
        row_ids.append(grams.value_rowids())
    if max_char_ngram:
        wrapped = tf.strings.join(["<", words.flat_values, ">"])  # [Nw]
        chars = tf.strings.unicode_split(wrapped, "UTF-8")  # ragged [Nw, C]
        word_rows = words.value_rowids()
        for n in range(min_char_ngram, max_char_ngram + 1):
            grams = tft.ngrams(chars, n, reduction_type=tft.Reduction.STRING_JOIN, string_separator="")
            parts.append(_hash(grams.flat_values, ngram_buckets, word_buckets))
            row_ids.append(tf.gather(word_rows, grams.value_rowids()))
    values, rows = tf.concat(parts, 0), tf.concat(row_ids, 0)
    order = tf.argsort(rows, stable=True)  # group each text's ids together (ragged rows must be contiguous)
    return tf.RaggedTensor.from_value_rowids(tf.gather(values, order), tf.gather(rows, order),
                                             nrows=tf.shape(texts, out_type=tf.int64)[0])
