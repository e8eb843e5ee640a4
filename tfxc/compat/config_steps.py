"""The upgrade steps of configs (`tfxc.compat.formats.CONFIG`, `TRAINED_CONFIG`), on the JSON layout.

A config without a version is either written by hand (today's keys, usually) or written before configs
were versioned; the steps below therefore change only what is spelled the old way and leave the rest.
"""

from __future__ import annotations

import warnings

from tfxc.compat.deprecations import FormatWarning
from tfxc.utils.display import json_text

# Keys that moved to another section (2026-11-22): optimizer.* -> loss.*, when the dual-variable
# objectives became losses of their own registry instead of an optimizer option.
MOVED_KEYS = {"optimizer.algorithm": "loss.name", "optimizer.gamma": "loss.gamma",
              "optimizer.softplus_rho": "loss.rho", "optimizer.umax_delta": "loss.delta",
              "optimizer.negative_correction": "loss.negative_correction"}
_WHY = 'the dual-variable objectives are losses now, e.g. "loss": {"name": "scent", "gamma": 12}'
# The moved keys (their old leaf names) each dual objective's loss config reads; the others it never used.
_READ_BY = {"bsgd": ("negative_correction",)}
_READ_BY.update({name: ("gamma", "negative_correction") for name in ("asgd", "sox", "scent")})
_READ_BY.update(softplus=("gamma", "softplus_rho", "negative_correction"),
                umax=("gamma", "umax_delta", "negative_correction"))


def moved_key_message(dotted: str) -> str | None:
    """The message for `dotted` (e.g. "optimizer.algorithm") given in today's spelling, as a `--set` is:
    where it went and why; None for a key that never moved."""
    moved = MOVED_KEYS.get(dotted)
    return f"{dotted} has moved to {moved} ({_WHY})" if moved else None


def loss_section(config: dict) -> dict:
    """Format 0 -> 1 (2026-11-22): the dual-variable objectives moved from the optimizer to the loss section.

    optimizer.{algorithm, gamma, softplus_rho, umax_delta, negative_correction} became loss.{name, gamma,
    rho, delta, negative_correction}. An algorithm "" (the head's own loss) becomes no loss section; a named
    one becomes its loss with the options that loss reads (the others had no effect on it). Warns
    (`FormatWarning`) with the new spelling.

    Raises:
      ValueError: an unknown algorithm, or both the old keys naming an algorithm and a loss section.
    """
    optimizer = config.get("optimizer")
    if not isinstance(optimizer, dict):
        return config
    old = {key: value for key, value in optimizer.items() if f"optimizer.{key}" in MOVED_KEYS}
    if not old:
        return config
    out = {**config, "optimizer": {key: value for key, value in optimizer.items() if key not in old}}
    algorithm = old.get("algorithm", "")
    if algorithm:
        if algorithm not in _READ_BY:
            raise ValueError(f"optimizer.algorithm {algorithm!r} is not one of \"\", {', '.join(_READ_BY)}")
        if "loss" in config:
            raise ValueError(f"optimizer.algorithm {algorithm!r} (the old spelling) and a loss section are both "
                             f"given; {_WHY}")
        out["loss"] = {"name": algorithm, **{MOVED_KEYS[f"optimizer.{key}"].split(".", 1)[1]: value
                                             for key, value in old.items() if key in _READ_BY[algorithm]}}
    moved = ", ".join(f"optimizer.{key} -> {MOVED_KEYS[f'optimizer.{key}']}" for key in old)
    new = f'"loss": {json_text(out["loss"])}' if algorithm else "no loss section (the head's own loss)"
    warnings.warn(f"config keys moved ({moved}): read as {new}; {_WHY.split(',')[0]}. Write the config so to "
                  "silence this warning", FormatWarning, stacklevel=2)
    return out


# A head's prediction settings moved into its `prediction` section (2026-11-29), {old key: key there}: a label
# tree's (and XR-Transformer's) beam, re-ranking and shortlist weight, MACH's candidate-set evaluation.
PREDICTION_KEYS = {"beam_size": "beam_size", "propensity_rerank": "propensity_rerank",
                   "shortlist_weight": "shortlist_weight", "eval_top_buckets": "top_buckets",
                   "eval_min_freq": "min_freq"}


def prediction_section(config: dict) -> dict:
    """Format 1 -> 2 (2026-11-29): a head's prediction settings moved into `model.head.prediction`.

    model.head.{beam_size, propensity_rerank, shortlist_weight} became model.head.prediction.{the same};
    MACH's model.head.{eval_top_buckets, eval_min_freq} became model.head.prediction.{top_buckets, min_freq}.
    Where both places are given the old one wins: a `--set` typed the old way on top of a config written the
    new way (`respelled_override`). Warns (`FormatWarning`) with the new spelling.
    """
    model = config.get("model")
    head = model.get("head") if isinstance(model, dict) else None
    if not isinstance(head, dict) or not any(key in head for key in PREDICTION_KEYS):
        return config
    prediction = head.get("prediction", {})
    if not isinstance(prediction, dict):
        raise ValueError(f"model.head.prediction: expected an object, got {json_text(prediction)}")
    old = {key: value for key, value in head.items() if key in PREDICTION_KEYS}
    moved = {**prediction, **{PREDICTION_KEYS[key]: value for key, value in old.items()}}
    head = {**{key: value for key, value in head.items() if key not in old}, "prediction": moved}
    warnings.warn("a head's prediction settings have their own section now: "
                  + ", ".join(f"model.head.{key} -> model.head.prediction.{PREDICTION_KEYS[key]}" for key in old)
                  + ". Write the config so to silence this warning", FormatWarning, stacklevel=2)
    return {**config, "model": {**model, "head": head}}


def respelled_override(keys: list[str]) -> list[str]:
    """The keys of a `--set` (["model", "head", "beam_size"]) in today's spelling (["model", "head",
    "prediction", "beam_size"]), warning (`FormatWarning`) where they were the old one (`prediction_section`)."""
    if len(keys) == 3 and keys[:2] == ["model", "head"] and keys[2] in PREDICTION_KEYS:
        new = ["model", "head", "prediction", PREDICTION_KEYS[keys[2]]]
        warnings.warn(f"--set {'.'.join(keys)} is spelled --set {'.'.join(new)} now", FormatWarning, stacklevel=2)
        return new
    return keys


def named_tokenizer(config: dict) -> dict:
    """A training run's config (JSON layout) written before data.text.tokens existed (2026-11-27) names no
    tokenizer: JSONL text was then tokenised by "ascii", which it is read as (today's default differs). A
    config.json written since names its tokenizer: every field is written."""
    data = config.get("data")
    text = data.get("text") if isinstance(data, dict) else None
    if isinstance(text, dict) and data.get("format") == "jsonl" and "tokens" not in text:
        return {**config, "data": {**data, "text": {**text, "tokens": "ascii"}}}
    return config


def trained_before_versions(config: dict) -> dict:
    """Format 0 -> 1 of a model directory's config.json (versioned 2026-11-29): what a training run wrote
    before; `named_tokenizer`, then the config's own step (`loss_section`)."""
    return loss_section(named_tokenizer(config))
