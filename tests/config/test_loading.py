"""Strict configs: unknown keys with suggestions, type errors, cross-field rules, overrides."""

from __future__ import annotations

import glob
import json
import os
import re
import sys

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
    ("loss.name=scnt", "loss.name: unknown loss 'scnt' (did you mean 'scent'?); known: active_set, asgd, bsgd, "
                       "distill, head, scent, softplus, sox, umax"),
    ("loss.name=scent", "loss 'scent' scores sampled labels through Head.label_logits, which head 'one_vs_all' "
                        "does not have; use one of: linear"),
    ("optimizer.algorithm=scent", "optimizer.algorithm has moved to loss.name"),
    ("optimizer.umax_delta=1", "optimizer.umax_delta has moved to loss.delta"),
    ("loss.rho=2", "loss: unknown key 'rho'"),
    ("data.source_dir=feats", "data.source_dir is for 'dense' or 'pecos' data"),
    ("trainer.eval_every_epochs=-1", "eval_every_epochs (-1.0) must be >= 0"),
    ("trainer.select_metric=P@5", "trainer.select_metric chooses among periodic evaluations: set "
                                  "trainer.eval_every_epochs"),
    ("trainer.patience=3", "trainer.patience needs trainer.select_metric"),
    ('trainer.select_metric="acc"', "trainer.select_metric 'acc' must be one of P@k, nDCG@k, PSP@k"),
    # Only ASCII digits: str.isdigit() takes '²' (which int() refuses) and '٥' (which int() reads as 5).
    ("trainer.select_metric=P@²", "trainer.select_metric 'P@²' must be one of P@k"),
    ("trainer.select_metric=P@٥", "trainer.select_metric 'P@٥' must be one of P@k"),
    ("trainer.select_metric=P@+5", "trainer.select_metric 'P@+5' must be one of P@k"),
    ("data.val_fold=١/٥", "data.val_fold '١/٥' must be 'i/K'"),
    ("data.val_fold= 1/5", "data.val_fold ' 1/5' must be 'i/K'"),
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


# configs/extract_*.json are options of python -m tfxc.extract (tests/test_extract.py checks them).
@pytest.mark.parametrize("path", sorted(p for p in glob.glob(os.path.join(REPO, "configs", "*.json"))
                                        + glob.glob(os.path.join(REPO, "configs", "*", "*.json"))
                                        if not os.path.basename(p).startswith("extract_")))
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


def test_a_lone_surrogate_in_any_string_names_the_file_and_the_dotted_key(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"data": {"format": "jsonl", "dir": "d", "train": "\\ud800.jsonl", "test": "t.jsonl"},\n'
                    ' "eval": {"ks": [1, 3]}, "imports": ["\\udfff"]}')
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}: data.train: the string '\\ud800.jsonl' contains a lone surrogate U+D800")
    with pytest.raises(ConfigError, match=r"^--set eval.ks=\[1,\"\\udc80\"\]: eval.ks\[1\]: the string '\\udc80'"):
        load('eval.ks=[1,"\\udc80"]')
    with pytest.raises(ConfigError, match=r"data: the key 'x\\udc80' contains a lone surrogate U\+DC80"):
        load("data.x\udc80=1")  # a non-UTF-8 byte in argv, as Python hands it over


def test_a_lone_surrogate_from_the_command_line_is_one_line():
    result = run_cli("tfxc.train", "--config", "configs/quickstart.json", "--set", 'data.dir="runs/\\ud800"',
                     "--print-config", check=False, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("tfxc: error: --set data.dir="), result.stderr
    assert "data.dir: the string 'runs/\\ud800' contains a lone surrogate" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


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


# === A config whose top level is not a JSON object (D12) ===
@pytest.mark.parametrize("text", ["[1, 2]", '"abc"', "5", "null"])
def test_a_config_whose_top_level_is_not_an_object_is_a_config_error(tmp_path, text):
    from tfxc.config.loading import load_config_data
    from tfxc.model_dir import ModelDir

    path = tmp_path / "l.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"^{path}: a config must be a JSON object {{...}} at the top level, got"):
        load_config(str(path))
    with pytest.raises(ConfigError, match=rf"^{path}: a config must be a JSON object"):
        load_config(str(path), ["trainer.epochs=2"])
    with pytest.raises(ConfigError, match=r"^a config must be a JSON object"):  # a config given in memory
        load_config_data(json.loads(text))
    (tmp_path / "config.json").write_text(text)  # read back from a model directory
    with pytest.raises(ConfigError, match="config.json: a config must be a JSON object"):
        ModelDir(str(tmp_path)).load_config()


def test_train_print_config_of_a_list_is_one_line(tmp_path):
    path = tmp_path / "l.json"
    path.write_text("[1,2]\n")
    result = run_cli("tfxc.train", "--config", str(path), "--print-config", check=False, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == (f"tfxc: error: {path}: a config must be a JSON object {{...}} at the top level, "
                             "got list [1, 2]\n")


def test_the_json_records_beside_data_and_models_refuse_other_top_levels(tmp_path):
    from tfxc.data.info import DatasetInfo
    from tfxc.errors import DataError
    from tfxc.model_dir import ModelDir
    from tfxc.utils.json_files import read_json_object

    for text, problem in (("[1]", "must be a JSON object at the top level, got list"),
                          ("null", "must be a JSON object at the top level, got null"),
                          ('{"num_labels": 3', "cannot read the data set's statistics")):
        (tmp_path / "stats.json").write_text(text)
        with pytest.raises(DataError, match=f"stats.json: .*{re.escape(problem)}"):
            DatasetInfo.load(str(tmp_path))
    (tmp_path / "stats.json").write_text('{"num_features": 3}')
    with pytest.raises(DataError, match="stats.json: no 'label_freq' entry"):
        DatasetInfo.load(str(tmp_path))
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "best.json").write_text('"step"')
    with pytest.raises(DataError, match="best.json: the record of the selected weights must be a JSON object"):
        ModelDir(str(tmp_path)).best()
    with pytest.raises(DataError, match="x.json: the file is missing"):
        read_json_object(str(tmp_path / "x.json"))
    # The evaluation log a resumed run reads: one object per line.
    from tfxc.utils.json_files import read_json_lines

    (tmp_path / "eval_log.jsonl").write_text('{"step": 8, "split": "val"}\n\n[8]\n')
    with pytest.raises(DataError, match=r"eval_log.jsonl:3: the evaluation log: expected a JSON object, got list"):
        read_json_lines(str(tmp_path / "eval_log.jsonl"), "the evaluation log")


# === imports: code a model directory can make run (D3) ===
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root as the README lays it out (model dirs under runs/, commands run from the root, which
    `python -m` puts first on sys.path), with a model directory someone else made: runs/shared_model."""
    root = tmp_path / "proj"
    model_dir = root / "runs" / "shared_model"
    model_dir.mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delenv("TFXC_TRUSTED_IMPORTS", raising=False)
    before = set(sys.modules)
    yield root, model_dir
    for name in set(sys.modules) - before:  # the modules a test imported from its own directory
        if name.startswith(("runs", "trust_")):
            del sys.modules[name]


def canary_module(path, canary) -> None:
    """Writes a module whose import appends to `canary` (the proof that its code ran)."""
    path.write_text(f"open({str(canary)!r}, 'a').write('ran\\n')\n")


def store_config(model_dir, imports) -> None:
    (model_dir / "config.json").write_text(json.dumps({"data": {"dir": "d"}, "imports": imports}))


def test_a_module_inside_a_model_directory_never_runs(project):
    """The D3 repro: `runs.shared_model.tb_plugin` is reachable from the project root as a namespace package."""
    from tfxc.model_dir import ModelDir

    root, model_dir = project
    canary = root / "CANARY"
    canary_module(model_dir / "tb_plugin.py", canary)
    store_config(model_dir, ["runs.shared_model.tb_plugin"])
    with pytest.raises(ConfigError) as refused:
        ModelDir("runs/shared_model").load_config()
    assert str(refused.value) == (
        "runs/shared_model/config.json: imports modules (runs.shared_model.tb_plugin), and importing them runs "
        "their code; pass --trust-imports if you trust the model directory runs/shared_model (in Python: "
        "trust_imports=True; or name the modules in $TFXC_TRUSTED_IMPORTS)")
    # Trusted or not, a module that is a file inside the model directory is refused.
    for trust in (True, ["runs.shared_model.tb_plugin"], ["runs"]):
        with pytest.raises(ConfigError, match=r"'runs.shared_model.tb_plugin' would be imported from .*"
                                              r"tb_plugin.py, inside the model directory runs/shared_model"):
            ModelDir("runs/shared_model").load_config(trust_imports=trust)
    # Also when the model directory is a package whose __init__ would run first, and when it is the current
    # directory and the module is named plainly.
    canary_module(model_dir / "__init__.py", canary)
    with pytest.raises(ConfigError, match=r"would be imported from .*__init__.py, inside the model directory"):
        ModelDir("runs/shared_model").load_config(trust_imports=True)
    os.chdir(model_dir)
    sys.path.insert(0, "")
    try:
        store_config(model_dir, ["tb_plugin"])
        with pytest.raises(ConfigError, match=r"'tb_plugin' would be imported from .*tb_plugin.py, inside the "
                                              r"model directory \."):
            ModelDir(".").load_config(trust_imports=True)
    finally:
        sys.path.remove("")
    assert not canary.exists()


def test_a_model_directory_s_imports_run_only_when_trusted(project, monkeypatch):
    """A plain `imports: ["mod"]` finds a mod.py in the current directory: it runs only when the caller
    trusts it (--trust-imports / trust_imports=True, its name, or $TFXC_TRUSTED_IMPORTS)."""
    from tfxc.model_dir import ModelDir

    root, model_dir = project
    canary = root / "CANARY"
    for name in ("trust_a", "trust_b", "trust_c", "trust_d"):
        canary_module(root / f"{name}.py", canary)
    stored = ModelDir(str(model_dir))
    store_config(model_dir, ["trust_a"])
    with pytest.raises(ConfigError, match=r"imports modules \(trust_a\), and importing them runs their code"):
        stored.load_config()
    with pytest.raises(ConfigError, match=r"imports modules \(trust_a\)"):
        stored.load_config(trust_imports=["trust_b"])
    assert not canary.exists()
    stored.load_config(trust_imports=["trust_a"])
    assert canary.read_text() == "ran\n"
    stored.load_config()  # imported now: importing it again runs nothing, so no trust is needed
    assert canary.read_text() == "ran\n"
    store_config(model_dir, ["trust_b"])
    stored.load_config(trust_imports=True)
    store_config(model_dir, ["trust_c"])
    monkeypatch.setenv("TFXC_TRUSTED_IMPORTS", "other, trust_c")
    stored.load_config()
    monkeypatch.delenv("TFXC_TRUSTED_IMPORTS")
    # Names the caller gives with --set are the caller's own.
    stored.load_config(["imports=[\"trust_d\"]"])
    assert canary.read_text() == "ran\n" * 4
    # A config the user passes is the user's own: its imports run as asked (tfxc.train --config).
    (root / "mine.json").write_text(json.dumps({"data": {"dir": "d"}, "imports": ["trust_e"]}))
    canary_module(root / "trust_e.py", canary)
    load_config(str(root / "mine.json"))
    assert canary.read_text() == "ran\n" * 5


def _float_keys(cls, prefix: str, overrides: tuple = ()):
    """(overrides naming the registry entries on the way, key, is a tuple, allows ±inf) of every float field
    under the config class `cls`, through every head, encoder and loss of the registries."""
    import dataclasses
    import typing

    from tfxc.registry import get_registry

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, kind = f"{prefix}{f.name}", hints[f.name]
        if "registry" in f.metadata:
            registry = get_registry(f.metadata["registry"])
            for name in registry.names():
                yield from _float_keys(registry.config_class(name), key + ".", overrides + (f"{key}.name={name}",))
        elif dataclasses.is_dataclass(kind):
            yield from _float_keys(kind, key + ".", overrides)
        elif kind is float or typing.get_args(kind)[:1] == (float,):
            yield overrides, key, kind is not float, f.metadata.get("allow_inf", False)


def test_every_float_key_refuses_nan_and_infinity_naming_the_key():
    """Issue 55, item 3, through configs: JSON parsers read NaN, Infinity and 1e400 (as inf); every float of
    every section (and of every head, encoder and loss) refuses them, named, whether from a file or --set."""
    from tfxc.config import ExperimentConfig

    keys = list(_float_keys(ExperimentConfig, ""))
    assert {"eval.threshold", "optimizer.learning_rate", "export.index_recall"} <= {key for _, key, _, _ in keys}
    assert len(keys) > 40, len(keys)
    for overrides, key, is_tuple, allow_inf in keys:
        for text, shown in [("NaN", "nan"), ("1e400", "inf"), ("-Infinity", "-inf")]:
            if allow_inf and shown != "nan":
                continue
            value, where = (f"[{text}]", f"{key}[0]") if is_tuple else (text, key)
            with pytest.raises(ConfigError, match=re.escape(f"{where}: expected a finite number, got {shown}")):
                load(*overrides, f"{key}={value}")


def test_the_config_json_of_a_model_keeps_non_ascii_text_as_itself():
    """Item 19's class: config.json held "\\u5929\\u6c14.jsonl" for the data file 天气.jsonl."""
    text = config_to_json(load("data.train=天气.jsonl", "data.format=jsonl", 'comment="数据"'))
    assert '"train": "天气.jsonl"' in text and '"comment": "数据"' in text
    assert json.loads(text)["data"]["train"] == "天气.jsonl"
