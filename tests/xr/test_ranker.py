"""The ranker's guard: mixes of the transformer's ranker and the TF-IDF model are scored on validation, the best is
kept (and kept again on resume), and the run says plainly when the transformer did not help."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from tfxc.xr import ranker
from tfxc.xr.xlinear import TreeLinear


class Variable:
    def __init__(self, value):
        self.value = np.asarray(value)

    def assign(self, value):
        self.value = np.asarray(value)

    def numpy(self):
        return self.value


def solution(bias: float, weight: float, with_kernel: bool) -> TreeLinear:
    return TreeLinear(kernel=[np.full((2, 3 if with_kernel else 0), weight, np.float32)],
                      bias=[np.full(2, bias, np.float32)], support=[np.array([[1, 4], [2, -1]], np.int32)],
                      weights=[np.array([[weight, weight], [weight, 0.0]], np.float32)])


def fake_model(joint, tfidf):
    union = joint.mix(tfidf, 1.0)
    return types.SimpleNamespace(sizes=[2], kernels=[Variable(np.zeros((2, 3)))], biases=[Variable(np.zeros(2))],
                                 support_levels=[Variable(union.support[0])],
                                 sparse_kernels=[Variable(np.zeros_like(union.weights[0]))])


def config(mixes):
    return types.SimpleNamespace(model=types.SimpleNamespace(head=types.SimpleNamespace(ranker_mix=mixes)),
                                 trainer=types.SimpleNamespace(select_metric="P@5"))


@pytest.mark.parametrize("peak, says", [(1.0, "+"), (0.5, "+"), (0.0, "did not help")])
def test_the_best_mix_on_validation_is_kept_and_named(tmp_path, caplog, peak, says):
    joint, tfidf = solution(1.0, 1.0, True), solution(0.0, 0.0, False)
    head = fake_model(joint, tfidf)
    # The head's bias is α (joint 1, TF-IDF 0): a validation P@5 that peaks at `peak`.
    evaluate = (lambda: {"P@1": 50.0, "P@5": 40.0 - 10 * abs(float(head.biases[0].value[0]) - peak)})
    with caplog.at_level("INFO", logger="tfxc.xr"):
        alpha, metrics = ranker.choose_mix(config((1.0, 0.75, 0.5, 0.25, 0.0)), head, joint, tfidf, evaluate,
                                           str(tmp_path))
    assert alpha == peak and metrics["P@5"] == pytest.approx(40.0)
    np.testing.assert_allclose(head.biases[0].value, peak)
    np.testing.assert_allclose(head.kernels[0].value, peak)
    assert says in caplog.text
    saved = json.loads((tmp_path / ranker.MIX_CHOICE).read_text())
    assert saved["alpha"] == peak and saved["val"]["0.0"]["P@5"] == pytest.approx(40.0 - 10 * peak)
    # A resumed run takes the saved choice without evaluating again.
    head.biases[0].assign(np.zeros(2))
    assert ranker.choose_mix(config((1.0, 0.0)), head, joint, tfidf, None, str(tmp_path)) == (peak, None)
    np.testing.assert_allclose(head.biases[0].value, peak)


def test_one_mix_or_no_validation_split_takes_the_first_unchecked(tmp_path):
    joint, tfidf = solution(1.0, 1.0, True), solution(0.0, 0.0, False)
    head = fake_model(joint, tfidf)
    assert ranker.choose_mix(config((0.75, 0.0)), head, joint, tfidf, None, str(tmp_path)) == (0.75, None)
    np.testing.assert_allclose(head.biases[0].value, 0.75)


def test_a_mix_that_falls_below_the_tfidf_model_on_any_guarded_metric_is_not_kept():
    results = {1.0: {"P@1": 96.0, "P@5": 24.0, "PSP@5": 92.5}, 0.5: {"P@1": 95.6, "P@5": 24.4, "PSP@5": 95.2},
               0.0: {"P@1": 95.2, "P@5": 24.4, "PSP@5": 95.2}}
    # 1.0 wins P@1 but loses P@5 and PSP@5; 0.5 is at least the TF-IDF model everywhere.
    assert ranker.best_mix(results, (1.0, 0.5, 0.0), "P@1") == 0.5
    results[0.5]["PSP@5"] = 95.1
    assert ranker.best_mix(results, (1.0, 0.5, 0.0), "P@1") == 0.0
    assert "did not help" in ranker.guard_message(results, 0.0, "P@1")
    # Without the TF-IDF model among the mixes, nothing guards: the best on the metric.
    del results[0.0]
    assert ranker.best_mix(results, (1.0, 0.5), "P@1") == 1.0


def test_a_shortfall_within_the_validation_noise_does_not_veto_a_mix():
    # wordnet-hypernyms' fine-tuned ranker on its 6,541 validation rows (BENCHMARKS.md, issue 56's third sitting):
    # P@1 is saturated, and the transformer's +5.6 P@5 was refused over 0.09-0.16 points of it.
    def scores(p1, p5, psp5):
        return {"P@1": p1, "P@5": p5, "PSP@5": psp5, "num_points": 6541}

    results = {1.0: scores(99.79, 91.57, 44.32), 0.75: scores(99.86, 91.567, 44.09), 0.0: scores(99.95, 85.92, 41.01)}
    assert ranker.noise(99.95, 99.86, 6541) == pytest.approx(0.108, abs=1e-3)
    assert ranker.shortfalls(results[1.0], results[0.0]) == ["P@1"]  # 0.16 > 0.126: beyond the noise
    assert ranker.best_mix(results, (1.0, 0.75, 0.0), "P@5") == 0.75
    message = ranker.guard_message(results, 0.75, "P@5")
    assert "+5.65 over the TF-IDF model" in message and "P@1 (-0.09)" in message and "mix 1 refused" in message
    # Without a row count nothing is noise: the strict guard.
    for result in results.values():
        del result["num_points"]
    assert ranker.best_mix(results, (1.0, 0.75, 0.0), "P@5") == 0.0


def test_without_a_tfidf_model_the_solution_is_taken_as_it_is(tmp_path):
    joint = solution(1.0, 1.0, True)
    head = fake_model(joint, solution(0.0, 0.0, False))
    assert ranker.choose_mix(config((1.0, 0.0)), head, joint, None, lambda: {}, str(tmp_path)) == (1.0, None)
    np.testing.assert_allclose(head.kernels[0].value, 1.0)
