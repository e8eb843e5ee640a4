"""The TF-IDF tokenizers (tfxc.data.text_terms) on several scripts, and the graph twin (tfxc.text.tfidf) giving
the same tokens code point by code point."""

from __future__ import annotations

import unicodedata

import pytest

from tfxc._tf import tf
from tfxc.data.text_features import TfidfFeaturizer
from tfxc.data.text_terms import is_unsegmented, tokenize
from tfxc.text.tfidf import TfidfVectorizer

# The Unicode blocks of the scripts in everyday use: Latin to the misc. symbols (Greek, Cyrillic, Armenian,
# Hebrew, Arabic, the Indic scripts, Thai, Lao, Tibetan, Myanmar, Georgian, Hangul jamo, Ethiopic, Khmer, ...),
# CJK punctuation, kana and the unified ideographs, Hangul syllables, compatibility and full-width forms.
LIVING_BLOCKS = ((0x20, 0x2BFF), (0x3000, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFFEF))


@pytest.mark.parametrize("text,want", [
    ("Don't re-use Café-42", ["don", "t", "re", "use", "café", "42"]),
    ("北京大学的学生。", ["北", "京", "大", "学", "的", "学", "生"]),
    ("東京タワーに行きました", ["東", "京", "タ", "ワ", "ー", "に", "行", "き", "ま", "し", "た"]),
    ("مرحبًا بالعالم!", ["مرحبًا", "بالعالم"]),  # the tanwin (a combining mark) stays in its word
    ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),
    ("ΟΔΟΣ οδός", ["οδοσ", "οδόσ"]),  # the final sigma of either case is one letter
    ("서울 특별시 2024년", ["서울", "특별시", "2024년"]),  # Korean separates words by spaces
    ("ภาษาไทย", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]),
    ("snake_case, e-mail; x²", ["snake", "case", "e", "mail", "x²"]),
])
def test_unicode_tokens(text, want):
    assert tokenize(text) == want


def test_ascii_tokens_and_folded_accents():
    assert tokenize("Don't re-use Café-42", "ascii") == ["don", "t", "re", "use", "caf", "42"]
    assert tokenize("Crème BRÛLÉE, naïve Ångström", accents="fold") == ["creme", "brulee", "naive", "angstrom"]
    # On ASCII text the two tokenizers agree.
    text = "The 3 cats' toy-box: 42_items & $9.99!"
    assert tokenize(text) == tokenize(text, "ascii")
    assert is_unsegmented("中") and is_unsegmented("ก") and not is_unsegmented("a") and not is_unsegmented("中国")
    with pytest.raises(ValueError, match="tokens must be"):
        tokenize("x", "words")


@pytest.mark.parametrize("accents", ["keep", "fold"])
def test_graph_tokens_match_python_on_every_assigned_code_point(accents):
    """Each assigned code point of the living blocks, inside a word and on its own, upper and lower case."""
    points = [c for lo, hi in LIVING_BLOCKS for c in range(lo, hi + 1)
              if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    texts = [f"a{chr(c)}b {chr(c).upper()}x {chr(c)}" for c in points]
    featurizer = TfidfFeaturizer(accents=accents).fit(["a"])
    graph = TfidfVectorizer(featurizer).tokenize(tf.constant(texts)).to_list()
    different = [(hex(c), text) for c, text, got in zip(points, texts, graph)
                 if [t.decode("utf-8") for t in got] != tokenize(text, accents=accents)]
    assert not different, different[:20]


SAMPLES = [
    "这家酒店的服务很好，房间干净，下次还来。", "质量太差了，用了两天就坏了，不推荐购买！",
    "今日は天気がいいので、公園を散歩しました。", "この映画はとても面白かった。",
    "الخدمة ممتازة والموظفون متعاونون جدا", "المنتج سيئ ولا أنصح به",
    "Le café était très bon, mais le service était lent.", "Ça coûte cher, mais ça vaut le coût.",
    "Ξέρεις ΠΟΥ είναι ο σταθμός;", "Müller's Straße 5 — größer als erwartet", "",
]


@pytest.mark.parametrize("ngram_max,accents", [(1, "keep"), (2, "keep"), (3, "fold")])
def test_vectorizer_rows_match_the_featurizer_on_many_scripts(ngram_max, accents):
    featurizer = TfidfFeaturizer(ngram_max=ngram_max, accents=accents).fit(SAMPLES)
    out = TfidfVectorizer(featurizer)(tf.constant(SAMPLES + ["全新的文本 unseen ÇA"]))
    for text, ids, values in zip(SAMPLES, out["feat_idx"].to_list(), out["feat_val"].to_list()):
        want_ids, want_values = featurizer.transform(text)
        assert ids == want_ids.tolist(), text
        assert values == pytest.approx(want_values.tolist(), rel=1e-6, abs=2e-7)
    vocabulary = set(featurizer.vocabulary)
    assert {"酒", "店", "café" if accents == "keep" else "cafe"} <= vocabulary
    if ngram_max >= 2:
        assert "酒 店" in vocabulary  # Chinese character bigrams
