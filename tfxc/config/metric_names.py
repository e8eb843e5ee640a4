"""The names of the metrics a config may select on (`trainer.select_metric`), all higher-is-better."""

from __future__ import annotations

# The ranking metrics of tfxc.eval.metrics, named with their cut-off: "P@5", "PSP@3", ...
SELECTABLE_METRICS = ("P", "nDCG", "PSP", "PSnDCG", "R")
# The predicted label sets' metrics of tfxc.eval.classification (with eval.classification): "F1-macro", ...
AVERAGES = ("micro", "macro", "weighted", "samples")
CLASSIFICATION_METRICS = tuple(f"{m}-{a}" for a in AVERAGES for m in ("P", "R", "F1")) + ("accuracy",)
