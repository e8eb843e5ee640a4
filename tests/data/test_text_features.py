"""Tests of tfxc.data.text_features: tokenizer, TF-IDF weights (vs scikit-learn), persistence."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

from tfxc.data.readers import XcBowReader, iter_jsonl
from tfxc.data.text_features import TfidfFeaturizer, tokenize
from tfxc.data.text_terms import ASCII_PATTERN
from tfxc.errors import DataError

DATA = pathlib.Path(os.environ.get(
    "TFXC_DATA_DIR", pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (DATA / "README.md").exists(),
                                reason=f"shared data sets not found at {DATA}")

CORPUS = [
    "The cat sat on the mat.",
    "The dog sat on the log; the dog barked!",
    "Cats and dogs: 2 cats, 3 dogs, 42 mats.",
    "A Café in Zürich isn't a cafe in Bern -- re-use it.",
    "the the the cat",
    "",
    "Dog-friendly mat for the cat and the dog",
]


def as_dict(featurizer: TfidfFeaturizer, text: str) -> dict[str, float]:
    idx, val = featurizer.transform(text)
    vocab = featurizer.vocabulary
    return {vocab[i]: float(v) for i, v in zip(idx, val)}


def test_tokenize():
    assert tokenize("Don't re-use Café-42") == ["don", "t", "re", "use", "café", "42"]
    assert tokenize("Don't re-use Café-42", "ascii") == ["don", "t", "re", "use", "caf", "42"]
    assert tokenize("") == [] and ASCII_PATTERN == "[a-z0-9]+"


@pytest.mark.parametrize("ngram_max,min_df,tokens", [(1, 1, "ascii"), (2, 1, "ascii"), (1, 2, "ascii"),
                                                     (2, 2, "ascii"), (1, 1, "unicode"), (3, 1, "unicode")])
def test_matches_sklearn(ngram_max, min_df, tokens):
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    ours = TfidfFeaturizer(ngram_max=ngram_max, min_df=min_df, tokens=tokens).fit(CORPUS)
    ref = sklearn_text.TfidfVectorizer(sublinear_tf=True, tokenizer=lambda text: tokenize(text, tokens),
                                       token_pattern=None, lowercase=False, smooth_idf=True, norm="l2",
                                       ngram_range=(1, ngram_max), min_df=min_df)
    matrix = ref.fit_transform(CORPUS)
    names = ref.get_feature_names_out()
    assert sorted(ours.vocabulary) == sorted(names)
    for i, text in enumerate(CORPUS + ["unseen words only", "cat cat dog"]):
        row = matrix[i] if i < len(CORPUS) else ref.transform([text])
        expected = {names[j]: v for j, v in zip(row.indices, row.data)}
        got = as_dict(ours, text)
        assert got.keys() == expected.keys()
        for term, value in expected.items():
            assert abs(got[term] - value) < 1e-6, (text, term)


def test_transform_contract():
    featurizer = TfidfFeaturizer(ngram_max=2).fit(CORPUS)
    idx, val = featurizer.transform("the dog and THE CAT sat, the dog")
    assert idx.dtype == np.int64 and val.dtype == np.float32
    assert np.all(np.diff(idx) > 0) and abs(float(np.dot(val, val)) - 1) < 1e-6
    assert "the dog" in featurizer.vocabulary
    idx, val = featurizer.transform("zzz qqq")
    assert idx.shape == (0,) and idx.dtype == np.int64 and val.dtype == np.float32


def test_vocabulary_order_and_max_features():
    texts = ["b a", "a c", "c d", "a d e"]  # df: a=3, c=2, d=2, b=1, e=1
    assert TfidfFeaturizer().fit(texts).vocabulary == ["a", "c", "d", "b", "e"]
    assert TfidfFeaturizer(max_features=2).fit(texts).vocabulary == ["a", "c"]
    assert TfidfFeaturizer(min_df=2, max_features=10).fit(texts).vocabulary == ["a", "c", "d"]
    featurizer = TfidfFeaturizer().fit(texts)
    np.testing.assert_array_equal(featurizer.document_frequency, [3, 2, 2, 1, 1])
    np.testing.assert_allclose(featurizer.idf, np.log(5 / (1 + np.array([3, 2, 2, 1, 1]))) + 1)
    # Deterministic: the same input gives the same state, whatever the order of equal-df terms.
    again = TfidfFeaturizer().fit(reversed(texts))
    assert again.vocabulary == featurizer.vocabulary


def test_raw_tf_option():
    featurizer = TfidfFeaturizer(sublinear_tf=False).fit(["a b", "b"])
    idx, val = featurizer.transform("a a b")
    # tf: a=2, b=1; idf: a = ln(3/2)+1, b = ln(3/3)+1 = 1
    raw = np.array([1.0, 2 * (np.log(1.5) + 1)])  # ids: b=0, a=1
    np.testing.assert_allclose(val, raw / np.linalg.norm(raw), rtol=1e-6)
    assert featurizer.vocabulary == ["b", "a"] and idx.tolist() == [0, 1]


def test_save_load_roundtrip(tmp_path):
    featurizer = TfidfFeaturizer(ngram_max=2, min_df=1, max_features=30).fit(CORPUS)
    path = tmp_path / "tfidf.json"
    featurizer.save(path)
    assert os.listdir(tmp_path) == ["tfidf.json"]  # written atomically, nothing left over
    loaded = TfidfFeaturizer.load(path)
    assert loaded.vocabulary == featurizer.vocabulary
    assert loaded.get_config() == featurizer.get_config()
    for text in CORPUS:
        for a, b in zip(featurizer.transform(text), loaded.transform(text)):
            np.testing.assert_array_equal(a, b)


def test_load_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        TfidfFeaturizer.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        TfidfFeaturizer.load(bad)
    good = tmp_path / "good.json"
    TfidfFeaturizer().fit(["a b", "b c"]).save(good)
    state = json.loads(good.read_text())
    for key, value, field in [("format", "other", "format"), ("version", 99, "version"),
                              ("tokens", "words", None),
                              ("document_frequency", [1], "document_frequency"),
                              ("vocabulary", ["a", "a", "b"], "vocabulary"),
                              ("num_docs", 0, "num_docs")]:
        broken = dict(state, **{key: value})
        bad.write_text(json.dumps(broken))
        with pytest.raises(DataError) as e:
            TfidfFeaturizer.load(bad)
        assert str(e.value).startswith(f"{bad}: field '{field}'" if field else f"{bad}: "), str(e.value)


def test_loads_a_version_1_file_as_the_ascii_tokenizer(tmp_path):
    """Featurizers saved before the unicode tokenizer keep tokenising as they were fitted."""
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"format": "tfxc.TfidfFeaturizer", "version": 1, "token_pattern": "[a-z0-9]+",
                                "lowercase": True, "ngram_max": 1, "min_df": 1, "max_features": None,
                                "sublinear_tf": True, "num_docs": 2, "vocabulary": ["caf", "b"],
                                "document_frequency": [2, 1]}))
    featurizer = TfidfFeaturizer.load(path)
    assert featurizer.tokens == "ascii" and featurizer.transform("Café")[0].tolist() == [0]
    path.write_text(path.read_text().replace("[a-z0-9]+", "\\\\w+"))
    with pytest.raises(DataError, match="different tokenizer") as e:
        TfidfFeaturizer.load(path)
    assert "field 'token_pattern'" in str(e.value)


def test_fit_errors():
    with pytest.raises(DataError, match="zero texts"):
        TfidfFeaturizer().fit([])
    with pytest.raises(DataError, match="empty vocabulary"):
        TfidfFeaturizer(min_df=2).fit(["a", "b"])
    with pytest.raises(TypeError):
        TfidfFeaturizer().fit(["ok", 3])
    with pytest.raises(ValueError):
        TfidfFeaturizer(ngram_max=4)
    with pytest.raises(ValueError, match="accents"):
        TfidfFeaturizer(accents="strip")
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfFeaturizer().transform("x")


@needs_data
def test_reproduces_reuters_bow_files():
    # reuters/README.md: tokens [a-z0-9]+ lowercased, df >= 2 on train, vocabulary by
    # df descending then token, raw tf * smoothed idf, L2 rows, 6 significant digits.
    d = DATA / "reuters"
    featurizer = TfidfFeaturizer(min_df=2, sublinear_tf=False, tokens="ascii").fit(
        r.text for r in iter_jsonl(d / "train.jsonl"))
    names = (d / "features.txt").read_text(encoding="utf-8").splitlines()
    assert featurizer.vocabulary == names and featurizer.num_features == 15_200
    for split in ("train", "test"):
        records = iter_jsonl(d / f"{split}.jsonl")
        for i, (rec, row) in enumerate(zip(records, XcBowReader(d / f"{split}.txt"))):
            if i == 1500:
                break
            idx, val = featurizer.transform(rec.text)
            np.testing.assert_array_equal(idx, row.feat_idx)
            np.testing.assert_allclose(val, row.feat_val, rtol=1e-5)
