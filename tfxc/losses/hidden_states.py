"""Layer-dropping self-distillation: a student holding a few of its teacher's transformer layers learns the
teacher's hidden states as well as its logits (the "intermediate matches" of TextBrewer, Yang et al., 2020;
Sun et al., 2019, "Patient Knowledge Distillation for BERT Model Compression"; DistilBERT's initialisation
from every other teacher layer, Sanh et al., 2019).

States are numbered as Hugging Face's `hidden_states`: 0 is the normalised embeddings, j the output of
transformer layer j (1-based). Student state j is matched with teacher state `layer_map[j]`:

  * a student built with `model.encoder.keep_layers = (i_1, ..., i_k)` (0-based teacher layers) holds
    teacher layer i_j as its layer j, so state j is matched with teacher state i_j + 1 (and 0 with 0);
  * otherwise the k student layers are spread evenly over the N teacher layers: j -> round(j · N / k).

hidden_mse, per example: the mean over the real tokens (the padding mask) and the hidden units of
(student state − teacher state)², summed over the matched states (TextBrewer's `hidden_mse` with the
attention mask, taken per example rather than over the whole batch).
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.errors import ConfigError


def layer_map(student_layers: int, teacher_layers: int, keep_layers: tuple[int, ...] = ()) -> list[int]:
    """[teacher state of student state j for j = 0 .. student_layers] (module docstring)."""
    if keep_layers:
        if len(keep_layers) != student_layers or keep_layers[-1] >= teacher_layers:
            raise ConfigError(f"the student keeps teacher layers {list(keep_layers)}, but has {student_layers} "
                              f"layers and the teacher {teacher_layers}")
        return [0, *(i + 1 for i in keep_layers)]
    if student_layers > teacher_layers:
        raise ConfigError(f"the student has more layers ({student_layers}) than the teacher ({teacher_layers})")
    return [round(j * teacher_layers / student_layers) for j in range(student_layers + 1)]


def hidden_mse(student_states, teacher_states, mapping: list[int], padding_mask) -> tf.Tensor:
    """float32 [B]: Σ_j mean over real tokens and units of (student_states[j] − teacher_states[mapping[j]])².

    Args:
      student_states, teacher_states: lists of [B, T, H] (any float dtype; compared in float32).
      mapping: `layer_map`.
      padding_mask: bool [B, T], True on real tokens.
    """
    mask = tf.cast(padding_mask, tf.float32)[:, :, None]
    tokens = tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0)
    total = 0.0
    for j, t in enumerate(mapping):
        difference = tf.cast(student_states[j], tf.float32) - tf.stop_gradient(tf.cast(teacher_states[t], tf.float32))
        per_token = tf.reduce_mean(tf.square(difference), axis=-1, keepdims=True)
        total += tf.reduce_sum(per_token * mask, axis=[1, 2]) / tokens
    return total


def initialise_student(student, teacher, mapping: list[int]) -> None:
    """Copies the teacher's weights into the student before training: the embeddings and the transformer layer
    each student layer is matched with (`mapping`), and the head (same class and shapes) whole."""
    from tfxc.encoders.pretrained import copy_kept_layers

    copy_kept_layers(teacher.encoder.backbone, student.encoder.backbone, tuple(t - 1 for t in mapping[1:]))
    mine, theirs = student.head.variables, teacher.head.variables
    if type(student.head) is not type(teacher.head) or [v.shape for v in mine] != [v.shape for v in theirs]:
        raise ConfigError(f"init_student copies the teacher's head: the student's {type(student.head).__name__} "
                          f"must have the shapes of the teacher's {type(teacher.head).__name__}")
    for variable, value in zip(mine, theirs):
        variable.assign(value)


class LiveTeacher:
    """The teacher model run beside the student at every step, and the two hidden-state views.

    A plain object on purpose: an objective is checkpointed with the model (a `tf.Module`), and neither the
    teacher's weights nor a second path to the student's belong in the student's checkpoints.
    """

    def __init__(self, teacher_model, student_model, keep_layers: tuple[int, ...]):
        from tfxc.encoders.pretrained import PretrainedEncoder, hidden_state_view

        for side, model in (("teacher", teacher_model), ("student", student_model)):
            encoder = model.encoder
            if not isinstance(encoder, PretrainedEncoder) or encoder.pooling == "pooler":
                raise ConfigError(f"hidden-state distillation needs a pretrained transformer encoder with pooling "
                                  f"cls, mean or first_tokens on both sides; the {side}'s is "
                                  f"{type(encoder).__name__}" + (" with pooling 'pooler'" if
                                                                 isinstance(encoder, PretrainedEncoder) else ""))
        self.teacher, self.student = teacher_model, student_model
        teacher_width = teacher_model.encoder.backbone.hidden_dim
        student_width = student_model.encoder.backbone.hidden_dim
        if teacher_width != student_width:
            raise ConfigError(f"hidden-state distillation compares states of one width: the teacher's are "
                              f"{teacher_width}, the student's {student_width}")
        self.mapping = layer_map(student_model.encoder.backbone.num_layers, teacher_model.encoder.backbone.num_layers,
                                 keep_layers)
        self.teacher_view = hidden_state_view(teacher_model.encoder.backbone)
        self.student_view = hidden_state_view(student_model.encoder.backbone)
        check_same_tokens(teacher_model.encoder, student_model.encoder)

    def step(self, batch, training: bool):
        """(student logits [B, L], teacher logits [B, L], hidden_mse float32 [B]) of one batch."""
        pooled, states = self.student.encoder.call_with_states(batch, self.student_view, training=training)
        logits = self.student.head(pooled, training=training)
        teacher_pooled, teacher_states = self.teacher.encoder.call_with_states(batch, self.teacher_view)
        teacher_logits = tf.stop_gradient(self.teacher.head(teacher_pooled, training=False))
        return logits, teacher_logits, hidden_mse(states, teacher_states, self.mapping, batch["padding_mask"])


PROBE_TEXTS = ("How do I top up my card?", "Café naïve résumé", "我的卡被吞了", "")


def check_same_tokens(teacher_encoder, student_encoder) -> None:
    """The teacher reads the student's token ids at every step: both must tokenise alike."""
    a = teacher_encoder.tokenize(tf.constant(PROBE_TEXTS))
    b = student_encoder.tokenize(tf.constant(PROBE_TEXTS))
    if a["token_ids"].shape != b["token_ids"].shape or not bool(tf.reduce_all(a["token_ids"] == b["token_ids"])):
        raise ConfigError("hidden-state distillation feeds the student's tokens to the teacher: both encoders "
                          "must use one tokenizer and max_length (the same preset)")
