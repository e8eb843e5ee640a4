"""The tokens of TF-IDF features, in Python; `tfxc.text.tfidf` runs the same rules as graph ops for serving.

Two tokenizers (`TOKENIZERS`):

* ``"unicode"`` (the default) works for any script:
  1. lowercase (per character; Greek final sigma ς is folded to σ, so that a word's case does not change
     its ending);
  2. with ``fold_accents``, accents are dropped: decompose (NFD), delete the nonspacing marks (Mn),
     recompose (NFC): ``"Café" -> "cafe"``, ``"naïve" -> "naive"``;
  3. every character of a script written without spaces between words (`UNSEGMENTED_SCRIPTS`: Chinese
     Han, Japanese kana, Thai, Lao, Khmer, Myanmar, Bopomofo) is a token on its own. Word bigrams
     (``ngram_max=2``) over them are then character bigrams, the usual features of Chinese text;
  4. the other tokens are the maximal runs of letters, digits and combining marks (``\\p{L}\\p{N}\\p{M}``:
     marks keep Devanagari or Arabic words whole). Everything else separates tokens.

  ``"Don't re-use Café-42, 北京大学"`` gives ``don, t, re, use, café, 42, 北, 京, 大, 学``. On ASCII text
  this is the ``"ascii"`` tokenizer's result.

* ``"ascii"`` (tfxc's first tokenizer, kept for featurizers saved with it): lowercase, then the maximal
  runs of ``[a-z0-9]+``; every other character, non-ASCII letters included, separates tokens
  (``"Café" -> "caf"``).

The patterns are written once (`UNSEGMENTED`, `NOT_A_WORD_CHARACTER`) in the syntax shared by the `regex`
module (here) and RE2 (`tf.strings.regex_replace`, in the graph). The two engines carry different Unicode
versions: on every assigned code point of the blocks of the scripts in everyday use they agree
(tests/data/test_text_terms.py checks each one), but a character of a recently encoded script may separate
tokens in one and not in the other.
"""

from __future__ import annotations

import functools
import unicodedata

__all__ = ["ASCII_PATTERN", "NOT_A_WORD_CHARACTER", "TOKENIZERS", "UNSEGMENTED", "UNSEGMENTED_SCRIPTS",
           "is_unsegmented", "tokenize"]

TOKENIZERS = ("unicode", "ascii")
ASCII_PATTERN = r"[a-z0-9]+"
UNSEGMENTED_SCRIPTS = ("Han", "Hiragana", "Katakana", "Bopomofo", "Thai", "Lao", "Khmer", "Myanmar")
UNSEGMENTED = "[" + "".join(rf"\p{{{script}}}" for script in UNSEGMENTED_SCRIPTS) + "]"
NOT_A_WORD_CHARACTER = r"[^\p{L}\p{N}\p{M}]+"
NONSPACING_MARKS = r"\p{Mn}+"
FINAL_SIGMA, SIGMA = "\u03c2", "\u03c3"


@functools.cache
def _compiled():
    import regex  # keras-hub's dependency too; the standard `re` has no Unicode script classes

    return (regex.compile(f"({UNSEGMENTED})"), regex.compile(NOT_A_WORD_CHARACTER), regex.compile(NONSPACING_MARKS),
            regex.compile(ASCII_PATTERN), regex.compile(UNSEGMENTED))


def fold_accents(text: str) -> str:
    """`text` without its nonspacing marks (NFD, drop Mn, NFC): ``"Crème brûlée" -> "Creme brulee"``."""
    marks = _compiled()[2]
    return unicodedata.normalize("NFC", marks.sub("", unicodedata.normalize("NFD", text)))


def tokenize(text: str, tokens: str = "unicode", accents: str = "keep") -> list[str]:
    """The tokens of `text`, in order (see the module docstring).

    Args:
      text: the raw text (not cut; `TfidfFeaturizer.terms` cuts it first).
      tokens: "unicode" or "ascii".
      accents: "keep" or "fold" (drop accents; "unicode" only, "ascii" drops accented letters anyway).
    """
    unsegmented, separators, _, ascii_word, _ = _compiled()
    if tokens == "ascii":
        return ascii_word.findall(text.lower())
    if tokens != "unicode":
        raise ValueError(f"tokens must be one of {', '.join(TOKENIZERS)}, got {tokens!r}")
    text = text.lower().replace(FINAL_SIGMA, SIGMA)
    if accents == "fold":
        text = fold_accents(text)
    return separators.sub(" ", unsegmented.sub(r" \1 ", text)).split()


def is_unsegmented(token: str) -> bool:
    """Whether `token` is one character of a script written without spaces (a CJK, Thai, ... character)."""
    return len(token) == 1 and _compiled()[4].match(token) is not None
