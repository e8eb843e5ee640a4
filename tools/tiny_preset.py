"""A tiny keras-hub text backbone preset of a given family, random weights, its tokenizer learnt on your texts.

Real checkpoints of RoBERTa, ALBERT, DeBERTaV3, XLM-R or ELECTRA cannot be downloaded here, so the tests
and the text benchmarks exercise each family's own path (its tokenizer kind, special tokens, inputs and
outputs) through a preset written by this tool in keras-hub's native layout (config.json, model.weights.h5,
tokenizer.json + assets), exactly what `Backbone.from_preset(dir)` reads for a downloaded checkpoint.
The weights are random: accuracy measures the path, not the family.

Tokenizers, by family:
  * WordPiece (bert, distil_bert, electra): `tfxc.text.learn_wordpiece_vocabulary`;
  * byte-level BPE (roberta): merges learnt here over GPT-2's byte-to-character map ("Ġ" = a space);
  * SentencePiece unigram (albert, deberta_v3, xlm_roberta): trained with the `sentencepiece` package, with
    the family's special pieces at the ids its keras-hub tokenizer expects.

  python tools/tiny_preset.py --family roberta --texts ../shared/data/banking77/train.jsonl --out runs/presets/roberta
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import sys

from tfxc.cli import positive_int

FAMILIES = ("bert", "distil_bert", "electra", "roberta", "albert", "deberta_v3", "xlm_roberta")


def read_texts(path: str, limit: int) -> list[str]:
    """The "text" field of the first `limit` lines of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for _, line in zip(range(limit), f)]


def byte_characters() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (bytes that print stand for themselves)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(extra)) for b in range(256)}


def learn_byte_pair_merges(texts: list[str], merges: int) -> tuple[dict[str, int], list[str]]:
    """(vocabulary token -> id, merges "a b") of a byte-level BPE learnt on `texts` (Sennrich et al., 2016).

    Words are split as GPT-2 splits them (a leading space belongs to the word), mapped byte by byte to
    printable characters, then the most frequent adjacent pair is merged `merges` times (ties broken by
    the pair's text, so the result is the same on every run).
    """
    import regex

    to_char = byte_characters()
    pattern = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+""")
    words = collections.Counter()
    for text in texts:
        for word in pattern.findall(text):
            words[tuple(to_char[b] for b in word.encode("utf-8"))] += 1
    vocabulary = ["<s>", "<pad>", "</s>", "<unk>", *sorted(set(to_char.values()))]
    learnt = []
    for _ in range(merges):
        pairs = collections.Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        learnt.append(f"{best[0]} {best[1]}")
        vocabulary.append(best[0] + best[1])
        words = collections.Counter({_merge(word, best): count for word, count in words.items()})
    vocabulary.append("<mask>")
    return {token: i for i, token in enumerate(vocabulary)}, learnt


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if word[i:i + 2] == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


# The special pieces each SentencePiece family's keras-hub tokenizer looks up (ids as in the released protos).
SENTENCEPIECE_SPECIALS = {
    "albert": dict(pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece="<pad>", unk_piece="<unk>", bos_piece="[CLS]",
                   eos_piece="[SEP]", user_defined_symbols="[MASK]"),
    "deberta_v3": dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                       eos_piece="[SEP]", unk_piece="[UNK]", user_defined_symbols="[MASK]"),
    "xlm_roberta": dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),  # keras-hub shifts ids by one, fairseq-style
}


def learn_sentencepiece(texts: list[str], family: str, vocabulary_size: int) -> bytes:
    """The serialized proto of a unigram SentencePiece model learnt on `texts` (one thread: deterministic)."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocabulary_size, model_type="unigram",
        character_coverage=1.0, num_threads=1, minloglevel=2, hard_vocab_limit=False,
        **SENTENCEPIECE_SPECIALS[family])
    return model.getvalue()


def build_preset(family: str, texts: list[str], directory: str, *, num_layers: int = 2, hidden_dim: int = 16,
                 num_heads: int = 2, vocabulary_size: int = 600, max_sequence_length: int = 64,
                 seed: int = 0) -> str:
    """Writes a randomly initialised `family` backbone and its tokenizer learnt on `texts` to `directory`."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    models = keras_hub.models
    if family in ("bert", "distil_bert", "electra"):
        from tfxc.text import learn_wordpiece_vocabulary

        vocabulary = learn_wordpiece_vocabulary(texts, size=vocabulary_size, min_count=2)
        tokenizer_class = {"bert": models.BertTokenizer, "distil_bert": models.DistilBertTokenizer,
                           "electra": models.ElectraTokenizer}[family]
        tokenizer = tokenizer_class(vocabulary=vocabulary, lowercase=True)
    elif family == "roberta":
        vocabulary, merges = learn_byte_pair_merges(texts, merges=max(vocabulary_size - 262, 0))
        tokenizer = models.RobertaTokenizer(vocabulary=vocabulary, merges=merges)
    elif family in SENTENCEPIECE_SPECIALS:
        proto = learn_sentencepiece(texts, family, vocabulary_size)
        tokenizer = {"albert": models.AlbertTokenizer, "deberta_v3": models.DebertaV3Tokenizer,
                     "xlm_roberta": models.XLMRobertaTokenizer}[family](proto=proto)
    else:
        raise ValueError(f"unknown family '{family}': one of {', '.join(FAMILIES)}")
    size = tokenizer.vocabulary_size()
    shape = dict(num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim, intermediate_dim=2 * hidden_dim,
                 max_sequence_length=max_sequence_length)
    if family == "albert":
        backbone = models.AlbertBackbone(vocabulary_size=size, embedding_dim=hidden_dim, **shape)
    elif family == "electra":
        backbone = models.ElectraBackbone(vocab_size=size, embedding_dim=hidden_dim, **shape)
    else:
        backbone_class = {"bert": models.BertBackbone, "distil_bert": models.DistilBertBackbone,
                          "roberta": models.RobertaBackbone, "deberta_v3": models.DebertaV3Backbone,
                          "xlm_roberta": models.XLMRobertaBackbone}[family]
        extra = {"bucket_size": max_sequence_length // 2} if family == "deberta_v3" else {}
        backbone = backbone_class(vocabulary_size=size, **shape, **extra)
    os.makedirs(directory, exist_ok=True)
    backbone.save_to_preset(directory)
    tokenizer.save_to_preset(directory)
    return directory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--texts", required=True, help="a JSONL file with a 'text' field (the training texts)")
    parser.add_argument("--out", required=True, help="the preset directory to write")
    parser.add_argument("--rows", type=positive_int, default=5000, help="texts read to learn the tokenizer")
    parser.add_argument("--layers", type=positive_int, default=2)
    parser.add_argument("--hidden", type=positive_int, default=64)
    parser.add_argument("--heads", type=positive_int, default=2)
    parser.add_argument("--vocabulary", type=positive_int, default=2000)
    parser.add_argument("--max-sequence-length", type=positive_int, default=128)
    args = parser.parse_args(argv)
    build_preset(args.family, read_texts(args.texts, args.rows), args.out, num_layers=args.layers,
                 hidden_dim=args.hidden, num_heads=args.heads, vocabulary_size=args.vocabulary,
                 max_sequence_length=args.max_sequence_length)
    print(f"wrote a tiny {args.family} preset to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
