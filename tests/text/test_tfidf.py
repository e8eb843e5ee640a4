"""The in-graph TF-IDF vectorizer gives the Python featurizer's rows, on real text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.data.text_features import TfidfFeaturizer
from tfxc.text.tfidf import TfidfVectorizer


@pytest.mark.parametrize("dataset,ngram_max", [("banking77", 1), ("reuters", 2)])
def test_vectorizer_matches_the_featurizer(shared_data, dataset, ngram_max):
    def texts(split):
        with open(f"{shared_data}/{dataset}/{split}.jsonl", encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f]

    featurizer = TfidfFeaturizer(ngram_max=ngram_max, min_df=2).fit(texts("train"))
    vectorizer = TfidfVectorizer(featurizer)
    test = texts("test")[:600] + ["", "Ünïcödé ÀND UPPER-case 42", "only unseen qwzxv"]
    out = vectorizer(tf.constant(test))
    for text, ids, values in zip(test, out["feat_idx"].to_list(), out["feat_val"].to_list()):
        want_ids, want_values = featurizer.transform(text)
        assert ids == want_ids.tolist(), text
        np.testing.assert_allclose(values, want_values, rtol=1e-6, atol=2e-7)
