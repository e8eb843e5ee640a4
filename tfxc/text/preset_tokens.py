"""A keras-hub preset's own tokenizer (byte-level BPE, SentencePiece, ...) as a graph tokeniser of token sequences.

WordPiece presets (BERT, DistilBERT, ELECTRA, MiniLM) go through `tfxc.text.WordPieceSequences`, which
bakes the vocabulary into one FastWordpiece model. The other families tokenise with the layer keras-hub
ships for them (`RobertaTokenizer`, `AlbertTokenizer`, `DebertaV3Tokenizer`, `XLMRobertaTokenizer`, ...),
whose lookup tables and SentencePiece model are resources of that layer: they run in `tf.data` and are
saved with the model, so serving tokenises raw strings exactly as training did.
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.text.tokenizers import DEFAULT_MAX_BYTES, pad_sequences, truncate_utf8

__all__ = ["PresetSequences"]


class PresetSequences(keras.layers.Layer):
    """string [B] -> {"token_ids": int32 [B, T], "padding_mask": bool [B, T]} through a keras-hub tokenizer.

    Each text is cut to `max_bytes` bytes, tokenised, cut to `max_length - 2` pieces and wrapped in the
    family's start and end tokens (<s> ... </s> for RoBERTa and XLM-R, [CLS] ... [SEP] for ALBERT and
    DeBERTaV3), then padded with its pad id to the batch's longest row (`pad_sequences`).

    Args:
      tokenizer: a keras-hub `Tokenizer` with `start_token_id`, `end_token_id` and `pad_token_id`.
      max_length: at most this many ids per text, the two special tokens included.
      max_bytes: only a text's first this many bytes are tokenised (`truncate_utf8`).
    """

    def __init__(self, tokenizer, max_length: int, max_bytes: int = DEFAULT_MAX_BYTES, **kwargs):
        super().__init__(trainable=False, **kwargs)
        missing = [name for name in ("start_token_id", "end_token_id", "pad_token_id")
                   if getattr(tokenizer, name, None) is None]
        if missing:
            raise ValueError(f"{type(tokenizer).__name__} has no {', '.join(missing)}")
        if max_length <= 2:
            raise ValueError(f"max_length ({max_length}) leaves no room for text")
        self.tokenizer = tokenizer
        self.max_length, self.max_bytes = max_length, max_bytes
        self.start_id, self.end_id = int(tokenizer.start_token_id), int(tokenizer.end_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self.vocabulary_size = int(tokenizer.vocabulary_size())
        # keras-hub hands eager callers Python lists; inside a tf.function it returns the RaggedTensor.
        self._pieces = tf.function(self._tokenize, input_signature=[tf.TensorSpec([None], tf.string)])

    def _tokenize(self, texts):
        return tf.cast(self.tokenizer(texts), tf.int64)

    def call(self, texts):
        ids = self._pieces(truncate_utf8(texts, self.max_bytes))[:, :self.max_length - 2]
        rows = ids.nrows()
        ids = tf.concat([tf.fill([rows, 1], tf.constant(self.start_id, tf.int64)), ids,
                         tf.fill([rows, 1], tf.constant(self.end_id, tf.int64))], axis=1)
        return pad_sequences(ids, self.pad_id, self.max_length)
