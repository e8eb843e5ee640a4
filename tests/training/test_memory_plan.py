"""The memory plan: its parameter and slot bytes are the really built model's, a run that would not fit is
refused before anything is built (unless told to go on), --plan and fit(plan_only=True) train nothing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import tiny_config

from tfxc.build_context import BuildContext
from tfxc.config import load_config
from tfxc.model_dir import ModelDir
from tfxc.training import memory_plan
from tfxc.training.memory_plan import MemoryPlanError, check_memory, nbytes, plan_memory
from tfxc.utils import memory

# (encoder, head, optimizer) of small models whose weights the plan must count exactly.
MODELS = {
    "ova_bag_hidden": ({"name": "sparse_bow", "embedding_dim": 24, "hidden_units": [12]},
                       {"name": "one_vs_all"}, {"name": "adam"}),
    "softmax_sgd_momentum": ({"name": "sparse_bow", "embedding_dim": 16},
                             {"name": "softmax", "use_bias": False}, {"name": "sgd", "momentum": 0.9}),
    "hashed_repetitions": ({"name": "sparse_bow", "embedding_dim": 8},
                           {"name": "mach", "num_buckets": 10, "num_repetitions": 3}, {"name": "adam"}),
    "linear_plain_sgd": ({"name": "sparse_bow", "embedding_dim": 8}, {"name": "linear"}, {"name": "sgd"}),
    "product_codes": ({"name": "sparse_bow", "embedding_dim": 8}, {"name": "mhp"}, {"name": "adam"}),
}


def converted(tmp_path, **sections):
    """A tiny synthetic config (`helpers.tiny_config`) and its converted data."""
    from tfxc.data.convert import ensure_converted

    path = tiny_config(tmp_path, **sections)
    config = load_config(path, [])
    return path, config, ensure_converted(config.data)


def component(plan, name: str) -> int:
    return next(c.bytes for c in plan.components + plan.transients if c.name == name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_and_slot_bytes_are_those_of_the_built_model(tmp_path, name):
    from tfxc._tf import tf
    from tfxc.model import build_model
    from tfxc.optimizers import build_optimizer

    encoder, head, optimizer = MODELS[name]
    _, config, info = converted(tmp_path, model={"encoder": encoder, "head": head},
                                optimizer={**optimizer, "learning_rate": 0.01})
    plan = plan_memory(config, info)
    model = build_model(config.model, BuildContext.from_info(info, seed=1))
    # The allocated tensors' sizes and TF's dtype sizes, not the plan's shapes and NumPy itemsizes.
    built = sum(int(tf.size(v.value)) * v.value.dtype.size for v in model.variables)
    assert component(plan, "parameters") == built > 0
    opt = build_optimizer(config.optimizer, total_steps=10, sparse_variables=model.sparse_variables)
    opt.build(model.trainable_variables)
    trainable_ids = {id(v) for v in model.trainable_variables}
    # The optimizer's own scalars (iterations, learning rate) are not slots.
    slots = sum(int(tf.size(v.value)) * v.value.dtype.size for v in opt.variables
                if len(v.shape) and id(v) not in trainable_ids)
    assert component(plan, "optimizer slots") == slots
    assert slots == {"adam": 2, "sgd": 1 if optimizer.get("momentum") else 0}[optimizer["name"]] * nbytes(
        model.trainable_variables)
    assert isinstance(model.variables[0].value, tf.Variable)  # the plan's stateless build left real ones alone


def test_the_plan_counts_one_part_of_a_head_trained_in_parts(tmp_path):
    _, config, info = converted(tmp_path, model={"encoder": {"name": "sparse_bow", "embedding_dim": 8},
                                                 "head": {"name": "mach", "num_buckets": 10, "num_repetitions": 4,
                                                          "separate_encoders": True}})
    whole, one = plan_memory(config, info), plan_memory(config, info, part=2)
    assert whole.parts == one.parts == 4 and whole.part_total == one.total
    # Four encoders and four kernels against one of each: the parameters scale with the parts.
    assert component(whole, "parameters") == 4 * component(one, "parameters")
    assert "train.sh runs PARALLEL" in whole.format()


def test_an_active_set_step_holds_scores_of_its_m_labels_per_row(tmp_path):
    head = {"encoder": {"name": "sparse_bow", "embedding_dim": 8}, "head": {"name": "softmax"}}
    _, full, info = converted(tmp_path, model=head)
    active = load_config(tiny_config(tmp_path, model=head, loss={"name": "active_set", "size": 10, "uniform": 2}), [])
    saved = component(plan_memory(full, info), "one training step") - component(plan_memory(active, info),
                                                                                 "one training step")
    # 40 labels against 10, for each of the 64 rows, in every copy of the scores a step holds.
    assert saved == memory_plan.SCORE_COPIES * 4 * 64 * (40 - 10)


def test_a_run_over_the_available_memory_is_refused_unless_told_to_go_on(tmp_path, monkeypatch, caplog):
    _, config, info = converted(tmp_path)
    plan = plan_memory(config, info)
    monkeypatch.setattr(memory_plan, "available_bytes", lambda: 2**20)  # 1 MiB left
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: 100 * 2**20)  # as a fresh process (not pytest's)
    monkeypatch.delenv(memory_plan.IGNORE_ENV, raising=False)
    with pytest.raises(MemoryPlanError, match=r"estimates .* GiB|MiB.*only 1 MiB is available"):
        check_memory(plan)
    check_memory(plan, ignore=True)
    assert "going on: the memory plan is ignored" in caplog.text
    monkeypatch.setenv(memory_plan.IGNORE_ENV, "1")
    check_memory(plan)
    monkeypatch.setattr(memory_plan, "available_bytes", lambda: 64 * 2**30)
    monkeypatch.delenv(memory_plan.IGNORE_ENV)
    check_memory(plan)  # fits


def test_train_refuses_before_writing_a_checkpoint_and_the_flag_overrides(tmp_path, monkeypatch, capsys):
    from tfxc.train import main

    path, _, _ = converted(tmp_path, trainer={"train_steps": 4, "checkpoint_every_steps": 4})
    model_dir = str(tmp_path / "model")
    monkeypatch.setattr(memory_plan, "available_bytes", lambda: 2**20)
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: 100 * 2**20)  # as a fresh process (not pytest's)
    monkeypatch.delenv(memory_plan.IGNORE_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_:
        main(["--config", path, "--model-dir", model_dir])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "tfxc: error: the memory plan estimates" in err and "--ignore-memory-plan" in err
    # Refused before the data card, the config or a checkpoint is written; the lock is released (the next run).
    assert ModelDir(model_dir).latest_checkpoint() is None
    assert not os.path.exists(os.path.join(model_dir, "config.json"))
    assert main(["--config", path, "--model-dir", model_dir, "--ignore-memory-plan", "--skip-eval"]) == 0
    assert ModelDir(model_dir).latest_checkpoint() is not None


def test_plan_prints_every_component_and_exits_without_training(tmp_path, capsys):
    from tfxc.train import main

    path, config, info = converted(tmp_path)
    model_dir = tmp_path / "model"
    assert main(["--config", path, "--model-dir", str(model_dir), "--plan"]) == 0
    out = capsys.readouterr().out
    for name in ("parameters", "optimizer slots", "one training step", "evaluation", "data pipeline", "runtime",
                 "total", "available"):
        assert name in out
    assert "model.encoder.embedding_dim" in out and "trainer.global_batch_size" in out
    assert ModelDir(str(model_dir)).latest_checkpoint() is None  # nothing trained
    assert not (model_dir / "config.json").exists()
    assert main(["--config", path, "--model-dir", str(model_dir), "--plan"]) == 0  # the lock was released


def test_fit_with_plan_only_returns_the_plan_untrained(tmp_path, capsys):
    import tfxc
    from tfxc.data.csr import rows_to_csr
    from tfxc.data.synthetic import SyntheticXmc

    cfg = load_config(None, ["data.dir=unused", "data.synthetic.num_train=300", "data.synthetic.num_test=50",
                             "data.synthetic.num_features=200", "data.synthetic.num_labels=30"]).data.synthetic
    gen = SyntheticXmc(cfg)
    x, y = rows_to_csr(gen.rows("train"), gen.num_features, gen.num_labels)
    config = {"model": {"encoder": {"name": "sparse_bow", "embedding_dim": 16}, "head": {"name": "one_vs_all"}},
              "trainer": {"global_batch_size": 32, "epochs": 1}}
    plan = tfxc.fit(x, y, config=config, model_dir=str(tmp_path / "m"), plan_only=True)
    assert isinstance(plan, memory_plan.MemoryPlan)
    # sparse_bow: [D, 16] + [16]; one_vs_all: [16, L] + [L] (float32).
    assert component(plan, "parameters") == 4 * (200 * 16 + 16 + 16 * 30 + 30)
    assert "total" in capsys.readouterr().out
    assert ModelDir(str(tmp_path / "m")).latest_checkpoint() is None
    assert json.load(open(tmp_path / "m" / "tfrecords" / "stats.json"))["num_labels"] == 30


def test_the_plan_and_the_build_after_it_pick_the_tree_nodes_features_once(tmp_path, monkeypatch):
    from tfxc.model import build_model
    from tfxc.tree import support

    head = {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 4, "sparse_support": 3}
    _, config, info = converted(tmp_path, model={"encoder": {"name": "sparse_bow", "embedding_dim": 8},
                                                 "head": head})
    calls = []
    real = support.node_centroid_support
    monkeypatch.setattr(support, "node_centroid_support", lambda *a, **k: calls.append(1) or real(*a, **k))
    plan_memory(config, info)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=str(model_dir)))
    assert len(calls) == 1  # the build took the plan's tables, and saved them
    saved = support.load_support(str(model_dir / "node_feature_support.npz"))
    for got, want in zip(saved, real(model.head.tree, *_pifa_and_idf(info))[0]):
        np.testing.assert_array_equal(got, want)
    build_model(config.model, BuildContext.from_info(info, seed=1))  # a plan's tables are taken once only
    assert len(calls) == 2


def _pifa_and_idf(info):
    from tfxc.tree import cached_split_pifa

    return cached_split_pifa(info), 3, None  # sparse_idf is off by default


AMAZON_670K = "rows=490449,features=135909,labels=670091,labels_per_row=5.45,features_per_row=75.7"


def test_a_config_whose_data_is_not_there_is_planned_from_a_declared_shape(tmp_path):
    from helpers import run_cli

    # Amazon-670K is not downloaded: without a shape the plan says how to give one, in one line.
    missing = run_cli("tfxc.train", "--config", "configs/mach_amazon670k.json", "--plan", "--model-dir",
                      str(tmp_path / "m"), check=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "data/Amazon-670K/train.txt: not found" in missing.stderr and "--shape rows=" in missing.stderr
    out = run_cli("tfxc.train", "--config", "configs/mach_amazon670k.json", "--plan", "--shape", AMAZON_670K,
                  "--model-dir", str(tmp_path / "m")).stdout
    # MACH's guide: one part's memory, train.sh's total, a part's time and the SavedModel's size.
    assert "the head trains in 32 parts: one part's process needs" in out
    assert "train.sh runs PARALLEL (default 2) at a time" in out
    assert "one part trains in ~" in out and "the SavedModel (tfxc.export)" in out
    assert "planned from the declared shape rows=490449" in out
    assert not os.path.exists("runs/data/amazon-670k/stats.json")


def test_a_declared_shape_names_what_is_wrong_with_it():
    from tfxc.errors import ConfigError
    from tfxc.training.shape_plan import DataShape

    shape = DataShape.parse(AMAZON_670K)
    assert (shape.rows, shape.labels, shape.features_per_row) == (490449, 670091, 75.7)
    assert shape.info().splits["train"]["avg_labels_per_point"] == 5.45
    for text, message in (("rows=10", "give features, labels"), ("rows=x," + AMAZON_670K[11:], "not a number"),
                          ("rows=-1," + AMAZON_670K[11:], "must be positive"), ("cols=3", "not KEY=VALUE")):
        with pytest.raises(ConfigError, match=message):
            DataShape.parse(text)


def test_a_later_training_in_the_process_is_planned_over_what_the_earlier_ones_left(tmp_path, monkeypatch,
                                                                                      caplog):
    # An XR level after the first, a k-fold fold, a best member: the process holds more than the runtime.
    _, config, info = converted(tmp_path)
    monkeypatch.setattr(memory_plan, "_checked_trainings", 0)
    monkeypatch.setattr(memory_plan, "available_bytes", lambda: 64 * 2**30)
    resident = 3 * 2**30
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: resident)
    first, later = plan_memory(config, info), plan_memory(config, info)
    check_memory(first)
    assert "held from earlier stages" not in first.format()
    caplog.clear()
    caplog.set_level("INFO", logger="tfxc.memory")
    check_memory(later)
    held = resident - memory_plan.RUNTIME_BYTES  # the runtime is the process's once: counted by the plan
    assert component(later, "held from earlier stages") == held
    assert later.total == first.total + held
    assert "held from earlier stages" in caplog.text and "3.00 GiB, VmRSS" in caplog.text
    # A process that holds no more than the runtime the plan counts adds nothing.
    monkeypatch.setattr(memory, "current_rss_bytes", lambda: 2**20)
    again = plan_memory(config, info)
    check_memory(again)
    assert component(again, "held from earlier stages") == 0 and again.total == first.total
