"""The model directory: one run at a time, resumed only under the same config and on the same data, and
restored from the newest intact checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, checkpoint_weights, cli_env, run_cli, tiny_config


def test_a_second_run_on_the_same_model_dir_is_refused_while_the_first_runs(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 48, "checkpoint_every_steps": 8})
    model_dir = str(tmp_path / "model")
    run_cli("tfxc.convert", "--config", config)  # so that both start training at once
    command = [sys.executable, "-m", "tfxc.train", "--config", config, "--model-dir", model_dir]
    procs = [subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) for _ in range(2)]
    results = [p.communicate(timeout=240) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [err[-2000:] for _, err in results]
    refused = next(err for p, (_, err) in zip(procs, results) if p.returncode == 2)
    assert "is in use by a tfxc.train run (pid" in refused and "Traceback" not in refused
    # The directory is the winner's alone: its config, its final checkpoint and metrics.
    metrics = json.loads(open(os.path.join(model_dir, "metrics.json")).read())
    assert metrics["step"] == 48
    assert not [n for n in os.listdir(os.path.join(model_dir, "checkpoints")) if "_temp" in n]
    # Released at the end: a third run resumes (nothing left to train) without complaint.
    assert "resumed from" in run_cli("tfxc.train", "--config", config, "--model-dir", model_dir).stderr


def test_a_refused_run_names_a_holder_that_writes_its_name_just_after_locking(tmp_path):
    # The race behind a flaky refusal message: the holder has the flock but has not written its name yet.
    import fcntl
    import threading

    from tfxc.errors import TfxcError
    from tfxc.model_dir import LOCK_FILE, ModelDir

    model_dir = ModelDir(str(tmp_path / "model"))
    os.makedirs(model_dir.path)
    fd = os.open(model_dir.file(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    writer = threading.Timer(0.2, lambda: os.pwrite(fd, b"a tfxc.train run (pid 1234 on host)\n", 0))
    writer.start()
    try:
        with pytest.raises(TfxcError, match=r"in use by a tfxc.train run \(pid 1234"):
            model_dir.lock("a tfxc.train run")
    finally:
        writer.join()
        os.close(fd)


@pytest.mark.slow(reason='time: a training run and a refused resume')
def test_resume_refuses_a_changed_config_and_names_the_keys(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 8})
    model_dir = tmp_path / "model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    stored = (model_dir / "config.json").read_text()
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir), "--set", "model.head.name=softmax",
                     "--set", "optimizer.learning_rate=0.5", "--set", "runtime.seed=1", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for change in ('model.head.name: "one_vs_all" -> "softmax"', "optimizer.learning_rate: 0.01 -> 0.5",
                   "runtime.seed: 7 -> 1"):
        assert change in result.stderr, result.stderr
    assert (model_dir / "config.json").read_text() == stored  # not overwritten
    # A model trained before an option existed (its config.json lacks the key) resumes under today's default.
    older = json.loads(stored)
    assert older["optimizer"].pop("clip_norm") == 0.0
    (model_dir / "config.json").write_text(json.dumps(older))
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir), "--set", "trainer.train_steps=12")
    assert "resumed from" in result.stderr and "clip_norm" not in result.stderr
    # Keys that are safe to change (how long, how often, evaluation) resume as before.
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir), "--set", "trainer.train_steps=16",
                     "--set", "trainer.log_every_steps=4", "--set", "eval.ks=[1,2]")
    assert "resumed from" in result.stderr and json.loads((model_dir / "metrics.json").read_text())["step"] == 16
    # On purpose: --allow-changed-config continues from the checkpoint and says what changed.
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir), "--set", "trainer.train_steps=24",
                     "--set", "optimizer.learning_rate=0.001", "--allow-changed-config")
    assert "optimizer.learning_rate: 0.01 -> 0.001" in result.stderr


@pytest.mark.slow(reason='time: two conversions and trainings of banking77')
def test_a_model_is_bound_to_the_data_it_was_trained_on(shared_data, tmp_path):
    """Two runs share one data.dir with different text options: converting it again keeps the first model's
    conversion aside, so both models evaluate on their own rows, and an export carries its own featurizer."""
    import shutil

    data = {"format": "jsonl", "train": f"{shared_data}/banking77/train.jsonl",
            "test": f"{shared_data}/banking77/test.jsonl", "dir": str(tmp_path / "data")}
    config = tiny_config(tmp_path, data=data, trainer={"train_steps": 8},
                         model={"encoder": {"name": "sparse_bow", "embedding_dim": 8}, "head": {"name": "softmax"}})
    first, second = tmp_path / "first", tmp_path / "second"

    def evaluate(model_dir, check=True):
        result = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json", check=check)
        return result if not check else json.loads(result.stdout.strip().splitlines()[-1])

    run_cli("tfxc.train", "--config", config, "--model-dir", str(first))
    unigram = (first / "dataset" / "featurizer.json").read_text()
    first_metrics = evaluate(first)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(second), "--set", "data.text.ngram_max=2")
    assert (tmp_path / "data" / "featurizer.json").read_text() != unigram  # converted again, with bigrams
    kept = tmp_path / "data.superseded"
    assert len(os.listdir(kept)) == 1  # the first model's conversion, moved aside

    assert evaluate(first)["P@1"] == first_metrics["P@1"]  # on its own rows
    run_cli("tfxc.export", "--model-dir", str(first), "--out", str(tmp_path / "export"))
    bundled = tmp_path / "export" / "assets.extra" / "tfxc" / "featurizer.json"
    assert bundled.read_text() == unigram
    second_metrics = evaluate(second)  # bound to the new data
    # Resuming the first model converts its data back (same options, same card); now the second model's
    # conversion is the one kept aside, and no copy of the first's stays.
    run_cli("tfxc.train", "--config", config, "--model-dir", str(first), "--set", "trainer.train_steps=16")
    assert (tmp_path / "data" / "featurizer.json").read_text() == unigram
    assert len(os.listdir(kept)) == 1
    assert evaluate(second)["P@1"] == second_metrics["P@1"]
    # Without the copy kept aside, the model whose data is gone is refused, with a clear line.
    shutil.rmtree(kept)
    result = evaluate(second, check=False)
    assert result.returncode == 2 and "is not the data" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow(reason='time: a training run, evaluations and a resume')
def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 16, "checkpoint_every_steps": 8})
    model_dir = tmp_path / "model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    at_16 = checkpoint_weights(str(model_dir))
    data = model_dir / "checkpoints" / "ckpt-16.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # cut short, as by a full disk
    result = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json")
    assert "ckpt-16 cannot be restored" in result.stderr and "restored" in result.stderr
    at_8 = checkpoint_weights(str(model_dir))
    assert any(not np.array_equal(at_8[k], at_16[k]) for k in at_8)  # the older weights
    # Training resumes from step 8 and reaches the same step-16 weights as before (exact resume).
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    assert "(step 8)" in result.stderr
    again = checkpoint_weights(str(model_dir))
    for name in at_16:
        np.testing.assert_array_equal(again[name], at_16[name])


def _fake_checkpoints(directory, steps) -> None:
    """Empty ckpt-N index and data files: enough for listing them (not for restoring)."""
    os.makedirs(directory, exist_ok=True)
    for step in steps:
        for suffix in (".index", ".data-00000-of-00001"):
            open(os.path.join(directory, f"ckpt-{step}{suffix}"), "w").close()


@pytest.mark.parametrize("state", ["garbage\n", "", None, 'model_checkpoint_path: "ckpt-16"\n'
                                   'all_model_checkpoint_paths: "ckpt-8"\nall_model_checkpoint_paths: "ckpt-16"\n'],
                         ids=["garbage", "empty", "missing", "stale"])
def test_a_checkpoint_state_file_that_disagrees_with_the_disk_is_not_believed(tmp_path, caplog, state):
    from tfxc.model_dir import ModelDir

    model_dir = ModelDir(str(tmp_path / "m"))
    _fake_checkpoints(model_dir.checkpoint_dir, [8, 16, 24, 100])
    state_file = os.path.join(model_dir.checkpoint_dir, "checkpoint")
    if state is not None:
        open(state_file, "w").write(state)
    expected = [os.path.join(model_dir.checkpoint_dir, f"ckpt-{s}") for s in (100, 24, 16, 8)]  # by step, not name
    assert model_dir.checkpoints() == expected and model_dir.latest_step() == 100
    assert "checkpoint state file " + state_file in caplog.text
    # A training rewrites it, so that tf.train.CheckpointManager takes the checkpoints over (and deletes the
    # oldest as usual: each has a time).
    model_dir.repair_checkpoint_state()
    text = open(state_file).read()
    assert 'model_checkpoint_path: "ckpt-100"' in text and text.count("all_model_checkpoint_timestamps") == 4
    caplog.clear()
    assert model_dir.checkpoints() == expected and "state file" not in caplog.text  # believed again


def test_an_intact_checkpoint_state_file_is_believed(tmp_path, caplog):
    from tfxc.model_dir import ModelDir

    model_dir = ModelDir(str(tmp_path / "m"))
    assert model_dir.checkpoints() == [] and model_dir.latest_step() is None
    _fake_checkpoints(model_dir.checkpoint_dir, [8, 16])
    open(os.path.join(model_dir.checkpoint_dir, "checkpoint"), "w").write(
        'model_checkpoint_path: "ckpt-8"\n'
        'all_model_checkpoint_paths: "ckpt-16"\nall_model_checkpoint_paths: "ckpt-8"\n')
    # Saved in this order (a resume from ckpt-8 after ckpt-16 failed to restore, say): the state's order holds.
    assert [os.path.basename(p) for p in model_dir.checkpoints()] == ["ckpt-8", "ckpt-16"]
    assert "state file" not in caplog.text


@pytest.mark.slow(reason='time: a training run, evaluations and a resume')
def test_a_damaged_checkpoint_state_file_neither_hides_the_checkpoints_nor_restarts_training(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 16, "checkpoint_every_steps": 8})
    model_dir = tmp_path / "model"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    state = model_dir / "checkpoints" / "checkpoint"
    before = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json").stdout.splitlines()[-1]
    state.write_text("")  # was: ValueError: Invalid checkpoint state loaded from ... (a traceback)
    result = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json")
    assert result.stdout.splitlines()[-1] == before and f"checkpoint state file {state}" in result.stderr
    state.write_text("garbage\n")  # was: "no checkpoint found"; training started over from step 0
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir),
                     "--set", "trainer.train_steps=32")
    assert f"checkpoint state file {state} is damaged" in result.stderr
    assert "(step 16)" in result.stderr and "from step 0" not in result.stderr
    # The state file is whole again, and the manager kept the newest three as usual (ckpt-8 deleted).
    assert 'model_checkpoint_path: "ckpt-32"' in state.read_text()
    names = sorted(n for n in os.listdir(state.parent) if n.endswith(".index"))
    assert names == ["ckpt-16.index", "ckpt-24.index", "ckpt-32.index"]


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    from tfxc.errors import TfxcError
    from tfxc.model_dir import ModelDir

    model_dir = ModelDir(str(tmp_path / "m"))
    lock = model_dir.lock("test holder")
    code = ("import sys\nfrom tfxc.model_dir import ModelDir\ntry:\n    ModelDir(sys.argv[1]).lock('other')\n"
            "except Exception as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, model_dir.path], capture_output=True, text=True, cwd=REPO,
                         env=cli_env(), timeout=60).stdout
    assert "is in use by test holder (pid" in out
    lock.release()
    model_dir.lock("again").release()
    with pytest.raises(TfxcError):  # flock is per open file: a second lock in one process is refused too
        held = model_dir.lock("first")
        try:
            model_dir.lock("second")
        finally:
            held.release()


def run_from(cwd, module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` in the directory `cwd` (which `python -m` puts first on sys.path)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(env), capture_output=True,
                          text=True, timeout=240)


def set_imports(model_dir, imports) -> None:
    path = model_dir / "config.json"
    stored = json.loads(path.read_text())
    stored["imports"] = imports
    path.write_text(json.dumps(stored))


@pytest.mark.slow(reason='time: a training run, then evaluate, export and ensemble on it')
def test_a_shared_model_directory_runs_no_code_on_evaluate_export_or_ensemble(tmp_path):
    """D3: a module shipped inside a model directory under runs/ and named in its config.json's `imports`
    (reachable from the project root as the namespace package runs.shared_model) never runs; a module
    outside it runs only with --trust-imports; nothing in a model directory run from stands in for a module."""
    root = tmp_path / "proj"
    model_dir = root / "runs" / "shared_model"
    run_cli("tfxc.train", "--config", tiny_config(tmp_path, trainer={"train_steps": 8}), "--model-dir", str(model_dir))
    canary = tmp_path / "CANARY"
    write_canary = f"open({str(canary)!r}, 'a').write('ran\\n')\n"
    (model_dir / "tb_plugin.py").write_text(write_canary)
    set_imports(model_dir, ["runs.shared_model.tb_plugin"])
    refused = ("tfxc: error: runs/shared_model/config.json: imports modules (runs.shared_model.tb_plugin), and "
               "importing them runs their code; pass --trust-imports if you trust the model directory "
               "runs/shared_model (in Python: trust_imports=True; or name the modules in $TFXC_TRUSTED_IMPORTS)\n")
    verbs = {"tfxc.evaluate": ["--model-dir", "runs/shared_model"],
             "tfxc.export": ["--model-dir", "runs/shared_model", "--out", str(tmp_path / "sm")],
             "tfxc.ensemble": ["--model-dir", "runs/shared_model", "--model-dir", "runs/shared_model"]}
    for verb, args in verbs.items():
        result = run_from(root, verb, *args)
        assert result.returncode == 2 and result.stderr.endswith(refused), (verb, result.stderr[-2000:])
    # Trusted or not, a module inside the model directory is not imported.
    result = run_from(root, "tfxc.export", *verbs["tfxc.export"], "--trust-imports")
    assert result.returncode == 2 and "tfxc: error: " in result.stderr and "Traceback" not in result.stderr
    assert "would be imported from" in result.stderr and "inside the model directory runs/shared_model" in result.stderr
    assert not canary.exists() and not (tmp_path / "sm").exists()
    # A plain module name finds a file in the current directory: it runs with --trust-imports naming it, only.
    (root / "plugin.py").write_text(write_canary)
    set_imports(model_dir, ["plugin"])
    result = run_from(root, "tfxc.evaluate", "--model-dir", "runs/shared_model", "--trust-imports", "other")
    assert result.returncode == 2 and "imports modules (plugin)" in result.stderr and not canary.exists()
    result = run_from(root, "tfxc.evaluate", "--model-dir", "runs/shared_model", "--trust-imports", "plugin")
    assert result.returncode == 0 and canary.read_text() == "ran\n", result.stderr[-2000:]
    # Run from inside the model directory, a file there does not stand in for a module tfxc imports later.
    canary.unlink()
    (model_dir / "tensorflow.py").write_text(write_canary + "raise ImportError('not TensorFlow')\n")
    set_imports(model_dir, [])
    result = run_from(model_dir, "tfxc.evaluate", "--model-dir", ".", "--json")
    assert result.returncode == 0 and not canary.exists(), result.stderr[-2000:]


def test_a_text_model_stored_before_the_unicode_tokenizer_reads_as_trained_with_ascii(tmp_path):
    """config.json written before data.text.tokens existed: its conversion was tokenised with "ascii", and its
    data fingerprint (without the new keys) is that of an "ascii" config, so it resumes with that setting and
    is refused, naming the key, under today's default."""
    from tfxc.config.loading import load_config_data
    from tfxc.model_dir import ModelDir

    old = {"data": {"format": "jsonl", "train": "t.jsonl", "dir": "d",
                    "text": {"ngram_max": 2, "min_df": 1, "max_features": 0}}}
    (tmp_path / "config.json").write_text(json.dumps(old))
    model_dir = ModelDir(str(tmp_path))
    stored = model_dir.load_config()
    assert stored.data.text.tokens == "ascii" and load_config_data(old).data.text.tokens == "unicode"
    assert model_dir.config_changes(load_config_data(old))["data.text.tokens"] == ("ascii", "unicode")
    assert model_dir.config_changes(load_config_data(old, ["data.text.tokens=ascii"])) == {}
    # The fingerprint of an "ascii" config leaves the new keys out, as the conversions before them had none.
    from tfxc.data.sources import _option_fields

    for tokens, kept in (("ascii", False), ("unicode", True)):
        text = _option_fields(load_config_data(old, [f"data.text.tokens={tokens}"]).data)["text"]
        assert ("tokens" in text) == kept and "accents" not in text


def test_a_checkpoint_rotated_away_while_it_is_restored_is_not_taken_for_damage(tmp_path, caplog):
    """A `tfxc.load` beside a training: the checkpoint listed is rotated away before it is read (and an older
    one with it); the newest one now on disk is restored, not an older one, and nothing is called damaged."""
    from tfxc.model_dir import ModelDir

    directory = tmp_path / "model" / "checkpoints"
    _fake_checkpoints(directory, [8, 16])
    restored = []

    def restore(path):
        if path.endswith("ckpt-16") and not restored:  # the training saves ckpt-24, keeps one, drops 8 and 16
            _fake_checkpoints(directory, [24])
            for step in (8, 16):
                for suffix in (".index", ".data-00000-of-00001"):
                    os.remove(directory / f"ckpt-{step}{suffix}")
            raise FileNotFoundError(f"{path}.data-00000-of-00001")
        restored.append(path)

    assert ModelDir(str(tmp_path / "model")).restore_newest_intact(restore) == str(directory / "ckpt-24")
    assert restored == [str(directory / "ckpt-24")]
    assert "cannot be restored" not in caplog.text


def test_a_damaged_checkpoint_that_stays_is_still_skipped_for_the_one_before(tmp_path):
    from tfxc.model_dir import ModelDir

    directory = tmp_path / "model" / "checkpoints"
    _fake_checkpoints(directory, [8, 16])

    def restore(path):
        if path.endswith("ckpt-16"):
            raise ValueError("damaged")

    assert ModelDir(str(tmp_path / "model")).restore_newest_intact(restore) == str(directory / "ckpt-8")
