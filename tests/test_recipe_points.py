"""The recipe's points (`fast`, `default`, `best`): valid on every shipped data set, `default` the recipe itself, and
named on the command line, in a thin config and in `tfxc.fit` (and by their old name, "preset", still)."""

import gzip
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import run_cli
from test_recipe import write_synthetic

import tfxc
import tfxc.recipe.rules
from tfxc.config.loading import load_config_data
from tfxc.config.schema import RECIPE_POINTS
from tfxc.errors import ConfigError
from tfxc.recipe import RECIPE, Context, DataProfile, recipe_config
from tfxc.recipe.chain import render, run
from tfxc.recipe.points import FAST_RULES, FAST_WIDTH, POINTS
from tfxc.training.time_plan import Rates, work

# The 8 real extreme-classification sets of ../shared/data, by their BoW train files.
SHIPPED = ("bibtex", "delicious", "corel5k", "medical", "yeast", "reuters", "wordnet-hypernyms", "wordnet-nextword")
# Enough rows for the per-point averages and the label counts' shape; the header gives the sizes.
SAMPLE_ROWS = 20_000
RATES = Rates(matmul_flops=50e9, memory_bytes=5e9)


def sampled_info(path: str, val_share: float = 0.1) -> SimpleNamespace:
    """What `DataProfile.from_info` and `recipe_config` read of converted data, from an XC text file: its header's
    sizes and the averages and label counts of its first `SAMPLE_ROWS` rows, scaled to the whole file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        points, features, labels = map(int, f.readline().split())
        counts, label_total, feature_total, rows = np.zeros(labels, np.int64), 0, 0, 0
        for rows, line in enumerate(f, start=1):
            head, _, rest = line.rstrip("\n").partition(" ")
            ids = [int(label) for label in head.split(",") if label]
            counts[ids] += 1
            label_total, feature_total = label_total + len(ids), feature_total + len(rest.split())
            if rows == SAMPLE_ROWS:
                break
    train = int(points * (1 - val_share))
    return SimpleNamespace(
        splits={"train": {"num_points": train, "avg_labels_per_point": label_total / rows,
                          "avg_features_per_point": feature_total / rows},
                "val": {"num_points": points - train}},
        num_features=features, num_labels=labels, label_freq=np.rint(counts * train / rows).astype(np.int64))


def synthetic_info() -> SimpleNamespace:
    """A synthetic 10^4-label set shaped like BENCHMARKS.md's (20,000 points, 2.9 labels each)."""
    freq = np.maximum(1, (2000 / np.arange(1, 10_001)).astype(np.int64))
    return SimpleNamespace(splits={"train": {"num_points": 18_000, "avg_labels_per_point": 2.9,
                                             "avg_features_per_point": 20.0}, "val": {"num_points": 2_000}},
                           num_features=10_000, num_labels=10_000, label_freq=freq)


def shipped_infos(shared_data):
    for name in SHIPPED:
        directory = os.path.join(shared_data, name)
        train = [f for f in ("train.txt", "train.txt.gz") if os.path.exists(os.path.join(directory, f))][0]
        yield name, sampled_info(os.path.join(directory, train))
    yield "synthetic-1e4", synthetic_info()


DATA = {"format": "xc", "dir": "d", "train": "t.txt", "val_percent": 10}


@pytest.mark.parametrize("centroids", [None, (0.95, 1.0)])  # not measured; measured, nearly the best (a term)
def test_every_point_is_a_valid_config_on_every_shipped_data_set(shared_data, monkeypatch, centroids):
    configs_timed = ("fast", "default", "best")
    monkeypatch.setattr(tfxc.recipe.rules, "measure_centroids", lambda profile, info: centroids)
    for name, info in shipped_infos(shared_data):
        configs = {}
        for point in ("fast", "default", "best"):  # xrt is for text (tests/test_recipe_xrt.py)
            config, why = recipe_config(DATA, info, point, rates=RATES)
            load_config_data(config)  # raises on anything invalid
            assert why[0] == f"recipe: {point} (of fast, default, best, xrt)", name
            assert why[-1].startswith("time (estimated") and all(f"{p} ~" in why[-1] for p in configs_timed), name
            configs[point] = config
        # `best` trains members of the default config (tfxc.runs.members), each told apart by its seed.
        assert configs["best"] == configs["default"], name
        # `fast` asks for less work than `default` on every set: fewer flops and bytes in all.
        profile, val = DataProfile.from_info(info), info.splits["val"]["num_points"]
        cost = {point: work(config, profile, val) for point, config in configs.items()}
        assert all(cost["fast"].steps * getattr(cost["fast"], part) < cost["default"].steps * getattr(cost["default"], part)
                   for part in ("step_flops", "step_bytes")), name
        assert configs["fast"]["model"]["encoder"]["embedding_dim"] == FAST_WIDTH
        assert configs["fast"]["model"]["head"] == configs["default"]["model"]["head"], name  # the same model kind


def test_default_is_the_recipe_exactly(shared_data, monkeypatch):
    monkeypatch.setattr(tfxc.recipe.rules, "measure_centroids", lambda profile, info: (0.95, 1.0))  # a sparse term
    info = sampled_info(os.path.join(shared_data, "bibtex", "train.txt"))
    assert POINTS["default"][1:] == RECIPE  # after the rule that names it
    recipe, recipe_why = run(RECIPE, DataProfile.from_info(info), Context(data=DATA, centroids=(0.95, 1.0),
                                                                           val_points=info.splits["val"]["num_points"]))
    for point in ("default", ""):
        config, why = recipe_config(DATA, info, point, rates=RATES)
        assert config == recipe
        assert why[1:-1] == render(recipe_why)


def fast_of(profile: DataProfile):
    """The recipe's config and reasons for `profile`, and then fast's: its rules run after the recipe's."""
    config, reasons = run(RECIPE, profile, Context())
    fast, fast_reasons = run(FAST_RULES, profile, Context(), config, reasons)
    return config, fast, render(fast_reasons)


def test_fast_rules_on_a_profile():
    # bibtex's shape: 4,392 points -> the recipe's batch 128 (35 steps an epoch, 58 epochs, Adam at 0.001).
    profile = DataProfile(num_points=4_392, num_features=1_836, num_labels=159, labels_per_point=2.38,
                          features_per_point=68.3, tail_share=0.2)
    config, fast, fast_why = fast_of(profile)
    assert fast["model"]["encoder"] == {**config["model"]["encoder"], "embedding_dim": 256}
    # 4 x the batch (512: 9 steps an epoch), about 500 steps at most 30 epochs -> 30 epochs of 9 steps.
    assert (fast["trainer"]["global_batch_size"], fast["trainer"]["epochs"]) == (512, 30)
    assert fast["optimizer"]["learning_rate"] == pytest.approx(0.004)  # x 4, as the batch
    # Six evaluations (every 5 epochs), stopping after 2 without improvement.
    assert (fast["trainer"]["eval_every_epochs"], fast["trainer"]["patience"]) == (5, 2)
    assert any(line.startswith("encoder: a 256-wide bag") for line in fast_why)
    assert any(line.startswith("training: batch 512, 30 epochs of 9 steps") for line in fast_why)
    assert config["model"]["encoder"]["embedding_dim"] == 1024  # the recipe's own config is left alone


def test_fast_stops_the_tree_after_two_epochs():
    # synthetic 10^5's shape: the recipe's tree; fast keeps it, 2 epochs at batch 1024, evaluating each epoch.
    profile = DataProfile(num_points=90_000, num_features=100_000, num_labels=100_000, labels_per_point=5.0,
                          features_per_point=76.0, tail_share=0.6)
    config, fast, fast_why = fast_of(profile)
    assert fast["model"]["head"] == config["model"]["head"] and fast["model"]["head"]["name"] == "label_tree"
    assert (fast["trainer"]["global_batch_size"], fast["trainer"]["epochs"]) == (1024, 2)
    assert (fast["trainer"]["eval_every_epochs"], fast["trainer"]["patience"]) == (1, 2)
    assert any(line.startswith("training: batch 1024, 2 epochs of 88 steps (fast: the tree nears its plateau")
               for line in fast_why)


def test_a_bad_point_is_an_error_with_a_suggestion(tmp_path):
    thin = {"recipe": True, "data": {"format": "xc", "dir": "d", "train": "t.txt"}}
    assert load_config_data({**thin, "recipe": "fast"}).recipe == "fast"
    assert load_config_data(thin).recipe is True  # the recipe decides: default, or xrt for XR-Transformer's head
    with pytest.raises(ConfigError, match=r"recipe 'fats': unknown \(did you mean 'fast'\?\); true, false or one of: "
                                          r"fast, default, best"):
        load_config_data({**thin, "recipe": "fats"})
    with pytest.raises(ConfigError, match=r"recipe: expected true or false or a string, got int 3"):
        load_config_data({**thin, "recipe": 3})
    with pytest.raises(ConfigError, match=r"unknown key 'recipes' \(did you mean 'recipe'\?\)"):
        load_config_data({**thin, "recipes": "fast"})
    x, y = np.eye(4, dtype=np.float32), [[0], [1], [2], [3]]
    with pytest.raises(ConfigError, match=r"did you mean 'default'"):
        tfxc.fit(x, y, recipe="defualt", model_dir=str(tmp_path / "m"))
    with pytest.raises(ConfigError, match=r"recipe 'fast' chooses among the recipe's configs: the config given to "
                                          r"fit is a whole config"):
        tfxc.fit(x, y, config={"data": {}}, recipe="fast", model_dir=str(tmp_path / "w"))


def test_the_old_spelling_preset_still_works_with_a_note(tmp_path, caplog):
    # Before the recipe's points were named by "recipe" they were "presets", keras-hub's word for a saved backbone.
    from tfxc.compat import spellings as old_spellings

    thin = {"recipe": True, "data": {"format": "xc", "dir": "d", "train": "t.txt"}}
    old_spellings._noted.clear()
    with caplog.at_level("WARNING", logger="tfxc.config"):
        assert load_config_data({**thin, "preset": "fast"}).recipe == "fast"
        assert load_config_data(thin, ["preset=best"]).recipe == "best"
        assert load_config_data({**thin, "preset": "fast"}).recipe == "fast"  # noted once
    assert [r.getMessage() for r in caplog.records] == [
        '"preset": "fast" is deprecated; write "recipe": "fast"', '"preset": "best" is deprecated; write "recipe": "best"']
    # A model directory's config.json of before held `"preset": ""`: read without a note.
    caplog.clear()
    assert load_config_data({"data": thin["data"], "recipe": False, "preset": ""}).recipe is False
    assert not caplog.records
    with pytest.raises(ConfigError, match=r"preset 'fats': unknown|recipe 'fats': unknown"):
        load_config_data({**thin, "preset": "fats"})
    with pytest.raises(ConfigError, match=r"preset 'fast' chooses among the recipe's configs: it needs a thin config; "
                                          r"write \"recipe\": \"fast\""):
        load_config_data({"data": thin["data"], "preset": "fast"})  # a whole config has no point
    x, y = np.eye(4, dtype=np.float32), [[0], [1], [2], [3]]
    with pytest.raises(ConfigError, match=r"did you mean 'default'"):
        tfxc.fit(x, y, preset="defualt", model_dir=str(tmp_path / "m"))
    assert "fit(preset='defualt') is deprecated; write fit(recipe='defualt')" in caplog.text


@pytest.mark.slow(reason='runs the CLIs from another working directory: processes of their own')
def test_points_on_the_command_line_and_in_a_thin_config(tmp_path):
    train, test = write_synthetic(tmp_path, num_train=600, num_labels=200)
    widths = {}
    for name, args in {"flag": ["--train", train, "--recipe", "fast"],
                       "set": ["--train", train, "--set", "recipe=fast"],
                       "old flag": ["--train", train, "--preset", "fast"],
                       "old set": ["--train", train, "--set", "preset=fast"],
                       "default": ["--train", train]}.items():
        result = run_cli("tfxc.train", *args, "--test", test, "--model-dir", str(tmp_path / name), "--print-config",
                         timeout=300, cwd=str(tmp_path))
        widths[name] = json.loads(result.stdout)["model"]["encoder"]["embedding_dim"]
        if name.startswith("old"):  # the old spelling still works, and says what to write instead
            assert ("--preset fast is deprecated; write --recipe fast" if name == "old flag" else
                    '"preset": "fast" is deprecated; write "recipe": "fast"') in result.stderr, result.stderr
    assert widths == {"flag": FAST_WIDTH, "set": FAST_WIDTH, "old flag": FAST_WIDTH, "old set": FAST_WIDTH,
                      "default": 1024}
    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps({"recipe": "fast", "trainer": {"epochs": 2},
                                "data": {"format": "xc", "train": train, "test": test, "dir": str(tmp_path / "d")}}))
    result = run_cli("tfxc.train", "--config", str(thin), "--model-dir", str(tmp_path / "thin"), timeout=300,
                     cwd=str(tmp_path))
    out = result.stdout
    assert "  recipe: fast (of fast, default, best, xrt)" in out and "encoder: a 256-wide bag" in out
    assert "time (estimated" in out and f"then {thin}: trainer.epochs=2" in out, out
    resolved = json.loads((tmp_path / "thin" / "config.json").read_text())
    assert "preset" not in resolved and resolved["recipe"] is False and resolved["trainer"]["epochs"] == 2
    assert resolved["model"]["encoder"]["embedding_dim"] == FAST_WIDTH
    bad = run_cli("tfxc.train", "--train", train, "--recipe", "fastest", "--model-dir", str(tmp_path / "bad"),
                  check=False, timeout=120, cwd=str(tmp_path))
    assert bad.returncode == 2 and "recipe 'fastest': unknown (did you mean 'fast'?)" in bad.stderr, bad.stderr
    whole = tmp_path / "whole.json"
    whole.write_text(json.dumps({"data": {"format": "xc", "train": train, "dir": str(tmp_path / "d")}}))
    refused = run_cli("tfxc.train", "--config", str(whole), "--recipe", "fast", check=False, timeout=120,
                      cwd=str(tmp_path))
    assert refused.returncode == 2 and f"{whole} is a whole config" in refused.stderr, refused.stderr


def test_fit_takes_a_point(tmp_path, capsys):
    from test_api import synthetic

    (x, y), _ = synthetic(num_train=300, num_test=10)
    tfxc.fit(x, y, recipe="fast", model_dir=str(tmp_path / "fast"), overrides=["trainer.epochs=1"])
    printed = capsys.readouterr().out  # the recipe's reasons, ending with each point's estimated time
    assert "  recipe: fast (of fast, default, best, xrt)" in printed and "time (estimated" in printed, printed
    config = json.loads((tmp_path / "fast" / "config.json").read_text())
    assert config["model"]["encoder"]["embedding_dim"] == FAST_WIDTH and config["trainer"]["epochs"] == 1


def test_train_s_help_names_every_point(capsys):
    """Item 21: `tfxc.train --help` showed `--preset {fast,default}`, without best."""
    from tfxc import train

    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"--recipe {{{','.join(RECIPE_POINTS)}}}" in text, text
    assert "--preset" not in text  # the old spelling works, unadvertised
    for point in RECIPE_POINTS:
        assert f"{point} (" in text.split("--recipe", 1)[1], (point, text)  # each one said what it is
