"""Throughput of the text path on this machine: tokenisation inside tf.data, MiniLM training steps, SavedModel latency.

  python tools/bench_text.py --data ../shared/data/banking77/train.jsonl [--saved-model DIR ...] [--steps 20]

Prints one line per measurement:
  * tokenisation: texts/s of each in-graph tokeniser over the file's texts, batches of 256 mapped
    in tf.data (parallel map, prefetch), the way training runs it;
  * MiniLM training: examples/s of full fine-tuning steps (AdamW-free Adam, batch 32, the texts'
    own lengths up to 64 tokens), float32 and mixed bfloat16;
  * each --saved-model: the median latency of one string through `serving_default` (200 calls after 20
    warm-up calls) and its texts/s on batches of 256.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from tfxc._tf import keras, tf
from tfxc.cli import positive_int


def texts_of(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def tokenisation_rates(texts: list[str]) -> dict[str, float]:
    from tfxc.data.text_features import TfidfFeaturizer
    from tfxc.encoders.pretrained import PretrainedEncoder, default_preset_dir
    from tfxc.text import WordPieceSequences, fasttext_ids, learn_wordpiece_vocabulary
    from tfxc.text.tfidf import TfidfVectorizer

    vocabulary = learn_wordpiece_vocabulary(texts, 30000, 2)
    minilm = PretrainedEncoder(default_preset_dir(), max_length=128, dropout=0.0)
    tokenizers = {
        "wordpiece (learnt vocabulary)": WordPieceSequences(vocabulary, 128),
        "wordpiece (MiniLM, [CLS]/[SEP])": minilm.tokenizer,
        "fasttext n-grams (words, bigrams, 3-5 chars)": lambda b: fasttext_ids(b, word_buckets=1 << 18,
                                                                                ngram_buckets=1 << 20),
        "tf-idf (unigrams + bigrams)": TfidfVectorizer(TfidfFeaturizer(ngram_max=2, min_df=2).fit(texts)),
    }
    out = {}
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts)).batch(256)
    for name, tokenizer in tokenizers.items():
        mapped = dataset.map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
        for _ in mapped.take(2):  # trace
            pass
        start = time.perf_counter()
        for _ in mapped:
            pass
        out[name] = len(texts) / (time.perf_counter() - start)
    return out


def minilm_training_rate(texts: list[str], steps: int, bf16: bool) -> float:
    from tfxc.encoders.pretrained import PretrainedEncoder, default_preset_dir

    encoder = PretrainedEncoder(default_preset_dir(), max_length=64, mixed_bfloat16=bf16)
    encoder.build()
    head = keras.layers.Dense(77)
    head.build((None, encoder.output_dim))
    variables = encoder.trainable_variables + head.trainable_variables
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(variables)
    batches = [encoder.tokenize(tf.constant(texts[i:i + 32])) for i in range(0, 32 * (steps + 2), 32)]
    labels = tf.zeros([32], tf.int32)

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = head(encoder(batch, training=True))
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for batch in batches[:2]:
        step(batch)
    start = time.perf_counter()
    for batch in batches[2:]:
        float(step(batch))
    return 32 * steps / (time.perf_counter() - start)


def saved_model_rates(path: str, texts: list[str]) -> tuple[float, float]:
    import tensorflow_text  # noqa: F401

    serve = tf.saved_model.load(path).signatures["serving_default"]
    for text in texts[:20]:
        serve(text=tf.constant([text]))
    times = []
    for text in texts[20:220]:
        start = time.perf_counter()
        serve(text=tf.constant([text]))
        times.append(time.perf_counter() - start)
    serve(text=tf.constant(texts[:256]))
    start = time.perf_counter()
    count = 0
    for i in range(0, min(len(texts), 256 * 8), 256):
        serve(text=tf.constant(texts[i:i + 256]))
        count += len(texts[i:i + 256])
    return statistics.median(times) * 1000, count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a JSONL file of {\"text\": ...} lines")
    parser.add_argument("--saved-model", action="append", default=[])
    parser.add_argument("--steps", type=positive_int, default=20, help="timed MiniLM training steps")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    texts = texts_of(args.data)
    print(f"{len(texts)} texts from {args.data}")
    for name, rate in tokenisation_rates(texts).items():
        print(f"tokenisation in tf.data, {name}: {rate:,.0f} texts/s")
    if not args.skip_training:
        for bf16 in (False, True):
            rate = minilm_training_rate(texts, args.steps, bf16)
            print(f"MiniLM fine-tuning, batch 32, {'mixed bfloat16' if bf16 else 'float32'}: {rate:.1f} examples/s")
    for path in args.saved_model:
        latency, rate = saved_model_rates(path, texts)
        print(f"SavedModel {path}: one string {latency:.2f} ms (median), batches of 256 {rate:,.0f} texts/s")


if __name__ == "__main__":
    main()
