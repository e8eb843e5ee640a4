"""The active-set objective: which labels a step scores and with what weights, its config checks, and its state
in training (the same set on every replica, exact resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, assert_same_weights, checkpoint_weights, cli_env, run_cli, tiny_config

from tfxc._tf import tf
from tfxc.config import load_config
from tfxc.errors import ConfigError
from tfxc.losses.active_set import ActiveSetConfig, ActiveSetObjective


def make_set(num_labels=20, positives=(3, 7, 7), votes=None, step=0, **config):
    objective = ActiveSetObjective(ActiveSetConfig(**config), num_labels)
    counts = np.zeros(num_labels, np.float32)
    np.add.at(counts, list(positives), 1.0)
    label_votes = np.zeros(num_labels, np.float32) if votes is None else np.asarray(votes, np.float32)
    ids, log_weights = objective.active_set(tf.constant(counts), tf.constant(label_votes),
                                            tf.constant(step, tf.int64))
    return ids.numpy(), log_weights.numpy()


def test_positives_then_hard_negatives_by_votes_then_a_uniform_draw_with_its_log_q():
    votes = np.zeros(20)
    votes[[10, 11, 12, 13]] = [5.0, 9.0, 1.0, 9.0]  # 11 and 13 tie: the lower id first
    ids, log_weights = make_set(positives=(3, 7, 7), votes=votes, size=8, uniform=3)
    assert sorted(ids[:2]) == [3, 7] and list(ids[2:5]) == [11, 13, 10]  # D: 5 certain labels (12 cut)
    assert len(set(ids)) == 8 and not set(ids[5:]) & {3, 7, 11, 13, 10}
    np.testing.assert_array_equal(log_weights[:5], 0.0)
    np.testing.assert_allclose(log_weights[5:], np.log((20 - 5) / 3), rtol=1e-6)  # 3 of the other 15 labels


def test_every_label_active_means_no_correction():
    ids, log_weights = make_set(size=20, uniform=5, votes=np.arange(20.0))
    assert sorted(ids) == list(range(20))
    np.testing.assert_array_equal(log_weights, 0.0)


def test_without_hard_negatives_the_rest_is_uniform_and_differs_by_step():
    first, log_weights = make_set(size=6, uniform=0, hard_negatives="none", step=1)
    second, _ = make_set(size=6, uniform=0, hard_negatives="none", step=2)
    assert sorted(first[:2]) == [3, 7] and set(first[2:]) != set(second[2:])
    np.testing.assert_allclose(log_weights[2:], np.log(18 / 4), rtol=1e-6)
    again, _ = make_set(size=6, uniform=0, hard_negatives="none", step=1)
    np.testing.assert_array_equal(again, first)  # the draw is a function of the step (exact resume)


def test_the_weighted_uniform_part_estimates_the_sum_over_the_other_labels():
    f = np.linspace(0.1, 3.0, 20)
    estimates = []
    for step in range(400):
        ids, log_weights = make_set(positives=(3, 7), size=6, uniform=4, step=step)
        estimates.append(np.sum(np.exp(log_weights) * f[ids]))
    assert np.mean(estimates) == pytest.approx(f.sum(), rel=0.02)


def test_the_index_clusters_label_vectors_by_direction():
    objective = ActiveSetObjective(ActiveSetConfig(clusters=2, kmeans_iterations=2), num_labels=6)
    with tf.init_scope():
        objective.centroids = tf.Variable(tf.zeros([2, 2]))
    vectors = tf.constant([[1.0, 0.1], [5.0, 0.0], [0.0, 1.0], [2.0, 0.3], [0.1, 3.0], [-0.1, 2.0]])
    centroids, assignment = objective._rebuilt_index(vectors)
    assignment = assignment.numpy()
    assert len(set(assignment[[0, 1, 3]])) == 1 and len(set(assignment[[2, 4, 5]])) == 1
    assert assignment[0] != assignment[2]
    np.testing.assert_allclose(np.linalg.norm(centroids.numpy(), axis=1), 1.0, rtol=1e-5)


# === Configs ===
def config_with(tmp_path, head, **loss):
    return load_config(tiny_config(tmp_path, model={"head": head}, loss={"name": "active_set", **loss}))


def test_a_config_with_the_objective_validates(tmp_path):
    config = config_with(tmp_path, {"name": "softmax", "multi_label_loss": "decoupled"}, size=32, uniform=8,
                         refresh_steps=10)
    assert config.loss.size == 32 and config.loss.refresh_steps == 10 and config.loss.hard_negatives == "clusters"
    with pytest.raises(ConfigError, match="uniform"):
        config_with(tmp_path, {"name": "softmax"}, size=8, uniform=9)
    with pytest.raises(ConfigError, match="hard_negatives"):
        config_with(tmp_path, {"name": "softmax"}, hard_negatives="tree")


@pytest.mark.parametrize("head,reason", [({"name": "mach", "num_buckets": 8, "num_repetitions": 2}, "MachHead"),
                                         ({"name": "linear"}, "LinearHead"),
                                         ({"name": "one_vs_all", "loss": "zlpr"}, "zlpr"),
                                         ({"name": "softmax", "focal_gamma": 2.0}, "focal_gamma"),
                                         ({"name": "softmax", "cosine": True}, "cosine")])
def test_an_unsupported_head_is_a_clear_config_error(tmp_path, head, reason):
    with pytest.raises(ConfigError, match=f"loss 'active_set'.*{reason}"):
        config_with(tmp_path, head)


# === In training ===
TRAIN = {"train_steps": 24, "checkpoint_every_steps": 8, "eval_every_steps": 0}


def training_config(tmp_path):
    return tiny_config(tmp_path, model={"head": {"name": "softmax", "multi_label_loss": "decoupled",
                                                 "sparse_support": 4, "sparse_max_nnz": 8}},
                       loss={"name": "active_set", "size": 24, "uniform": 4, "clusters": 5, "refresh_steps": 8},
                       trainer=TRAIN)


def objective_state(model_dir: str) -> dict:
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")))
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith("objective/")
            and not k.endswith("_CHECKPOINTABLE_OBJECT_GRAPH")]
    return {k: reader.get_tensor(k) for k in keys}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("active-single")
    config = training_config(tmp)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp / "model"))
    state = objective_state(str(tmp / "model"))
    assert {int(v) for k, v in state.items() if k.startswith("objective/step")} == {24}
    assert any(k.startswith("objective/centroids") and np.any(v != 0) for k, v in state.items())
    return config, checkpoint_weights(str(tmp / "model")), state


@pytest.mark.distributed
def test_mirrored_training_picks_the_same_sets_as_one_process(reference, tmp_path):
    config, weights, state = reference
    model_dir = str(tmp_path / "model")
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model_dir,
                     "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2")
    assert "2 replica(s)" in result.stderr
    assert_same_weights(checkpoint_weights(model_dir), weights, atol=1e-5)
    mirrored = objective_state(model_dir)
    assert mirrored.keys() == state.keys()
    for key in state:
        np.testing.assert_allclose(mirrored[key], state[key], atol=1e-5, err_msg=key)


CRASH_AFTER_CHECKPOINT = """
import os, sys
from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.training.distribute import make_strategy
from tfxc.training.trainer import Trainer

config = load_config(sys.argv[1])
trainer = Trainer(config, sys.argv[2], ensure_converted(config.data), make_strategy(config.runtime))
save = trainer.controller.checkpoints.save


def save_then_die(step):
    save(step)
    if step >= int(sys.argv[3]):
        os._exit(3)


trainer.controller.checkpoints.save = save_then_die
trainer.train()
"""


def test_a_killed_run_resumes_to_the_same_weights_and_index(reference, tmp_path):
    config, weights, state = reference
    model_dir = str(tmp_path / "model")
    # Killed at step 12, between two refreshes (every 8 steps), so the resumed run must read the saved index.
    settings = json.loads(open(config).read())
    settings["trainer"]["checkpoint_every_steps"] = 4
    crash_config = tmp_path / "config.json"
    crash_config.write_text(json.dumps(settings))
    crashed = subprocess.run([sys.executable, "-c", CRASH_AFTER_CHECKPOINT, str(crash_config), model_dir, "12"],
                             cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    assert {int(v) for k, v in objective_state(model_dir).items() if k.startswith("objective/step")} == {12}
    result = run_cli("tfxc.train", "--config", str(crash_config), "--model-dir", model_dir)
    assert "(step 12)" in result.stderr
    resumed = checkpoint_weights(model_dir)
    for name in weights:
        np.testing.assert_array_equal(resumed[name], weights[name], err_msg=name)
    for key, value in objective_state(model_dir).items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
