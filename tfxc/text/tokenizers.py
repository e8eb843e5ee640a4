"""In-graph tokenisers: raw strings -> ids, the same ops in `tf.data` (training) and in the SavedModel (serving).

Two kinds of inputs come out of them:
  * token sequences (`WordPieceSequences`): int32 ids [B, T] with a padding mask, for
    the sequence encoders (TextCNN, RNNs, Transformers, BERT-family backbones);
  * hashed bags of n-grams (`fasttext_ids`): int64 ragged [B, None], for FastText.

Every tokeniser first cuts each text to its first `max_bytes` bytes (`truncate_utf8`, at a
character boundary), in training's `tf.data` and in serving alike: a request's work and
memory are then bounded by its number of texts, whatever their length, and a text of
normal length tokenises exactly as without the cut.

Everything here is a pure function of the text and fixed constants (the vocabulary is
baked into a tensorflow-text FastWordpiece model), with no lookup-table resources, so
the ops run unchanged inside `tf.data` under every `tf.distribute` strategy and inside
an exported SavedModel (which needs `import tensorflow_text` before loading).
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.text.vocabulary import PAD, UNK, split_texts

__all__ = ["DEFAULT_MAX_BYTES", "WordPieceSequences", "fasttext_ids", "pad_sequences", "truncate_utf8"]

# The default cut of the text encoders: 64 KiB is 5x the longest text of the shared text sets (reuters, 13 KB)
# and 100x what 128 WordPiece tokens of prose take, while a FastText bag of it stays at most ~0.5 M ids.
DEFAULT_MAX_BYTES = 1 << 16


def truncate_utf8(texts: tf.Tensor, max_bytes: int) -> tf.Tensor:
    """string [B] -> string [B]: each text cut to at most `max_bytes` bytes, at a UTF-8 character boundary.

    A text of at most `max_bytes` bytes is returned as is (byte for byte, valid UTF-8 or not).
    A longer one keeps the bytes before the character that straddles or starts at byte
    `max_bytes`: the cut backs off over at most 3 continuation bytes (10xxxxxx), so a
    multi-byte character is dropped whole rather than split. The work is O(B * max_bytes):
    only the kept prefix and a 4-byte window are read.

    Matches `tfxc.data.text_features.truncate_utf8` (the Python twin the TF-IDF featurizer uses).
    """
    if max_bytes < 4:
        raise ValueError(f"max_bytes ({max_bytes}) must be >= 4 (one UTF-8 character)")
    length = tf.strings.length(texts)
    # The window holds bytes max_bytes-3 .. max_bytes (the last three kept, then the first cut one), padded
    # with NULs for short texts (whose window is never read) so that every row decodes to exactly 4 bytes.
    start = tf.minimum(length, max_bytes - 3)  # Substr refuses a start past the end
    window = tf.strings.join([tf.strings.substr(texts, start, tf.fill(tf.shape(start), 4)), "\0\0\0\0"])
    window = tf.strings.substr(window, tf.zeros_like(start), tf.fill(tf.shape(start), 4))
    octets = tf.reshape(tf.io.decode_raw(window, tf.uint8), [-1, 4])
    continuation = tf.equal(tf.bitwise.bitwise_and(octets, 0xC0), 0x80)  # bool [B, 4]
    # Back off from byte max_bytes while it is a continuation byte, at most 3 times (no UTF-8 character is
    # longer than 4 bytes): the number of leading True in the window read backwards.
    backwards = tf.reverse(continuation, axis=[1])[:, :3]
    back_off = tf.reduce_sum(tf.cast(tf.math.cumprod(tf.cast(backwards, tf.int32), axis=1), tf.int32), axis=1)
    keep = tf.where(length > max_bytes, max_bytes - back_off, length)
    return tf.strings.substr(texts, tf.zeros_like(keep), keep)


# The keys of a token-sequence batch (`pad_sequences`); both [B, T], cut together to a shorter T.
SEQUENCE_KEYS = ("token_ids", "padding_mask")


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
      max_bytes: only a text's first this many bytes are tokenised (`truncate_utf8`).
      lowercase: lowercase first (uncased vocabularies).
      cls_token, sep_token: wrap each text as [CLS] ... [SEP] (BERT-family inputs); None: bare ids.
      pad_token: the token whose id pads.
    """

    def __init__(self, vocabulary: list[str], max_length: int, lowercase: bool = True,
                 cls_token: str | None = None, sep_token: str | None = None, pad_token: str = PAD,
                 max_bytes: int = DEFAULT_MAX_BYTES, **kwargs):
        super().__init__(trainable=False, **kwargs)
        import tensorflow_text as tft

        self.vocabulary_size = len(vocabulary)
        self.max_length = max_length
        self.max_bytes = max_bytes
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
        # Cut first: the ids past max_length are dropped anyway, but splitting and WordPiece would still run
        # over the whole text (a 1 MB string: 0.07 s and ~200 k pieces before the cut to max_length).
        words = split_texts(truncate_utf8(texts, self.max_bytes), self.lowercase)
        ids = self._wordpiece.tokenize(words).merge_dims(-2, -1)  # ragged [B, None]
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
                 min_char_ngram: int = 3, max_char_ngram: int = 5, lowercase: bool = True,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> tf.RaggedTensor:
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
      max_bytes: only a text's first this many bytes count (`truncate_utf8`). FastText itself has no cut,
        but its bag grows with the text, by ~2 ids per byte with the defaults (a 1 MB string: 2.1 M ids,
        0.7 GB while serving), so every text is cut, in training as in serving.

    Returns:
      int64 ragged [B, None]; a row has at most about (word_ngrams + 2) * max_bytes ids (each byte starts at
      most one word and one n-gram per word-n-gram width, and one character n-gram per width; "<" and ">"
      add two characters per word, and a word takes at least two bytes with its separator).
    """
    import tensorflow_text as tft

    words = split_texts(truncate_utf8(texts, max_bytes), lowercase)  # ragged [B, W]
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
