"""Strict configs: unknown keys with suggestions, type errors, cross-field rules, overrides."""

from __future__ import annotations

import glob
import json
import os

import pytest
from helpers import REPO, run_cli

from tfxc.config import config_to_json, load_config
from tfxc.errors import ConfigError


def load(*overrides):
    return load_config(None, ["data.dir=d", *overrides])


@pytest.mark.parametrize("override, message", [
    ("model.head.use_bais=true", "model.head: unknown key 'use_bais' (did you mean 'use_bias'?)"),
    ("trainer.global_batch=64", "trainer: unknown key 'global_batch' (did you mean 'global_batch_size'?)"),
    ("model.head.name=softmx", "model.head.name: unknown head 'softmx' (did you mean 'softmax'?)"),
    ("model.encoder.name=sparse", "unknown encoder 'sparse'"),
    ("trainer.epochs=\"ten\"", "trainer.epochs: expected a number, got str 'ten'"),
    ("trainer.global_batch_size=1.5", "trainer.global_batch_size: expected an integer"),
    ("runtime.deterministic=1", "runtime.deterministic: expected true or false"),
    ("eval.ks=[1,0]", "eval.ks [1, 0] must be >= 1"),
    ("data.format=svm", "data.format 'svm' is not one of"),
    ("optimizer.schedule=cosin", "optimizer.schedule 'cosin' is not one of"),
    ("runtime.cpu_replicas=2", "runtime.cpu_replicas (2) needs runtime.strategy 'mirrored'"),
    ("model.encoder.dropout=1.5", "model.encoder.dropout (1.5) must be in [0, 1)"),
    ("loss.name=scnt", "loss.name: unknown loss 'scnt' (did you mean 'scent'?); known: asgd, bsgd, distill, head, "
                       "scent, softplus, sox, umax"),
    ("loss.name=scent", "loss 'scent' scores sampled labels through Head.label_logits, which head 'one_vs_all' "
                        "does not have; use one of: linear"),
    ("optimizer.algorithm=scent", "optimizer.algorithm has moved to loss.name"),
    ("optimizer.umax_delta=1", "optimizer.umax_delta has moved to loss.delta"),
    ("loss.rho=2", "loss: unknown key 'rho'"),
    ("data.source_dir=feats", "data.source_dir is for format 'dense', not 'tfrecord'"),
    ("trainer.eval_every_epochs=-1", "eval_every_epochs (-1.0) must be >= 0"),
    ("trainer.select_metric=P@5", "trainer.select_metric chooses among periodic evaluations: set "
                                  "trainer.eval_every_epochs"),
    ("trainer.patience=3", "trainer.patience needs trainer.select_metric"),
    ('trainer.select_metric="acc"', "trainer.select_metric 'acc' must be one of P@k, nDCG@k, PSP@k"),
    ('data.val_percent=100', "data.val_percent (100) must be in [0, 100)"),
])
def test_bad_values_are_reported_with_their_path(override, message):
    with pytest.raises(ConfigError) as e:
        load(override)
    assert message in str(e.value)


def test_select_metric_needs_its_k_among_the_evaluated_ones():
    with pytest.raises(ConfigError, match=r"trainer.select_metric 'P@10': k = 10 is not in eval.ks \[1, 3, 5\]"):
        load("trainer.select_metric=P@10", "trainer.eval_every_epochs=1")
    assert load("trainer.select_metric=PSP@5", "trainer.eval_every_epochs=1").trainer.select_metric == "PSP@5"


def test_cross_field_rules_name_the_values():
    with pytest.raises(ConfigError, match=r"set epochs \(> 0\) or train_steps \(> 0\); got epochs=0.0"):
        load("trainer.epochs=0")
    with pytest.raises(ConfigError, match="format 'pecos' needs a 'train' source file"):
        load("data.format=pecos")
    linear = "model.head.name=linear"
    with pytest.raises(ConfigError, match=r"loss.gamma \(0.0\) must be > 0 for 'asgd'"):
        load(linear, "loss.name=asgd")
    with pytest.raises(ConfigError, match=r"loss.gamma \(2.0\) must be in \[0, 1\] for 'sox'"):
        load(linear, "loss.name=sox", "loss.gamma=2")
    with pytest.raises(ConfigError, match="give either source_dir or the train/test/val files, not both"):
        load("data.format=dense", "data.source_dir=feats", "data.train=x.npy")
    assert load(linear, "loss.name=umax", "loss.gamma=1").loss.delta == float("inf")
    assert load(linear, "loss.name=softplus", "loss.gamma=1", "loss.rho=0.5").loss.rho == 0.5


def test_overrides_and_defaults_round_trip(tmp_path):
    config = load("trainer.epochs=3", "model.encoder.hidden_units=[32,16]", "data.train=x.txt")
    assert config.trainer.epochs == 3.0 and config.model.encoder.hidden_units == (32, 16)
    path = tmp_path / "c.json"
    path.write_text(config_to_json(config))
    assert load_config(str(path)) == config  # the resolved config reloads to the same value


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "trainer": {"epochs": 3,}\n}\n')
    with pytest.raises(ConfigError, match=r"bad.json:2: invalid JSON"):
        load_config(str(path))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*.json"))))
def test_shipped_configs_are_valid(path):
    load_config(path)


def test_print_config_prints_every_default():
    result = run_cli("tfxc.train", "--config", "configs/quickstart.json", "--print-config",
                     "--set", "trainer.epochs=2", timeout=60)
    printed = json.loads(result.stdout)
    assert printed["trainer"]["epochs"] == 2.0
    assert printed["runtime"]["collective_timeout_s"] == 300.0  # a default not in the file
    assert printed["model"]["head"] == {"name": "one_vs_all", "use_bias": True, "propensity_weight": 0.0, "loss": "bce",
                                        "sparse_support": 0, "sparse_max_nnz": 64, "sparse_init": 0.0,
                                        "sparse_idf": False}


def test_cli_reports_config_errors_in_one_line():
    result = run_cli("tfxc.train", "--config", "configs/quickstart.json", "--set", "model.encoder.embedings=3",
                     check=False, timeout=60)
    assert result.returncode == 2
    assert "tfxc: error:" in result.stderr and "did you mean 'embedding_dim'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_repeated_key_is_an_error_naming_its_line(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{\n  "optimizer": {\n    "learning_rate": 0.1,\n    "learning_rate": 0.01\n  }\n}\n')
    with pytest.raises(ConfigError, match=r"dup.json:4: key 'learning_rate' appears twice"):
        load_config(str(path))


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_numbers_must_be_finite(value):
    with pytest.raises(ConfigError, match=r"optimizer.learning_rate: expected a finite number"):
        load(f"optimizer.learning_rate={value}")
    # A field whose meaning includes infinity keeps it: U-max's delta (inf = plain ASGD).
    assert load("model.head.name=linear", "loss.name=umax", "loss.gamma=1",
                "loss.delta=Infinity").loss.delta == float("inf")


def test_errors_are_attributed_to_the_set_that_caused_them(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": {"dir": "d"}, "trainer": {"epochs": 2}}))
    with pytest.raises(ConfigError) as e:
        load_config(str(path), ["trainer.epochs=-1", "runtime.seed=3"])
    assert str(e.value).startswith("--set trainer.epochs=-1: ")
    path.write_text(json.dumps({"data": {"dir": "d"}, "trainer": {"epoch": 2}}))
    with pytest.raises(ConfigError) as e:
        load_config(str(path), ["runtime.seed=3"])
    assert str(e.value).startswith(f"{path} (with --set runtime.seed=3): trainer: unknown key 'epoch'")


def test_a_mistake_outside_the_model_is_reported_without_importing_tensorflow(tmp_path):
    # Heads and encoders import TensorFlow (seconds); sections without registries are checked first.
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"data": {"dir": "d"}, "trainer": {"epochz": 2},
                                "model": {"head": {"name": "mach"}}}))
    code = ("import sys\nfrom tfxc.config import load_config\ntry:\n    load_config(sys.argv[1])\n"
            "except Exception as e:\n    print(type(e).__name__, 'tensorflow' in sys.modules, e)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert out.stdout.startswith("ConfigError False ") and "unknown key 'epochz'" in out.stdout, out


def test_train_asks_for_a_config_or_the_data():
    result = run_cli("tfxc.train", check=False, timeout=60)
    assert result.returncode == 2 and "--config (a JSON experiment config" in result.stderr
    assert "or --train (a data file: tfxc chooses the recipe) is required" in result.stderr
    both = run_cli("tfxc.train", "--config", "configs/quickstart.json", "--train", "t.txt", check=False, timeout=60)
    assert both.returncode == 2 and "give either --config or --train" in both.stderr


def test_setting_another_name_starts_the_entry_afresh():
    # The recipe's decoupled softmax has options the one-vs-all head does not know: naming another head
    # drops them (as a thin config's entry does); later --set keys go into the new entry.
    from tfxc.config.loading import apply_overrides

    recipe = {"model": {"head": {"name": "softmax", "multi_label_loss": "decoupled", "propensity_weight": 0.5}}}
    got = apply_overrides(recipe, ["model.head.name=one_vs_all", "model.head.propensity_weight=0.25"])
    assert got["model"]["head"] == {"name": "one_vs_all", "propensity_weight": 0.25}
    # The same name keeps the options, and the input tree is not changed.
    assert apply_overrides(recipe, ["model.head.name=softmax"]) == recipe
    assert recipe["model"]["head"]["multi_label_loss"] == "decoupled"
    config = load_config(None, ["data.dir=d", "model.head.name=softmax", "model.head.multi_label_loss=decoupled",
                                "model.head.name=one_vs_all"])
    assert type(config.model.head).__name__ == "OneVsAllHeadConfig"
