"""A Hugging Face checkpoint (config.json + model.safetensors + vocab.txt) as the pretrained text encoder, read
without PyTorch: a tiny BERT written here, its encoding equal to BERT's forward pass computed in NumPy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.numpy import save_file

from tfxc.encoders.pretrained import PretrainedEncoder, resolve_preset
from tfxc.errors import ConfigError

CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 24, "hidden_size": 16,
          "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 20,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "ran", "a", "far",
         "##s", "red", "blue", "big", "small", "tree", "house", "car", "is", "."]


def bert_tensors(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every tensor of a Hugging Face `BertModel` under its name there, random and float32."""
    h, i, v = CONFIG["hidden_size"], CONFIG["intermediate_size"], CONFIG["vocab_size"]

    def normal(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    tensors = {"embeddings.word_embeddings.weight": normal(v, h),
               "embeddings.position_embeddings.weight": normal(CONFIG["max_position_embeddings"], h),
               "embeddings.token_type_embeddings.weight": normal(2, h),
               "embeddings.LayerNorm.weight": 1 + normal(h), "embeddings.LayerNorm.bias": normal(h),
               "pooler.dense.weight": normal(h, h), "pooler.dense.bias": normal(h)}
    for layer in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for name in ("query", "key", "value"):
            tensors[f"{p}attention.self.{name}.weight"], tensors[f"{p}attention.self.{name}.bias"] = \
                normal(h, h), normal(h)
        tensors.update({f"{p}attention.output.dense.weight": normal(h, h), f"{p}attention.output.dense.bias": normal(h),
                        f"{p}attention.output.LayerNorm.weight": 1 + normal(h),
                        f"{p}attention.output.LayerNorm.bias": normal(h),
                        f"{p}intermediate.dense.weight": normal(i, h), f"{p}intermediate.dense.bias": normal(i),
                        f"{p}output.dense.weight": normal(h, i), f"{p}output.dense.bias": normal(h),
                        f"{p}output.LayerNorm.weight": 1 + normal(h), f"{p}output.LayerNorm.bias": normal(h)})
    return tensors


def write_checkpoint(directory, tensors: dict[str, np.ndarray], config=CONFIG) -> str:
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    save_file(tensors, str(directory / "model.safetensors"))
    return str(directory)


def layer_norm(x, t, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + CONFIG["layer_norm_eps"]) * t[f"{name}.weight"] + t[f"{name}.bias"]


def bert_sequence(t: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hugging Face's `BertModel` forward pass (eval mode, segment 0), float64: [B, T, hidden]."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    heads = CONFIG["num_attention_heads"]
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:ids.shape[1]] \
        + t["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, t, "embeddings.LayerNorm")
    erf = np.vectorize(math.erf)
    for layer in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def dense(y, name):
            return y @ t[f"{p}{name}.weight"].T + t[f"{p}{name}.bias"]

        def split(y):
            return y.reshape(*y.shape[:2], heads, -1).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]) + np.where(mask, 0.0, -1e9)[:, None, None]
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = layer_norm(x + dense(context, "attention.output.dense"), t, f"{p}attention.output.LayerNorm")
        inner = dense(x, "intermediate.dense")
        inner = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))  # "gelu": the exact one
        x = layer_norm(x + dense(inner, "output.dense"), t, f"{p}output.LayerNorm")
    return x


@pytest.mark.parametrize("prefix", ["", "bert."])  # a BertModel's names, or a BertFor... task model's
def test_a_safetensors_bert_encodes_as_bert_does(tmp_path, prefix):
    tensors = bert_tensors(np.random.default_rng(0))
    preset = write_checkpoint(tmp_path / "bert", {prefix + k: v for k, v in tensors.items()})
    encoder = PretrainedEncoder(resolve_preset(preset), max_length=12, pooling="mean", dropout=0.0,
                                backbone_dropout=0.0)
    inputs = encoder.tokenize(np.array(["The cat sat on the mat.", "a big red dogs ran far", "tree"]))
    ids, mask = np.asarray(inputs["token_ids"]), np.asarray(inputs["padding_mask"])
    assert ids[0, :9].tolist() == [2, 5, 6, 7, 8, 5, 9, 23, 3]  # [CLS] the cat sat on the mat . [SEP]
    assert ids[1, 4:6].tolist() == [10, 14]  # dogs: dog ##s
    sequence = bert_sequence(tensors, ids, mask)
    expected = (sequence * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(encoder(inputs, training=False)), expected, atol=1e-4, rtol=0)


def test_a_checkpoint_keras_hub_cannot_read_is_refused_by_name(tmp_path):
    tensors = bert_tensors(np.random.default_rng(0))
    pickled = tmp_path / "pickled"
    write_checkpoint(pickled, tensors)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    with pytest.raises(ConfigError, match=r"pickled: a Hugging Face checkpoint needs model.safetensors; its weights "
                                          r"are PyTorch pickles \(pytorch_model.bin\), which tfxc never loads"):
        resolve_preset(str(pickled))
    other = write_checkpoint(tmp_path / "gpt", tensors, {**CONFIG, "model_type": "gpt_neox"})
    with pytest.raises(ConfigError, match=r"gpt/config.json: a Hugging Face 'gpt_neox' checkpoint; keras-hub converts "
                                          r"the text families albert, bert"):
        resolve_preset(other)
    wrong = write_checkpoint(tmp_path / "wrong", tensors, {**CONFIG, "vocab_size": 30})
    with pytest.raises(ConfigError, match=r"wrong: the checkpoint's tensors do not fit its config.json"):
        PretrainedEncoder(resolve_preset(wrong), max_length=12)
