"""The in-graph tokenisers against references: keras-hub's WordPieceTokenizer and a Python FastText n-gram list."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.text import (RESERVED_TOKENS, WordPieceSequences, fasttext_ids, learn_wordpiece_vocabulary,
                       read_vocabulary, write_vocabulary)
from tfxc.errors import DataError

CORPUS = ["My card was declined at the café!", "Why was my card declined?", "I lost my card yesterday.",
          "Can I top up by bank transfer?", "The transfer has not arrived", "top up failed, café naïve résumé",
          "東京 card", "declined declined transfer"] * 3
QUERIES = ["MY CARD was DECLINED!!", "Café naïve résumé", "", "   ", "unseenword transfer", "東京の card",
           "a-b/c.d", "x" * 150]


@pytest.fixture(scope="module")
def vocabulary():
    return learn_wordpiece_vocabulary(CORPUS, size=200, min_count=2)


def test_learnt_vocabulary_starts_with_the_reserved_tokens_and_keeps_frequent_words(vocabulary):
    assert vocabulary[:len(RESERVED_TOKENS)] == list(RESERVED_TOKENS)
    assert len(vocabulary) == len(set(vocabulary)) <= 200
    for word in ("card", "declined", "transfer", "cafe"):  # accents are stripped before counting
        assert word in vocabulary, word


def test_wordpiece_ids_equal_keras_hubs_tokenizer(vocabulary):
    import keras_hub

    reference = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=True, strip_accents=True)
    tokenizer = WordPieceSequences(vocabulary, max_length=512)
    out = tokenizer(tf.constant(QUERIES))
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
    for i, query in enumerate(QUERIES):
        expected = np.asarray(reference([query])[0], np.int64)  # eager keras-hub returns Python lists
        np.testing.assert_array_equal(ids[i][mask[i]], expected, err_msg=query)
        assert not ids[i][~mask[i]].any(), "padding must use [PAD] = 0"
    assert ids.dtype == np.int32 and mask.dtype == bool


def test_wordpiece_truncates_wraps_and_pads_to_the_longest_row(vocabulary):
    tokenizer = WordPieceSequences(vocabulary, max_length=5, cls_token="[CLS]", sep_token="[SEP]")
    out = tokenizer(tf.constant(["my card was declined at the cafe", "card", ""]))
    cls, sep = vocabulary.index("[CLS]"), vocabulary.index("[SEP]")
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
    assert ids.shape == (3, 5)
    assert ids[0].tolist() == [cls, vocabulary.index("my"), vocabulary.index("card"), vocabulary.index("was"), sep]
    assert ids[1].tolist() == [cls, vocabulary.index("card"), sep, 0, 0]
    assert ids[2].tolist() == [cls, sep, 0, 0, 0]
    assert mask.sum(axis=1).tolist() == [5, 3, 2]
    bare = WordPieceSequences(vocabulary, max_length=5)(tf.constant(["", ""]))
    assert bare["token_ids"].shape == (2, 1) and not bare["padding_mask"].numpy().any()


def test_wordpiece_runs_the_same_inside_tf_data(vocabulary):
    tokenizer = WordPieceSequences(vocabulary, max_length=16)
    eager = tokenizer(tf.constant(QUERIES))
    in_graph = next(iter(tf.data.Dataset.from_tensor_slices(QUERIES).batch(len(QUERIES)).map(tokenizer)))
    for name in eager:
        np.testing.assert_array_equal(eager[name].numpy(), in_graph[name].numpy())


def reference_fasttext_strings(text: str, word_ngrams: int, minn: int, maxn: int) -> tuple[list[str], list[str]]:
    """FastText's features of one text, in Python: (words, n-grams); words split like the tokeniser."""
    from tfxc.text import split_texts

    words = [w.decode("utf-8") for w in split_texts(tf.constant([text])).to_list()[0]]
    grams = []
    for n in range(2, word_ngrams + 1):
        grams += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    for word in words:
        chars = list(f"<{word}>")
        for n in range(minn, maxn + 1):
            grams += ["".join(chars[i:i + n]) for i in range(len(chars) - n + 1)]
    return words, grams


def test_fasttext_ids_are_the_hashed_words_word_ngrams_and_character_ngrams():
    texts = ["Hello brave new world", "", "ab", "Café, naïve!"]
    ids = fasttext_ids(tf.constant(texts), word_buckets=1000, ngram_buckets=5000, word_ngrams=3,
                       min_char_ngram=2, max_char_ngram=4)
    assert ids.nrows() == len(texts)
    for text, row in zip(texts, ids.to_list()):
        words, grams = reference_fasttext_strings(text, 3, 2, 4)
        expected = []
        if words:
            expected += tf.strings.to_hash_bucket_fast(words, 1000).numpy().tolist()
        if grams:
            expected += (tf.strings.to_hash_bucket_fast(grams, 5000).numpy() + 1000).tolist()
        assert sorted(row) == sorted(expected), text
        assert all(0 <= i < 1000 for i in row[:len(words)])
        assert all(1000 <= i < 6000 for i in row[len(words):])


def test_fasttext_ids_without_character_ngrams():
    ids = fasttext_ids(tf.constant(["a b c"]), word_buckets=10, ngram_buckets=10, word_ngrams=1, max_char_ngram=0)
    assert len(ids.to_list()[0]) == 3


def test_vocabulary_round_trip_and_bad_files(tmp_path, vocabulary):
    path = tmp_path / "vocab.txt"
    write_vocabulary(path, vocabulary)
    assert read_vocabulary(path) == vocabulary
    (tmp_path / "dup.txt").write_text("[UNK]\na\na\n")
    with pytest.raises(DataError, match="unique"):
        read_vocabulary(tmp_path / "dup.txt")
    (tmp_path / "nounk.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"\[UNK\]"):
        read_vocabulary(tmp_path / "nounk.txt")
    with pytest.raises(DataError, match="not found"):
        read_vocabulary(tmp_path / "missing.txt")


def test_a_vocabulary_that_is_not_utf8_names_its_file_and_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("[PAD]\n[UNK]\ncaf\u00e9\nna\u00efve\n".encode("latin-1"))  # a Latin-1 vocab.txt
    with pytest.raises(DataError, match=rf"^{path}:3: .*not.*UTF-8"):
        read_vocabulary(path)
    path.write_text("[UNK]\na\nb\na\n")
    with pytest.raises(DataError, match=rf"^{path}:4: token 'a' repeats line 2"):
        read_vocabulary(path)
    path.write_bytes("\ufeff[UNK]\r\ncaf\u00e9\r\n".encode("utf-8"))  # a BOM and CRLF endings, as an editor saves it
    assert read_vocabulary(path) == ["[UNK]", "caf\u00e9"]


def test_wordpiece_learnt_on_chinese_japanese_and_arabic_text_covers_it():
    corpus = ["这家酒店的服务很好，房间干净。", "质量太差了，用了两天就坏了！", "酒店服务不错，房间很大。",
              "東京タワーに行きました。", "東京の天気はいいです。", "الخدمة ممتازة والموظفون متعاونون",
              "الخدمة سيئة جدا", "Le café était très bon"] * 2
    vocabulary = learn_wordpiece_vocabulary(corpus, size=300, min_count=2)
    for token in ("酒", "店", "東", "京", "الخدمة", "cafe"):  # Han characters one by one, Arabic words whole
        assert token in vocabulary, token
    out = WordPieceSequences(vocabulary, max_length=64)(tf.constant(["酒店的服务很好", "東京タワー", "الخدمة ممتازة"]))
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
    unk = vocabulary.index("[UNK]")
    assert mask.sum(axis=1).tolist() == [7, 5, 2]  # a kana run is one word, cut into pieces: タ ##ワ ##ー
    assert not (ids[mask] == unk).any()
    assert [vocabulary[i] for i in ids[0][mask[0]]] == list("酒店的服务很好")
