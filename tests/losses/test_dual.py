"""The dual-variable objectives inside the training loop, against a NumPy replay of the spec.

Covers: the ν variable indexed by row id, the first-visit rule, exactly one update
per visit (rows outside the batch untouched), in-batch negatives (the batch's
unique labels), the weight gradient with ν̃ held constant, and the γ schedule.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dual_reference import numpy_step

from tfxc.config import load_config
from tfxc.data.synthetic import write_dense_classification
from tfxc.errors import DataError
from tfxc.losses.dual import inclusion_log_weights
from tfxc.losses.dual_updates import gamma_at_epoch

TRAIN, BATCH = 512, 64  # 8 steps per epoch, every row visited once per epoch


def make_trainer(config, tmp_path):
    from tfxc.data.convert import ensure_converted
    from tfxc.training.distribute import make_strategy
    from tfxc.training.trainer import Trainer

    strategy = make_strategy(config.runtime)
    return Trainer(config, str(tmp_path / "model"), ensure_converted(config.data), strategy)


def dense_config(tmp_path, algorithm="asgd", learning_rate=0.5, **loss) -> str:
    source = tmp_path / "src"
    if not source.exists():
        write_dense_classification(str(source), num_classes=40, dim=8, num_train=TRAIN, num_val=64, num_test=64,
                                   noise=0.5, seed=1)
    config = {
        "data": {"format": "dense", "source_dir": str(source), "dir": str(tmp_path / "data"), "num_shards": 2},
        "model": {"encoder": {"name": "dense_features"}, "head": {"name": "linear", "init_stddev": 0.1}},
        "loss": {"name": algorithm, "gamma": 0.8, **loss},
        "optimizer": {"name": "sgd", "learning_rate": learning_rate, "schedule": "cosine"},
        "trainer": {"global_batch_size": BATCH, "epochs": 3, "steps_per_loop": 4, "log_every_steps": 8,
                    "checkpoint_every_steps": 8, "eval_every_epochs": 1},
        "eval": {"ks": [1, 5]},
        "runtime": {"seed": 5},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def replay_step(x, y, w, nu, algorithm, gamma, lr, log_weights=None):
    """One step of the spec in NumPy (float64): returns (new ν of the rows, new W)."""
    classes, column = np.unique(y, return_inverse=True)
    order = np.argsort([np.flatnonzero(y == c)[0] for c in classes])  # tf.unique: first-appearance order
    classes = classes[order]
    column = np.argsort(order)[column]
    z = x @ w[classes].T
    ell = z - z[np.arange(len(y)), column][:, None]
    if log_weights is not None:  # "logq": the K−1 average becomes Σ_k w_k e^{ℓ_ik}
        ell += log_weights[classes][None, :] + np.log(len(classes) - 1)
    ell[np.arange(len(y)), column] = -np.inf
    new_nu, tilde = numpy_step(algorithm, nu, ell, gamma)
    k = len(classes)
    coef = np.exp(ell - tilde[:, None]) / (k - 1) / len(y)  # d loss_mean / d z_ik, k ≠ y_i
    coef[np.arange(len(y)), column] = -coef.sum(1)
    grad = np.zeros_like(w)
    np.add.at(grad, classes, coef.T @ x)
    return new_nu, w - lr * grad


@pytest.mark.parametrize("algorithm, correction", [("asgd", "none"), ("scent", "none"), ("sox", "logq")])
def test_first_visit_exactly_once_and_a_later_step_match_numpy(tmp_path, algorithm, correction):
    gamma = {"asgd": 0.8, "scent": 2.0, "sox": 0.3}[algorithm]
    trainer = make_trainer(load_config(dense_config(tmp_path, algorithm, gamma=gamma,
                                                    negative_correction=correction)), tmp_path)
    parts = trainer.components
    log_weights = None
    if correction == "logq":
        log_weights = inclusion_log_weights(parts.info.label_freq, BATCH).astype(np.float64)
    objective, head = parts.objective, parts.model.head
    steps = parts.length.steps_per_epoch
    assert steps == TRAIN // BATCH and objective.nu.shape == (TRAIN,)

    def run_step(epoch, step_in_epoch, iterator):
        batch = next(parts.train_iterator(epoch, step_in_epoch))  # the same batch the loop will take
        x, y = parts.model.encoder(batch).numpy().astype(np.float64), batch["labels"].values.numpy()
        rows = batch["row_id"].numpy()
        w, nu = head.kernel.numpy().astype(np.float64), objective.nu.numpy().astype(np.float64)
        lr = float(parts.optimizer.learning_rate)
        objective.start_epoch(epoch + 1)
        trainer.controller.loop(iterator, 1)
        want_nu, want_w = replay_step(x, y, w, nu[rows], algorithm, float(objective.gamma.numpy()), lr,
                                      log_weights)
        got = objective.nu.numpy()
        np.testing.assert_allclose(got[rows], want_nu, rtol=1e-4, atol=1e-5)
        untouched = np.setdiff1d(np.arange(TRAIN), rows)
        np.testing.assert_array_equal(got[untouched], nu[untouched])  # exactly the batch's rows change
        np.testing.assert_allclose(head.kernel.numpy(), want_w, rtol=1e-4, atol=1e-6)
        return rows

    iterator = parts.train_iterator(0, 0)
    first_rows = run_step(0, 0, iterator)
    assert np.count_nonzero(objective.nu.numpy()) == BATCH  # the first visit set ν = log m̂ for these rows only
    trainer.controller.loop(iterator, steps - 1)
    assert np.all(objective.nu.numpy() != 0)  # one epoch visits every row
    # Second epoch: every row is a revisit, so the update uses the stored ν and epoch 2's γ.
    second_rows = run_step(1, 0, parts.train_iterator(1, 0))
    assert set(first_rows) != set(second_rows)  # reshuffled per epoch
    assert float(objective.gamma.numpy()) == pytest.approx(gamma_at_epoch(algorithm, gamma, 2, 3), rel=1e-6)


def test_inclusion_weights_make_the_in_batch_sum_unbiased_for_the_class_mean():
    rng = np.random.default_rng(0)
    freq = np.round(1000 / np.arange(1, 21) ** 1.2).astype(np.int64)  # 20 long-tailed classes
    q, batch = freq / freq.sum(), 8
    log_w = inclusion_log_weights(freq, batch).astype(np.float64)
    pi = 1 - (1 - q) ** batch
    np.testing.assert_allclose(log_w, -np.log(20 * pi), rtol=1e-6)
    values = rng.normal(size=20)  # e^{ℓ_k} for a fixed row
    draws = rng.choice(20, size=(40000, batch), p=q)
    estimates = [np.sum(np.exp(log_w[u] + values[u])) for u in map(np.unique, draws)]
    assert np.mean(estimates) == pytest.approx(np.mean(np.exp(values)), rel=0.02)
    plain = [np.mean(np.exp(values[u])) for u in map(np.unique, draws)]  # the uncorrected K-average
    assert abs(np.mean(plain) / np.mean(np.exp(values)) - 1) > 0.05  # is biased towards frequent classes


def test_training_writes_validation_curves_and_full_softmax_metrics(tmp_path):
    trainer = make_trainer(load_config(dense_config(tmp_path, "scent", learning_rate=2.0, gamma=10.0)), tmp_path)
    metrics = trainer.train()
    lines = [json.loads(line) for line in (tmp_path / "model" / "eval_log.jsonl").read_text().splitlines()]
    assert [(line["split"], line["step"]) for line in lines] == [("val", 8), ("val", 16), ("val", 24),
                                                                 ("test", 24)]
    assert all(np.isfinite(line["CE"]) and 0 <= line["Acc@1"] <= line["Acc@5"] <= 100 for line in lines)
    # Learnable synthetic classes: ten times chance (2.5%), and the loss fell from log(40) at the start.
    assert metrics["Acc@1"] > 25 and metrics["CE"] < np.log(40) - 1
    assert lines[-1]["CE"] == pytest.approx(metrics["CE"])


def test_a_fixed_train_sample_is_scored_beside_val_at_each_evaluation(tmp_path, caplog):
    """eval.train_sample: SCENT's logged train loss, the full-softmax CE of train rows, beside val's."""
    path = dense_config(tmp_path, "scent", learning_rate=2.0, gamma=10.0)
    config = json.loads(open(path).read())
    config["eval"]["train_sample"] = 128
    open(path, "w").write(json.dumps(config))
    with caplog.at_level("INFO", logger="tfxc"):
        make_trainer(load_config(path), tmp_path).train()
    lines = [json.loads(line) for line in (tmp_path / "model" / "eval_log.jsonl").read_text().splitlines()]
    curve = [line["train_sample_CE"] for line in lines if line["split"] == "val"]
    assert len(curve) == 3 and all(np.isfinite(curve)) and curve[-1] < curve[0] < np.log(40) + 1
    assert all(0 <= line["train_sample_Acc@1"] <= 100 for line in lines if line["split"] == "val")
    assert "train_sample_CE" not in lines[-1]  # the final test evaluation scores test alone
    assert any("| train sample of 128: CE" in record.getMessage() for record in caplog.records)


def test_multi_label_data_is_refused(tmp_path):
    config = load_config(None, ["data.format=synthetic", f"data.dir={tmp_path / 'data'}", "model.head.name=linear",
                                "loss.name=scent", "loss.gamma=12", "data.synthetic.num_train=256",
                                "data.synthetic.num_test=64", "trainer.global_batch_size=32"])
    with pytest.raises(DataError, match="needs multi-class data"):
        make_trainer(config, tmp_path)
