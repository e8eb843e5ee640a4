"""Mixed precision for the heads' big matrix products: bfloat16 inputs, float32 everywhere else.

`model.precision` chooses how a head multiplies its features with its label
weights:

* "float32": everything in float32.
* "mixed_bfloat16": the products run on bfloat16 copies of both operands (the
  weights stay float32 variables, Adam updates them in float32, and the
  products come back as float32, so losses, softmax normalisers and top-k
  see float32), as Keras' `mixed_bfloat16` policy does for its layers. On a
  CPU with AMX tiles this machine's bfloat16 matmul peak is 3.7-4× its float32
  one; on AVX512-BF16 alone, 1.6-1.8× (tf-notes §8). Accuracy is unchanged within
  noise on the sets measured (docs/benchmarks-history.md, "Speed").
* "auto": "mixed_bfloat16" where the machine multiplies bfloat16 natively (a GPU,
  or a CPU with AVX512-BF16 or AMX-BF16), else "float32": without those
  instructions TensorFlow emulates bfloat16 and the products get slower.

Only the products that dominate a step take the option (`Head.matmul`): a small
head (delicious' 983 labels) pays more for the casts than it saves.
"""

from __future__ import annotations

import functools

from tfxc._tf import tf
# CPU flags (as /proc/cpuinfo spells them) of native bfloat16 matrix products.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def native_bfloat16() -> bool:
    """Whether this machine multiplies bfloat16 natively: a GPU, or a CPU with AVX512-BF16 or AMX-BF16."""
    if tf.config.list_physical_devices("GPU"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)
    except OSError:  # not Linux: no way to tell here, stay on float32
        pass
    return False


def resolve(precision: str) -> str:
    """`model.precision` as it runs on this machine: "float32" or "mixed_bfloat16"."""
    if precision == "auto":
        return "mixed_bfloat16" if native_bfloat16() else "float32"
    return precision


def matmul_dtype(precision: str) -> tf.DType:
    """The dtype the heads' big products run in under `precision`."""
    return tf.bfloat16 if resolve(precision) == "mixed_bfloat16" else tf.float32


def mixed_matmul(a: tf.Tensor, b: tf.Tensor, dtype: tf.DType = tf.float32, **kwargs) -> tf.Tensor:
    """`tf.matmul(a, b, **kwargs)` computed in `dtype`, returned as float32.

    The casts are differentiable: the gradients reach float32 variables as float32.
    """
    if dtype == tf.float32:
        return tf.matmul(a, b, **kwargs)
    return tf.cast(tf.matmul(tf.cast(a, dtype), tf.cast(b, dtype), **kwargs), tf.float32)


def mixed_einsum(equation: str, a: tf.Tensor, b: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """`tf.einsum(equation, a, b)` computed in `dtype`, returned as float32 (see `mixed_matmul`)."""
    if dtype == tf.float32:
        return tf.einsum(equation, a, b)
    return tf.cast(tf.einsum(equation, tf.cast(a, dtype), tf.cast(b, dtype)), tf.float32)
