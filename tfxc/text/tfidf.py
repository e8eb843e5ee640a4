"""The TF-IDF featurizer of `tfxc.data.text_features` as graph ops, so TF-IDF models take raw strings in serving.

`TfidfVectorizer(featurizer)` maps string [B] to the featurizer's sparse rows: the same
tokens (`tfxc.data.text_terms`, the same patterns run by RE2), n-grams, vocabulary ids,
sublinear tf, smoothed idf and L2 normalisation, as int64 / float32 ragged [B, None]
with ids ascending, from each text's first `MAX_TEXT_BYTES` bytes as the featurizer reads.
Keras' `TextVectorization(output_mode="tf_idf")` computes another formula (raw counts, idf = ln(1 + N/(1 + df)), no normalisation), hence ops of our own.
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.data.text_features import MAX_TEXT_BYTES
from tfxc.data.text_terms import FINAL_SIGMA, NONSPACING_MARKS, NOT_A_WORD_CHARACTER, SIGMA, UNSEGMENTED
from tfxc.text.tokenizers import truncate_utf8


class TfidfVectorizer(keras.layers.Layer):
    """string [B] -> {"feat_idx": int64 ragged [B, None], "feat_val": float32 ragged [B, None]}.

    Args:
      featurizer: a fitted `tfxc.data.text_features.TfidfFeaturizer`.
    """

    def __init__(self, featurizer, **kwargs):
        super().__init__(trainable=False, **kwargs)
        vocabulary = featurizer.vocabulary
        self.num_features = len(vocabulary)
        self.ngram_max = featurizer.ngram_max
        self.tokens, self.accents = featurizer.tokens, featurizer.accents
        self.sublinear_tf = featurizer.sublinear_tf
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary), tf.range(len(vocabulary), dtype=tf.int64)),
            default_value=-1)
        self.idf = tf.constant(featurizer.idf, tf.float32)

    def tokenize(self, texts):
        """string [B] -> string ragged [B, None]: each text's tokens (`tfxc.data.text_terms.tokenize`)."""
        import tensorflow_text as tft

        # The cut comes before lowercasing, as in the featurizer (lowercasing can change a text's byte length).
        lowered = tf.strings.lower(truncate_utf8(texts, MAX_TEXT_BYTES), encoding="utf-8")
        if self.tokens == "ascii":
            spaced = tf.strings.regex_replace(lowered, "[^a-z0-9]+", " ")
        else:
            lowered = tf.strings.regex_replace(lowered, FINAL_SIGMA, SIGMA)
            if self.accents == "fold":
                decomposed = tft.normalize_utf8(lowered, "NFD")
                lowered = tft.normalize_utf8(tf.strings.regex_replace(decomposed, NONSPACING_MARKS, ""), "NFC")
            isolated = tf.strings.regex_replace(lowered, f"({UNSEGMENTED})", r" \1 ")
            spaced = tf.strings.regex_replace(isolated, NOT_A_WORD_CHARACTER, " ")
        return tf.strings.split(tf.strings.strip(spaced))

    def terms(self, texts):
        """string ragged [B, None]: the tokens of each text, then its 2..`ngram_max`-grams
        (`TfidfFeaturizer.terms`)."""
        import tensorflow_text as tft

        tokens = self.tokenize(texts)
        grams = [tft.ngrams(tokens, n, reduction_type=tft.Reduction.STRING_JOIN, string_separator=" ")
                 for n in range(2, self.ngram_max + 1)]
        return tf.concat([tokens, *grams], axis=1) if grams else tokens

    def call(self, texts):
        terms = self.terms(texts)
        ids = self.table.lookup(terms.flat_values)
        rows = terms.value_rowids()
        known = ids >= 0
        ids, rows = tf.boolean_mask(ids, known), tf.boolean_mask(rows, known)
        # One key per (row, term id); sorted, so each row's ids come out ascending.
        keys, _, counts = tf.unique_with_counts(tf.sort(rows * self.num_features + ids))
        rows, ids = keys // self.num_features, keys % self.num_features
        counts = tf.cast(counts, tf.float32)
        tf_weight = 1.0 + tf.math.log(counts) if self.sublinear_tf else counts
        weights = tf_weight * tf.gather(self.idf, ids)
        nrows = tf.shape(texts, out_type=tf.int64)[0]
        norms = tf.sqrt(tf.math.unsorted_segment_sum(tf.square(weights), rows, nrows))
        values = weights / tf.gather(norms, rows)
        return {"feat_idx": tf.RaggedTensor.from_value_rowids(ids, rows, nrows=nrows),
                "feat_val": tf.RaggedTensor.from_value_rowids(values, rows, nrows=nrows)}
