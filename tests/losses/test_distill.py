"""Distillation: the KD terms against their formulas, and a FastText student learning from a TextCNN teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import REPO, run_cli, tiny_config

from tfxc._tf import tf
from tfxc.losses.distill import kd_loss


def test_kd_terms_match_their_formulas():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    temperature = 2.0

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_q, log_p = log_softmax(s / temperature), log_softmax(t / temperature)
    expected = {"ce": -(np.exp(log_p) * log_q).sum(1), "kl": (np.exp(log_p) * (log_p - log_q)).sum(1),
                "mse": ((s - t) ** 2).mean(1) / temperature ** 2}
    for kind, value in expected.items():
        got = kd_loss(tf.constant(s, tf.float32), tf.constant(t, tf.float32), kind, temperature).numpy()
        np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-6, err_msg=kind)


@pytest.mark.slow(reason=(
    'time: a teacher and a student trained on banking77 (tests/data/test_folds.py distils by default)'))
def test_a_fasttext_student_learns_from_a_textcnn_teacher_and_exports_alone(tmp_path, shared_data):
    from encoders.text_harness import text_config

    from tfxc.model_dir import ModelDir

    teacher_config = text_config(tmp_path, shared_data, {"name": "text_cnn", "embedding_dim": 16, "num_filters": 8,
                                                         "max_length": 24, "dropout": 0.0})
    teacher_dir = tmp_path / "teacher"
    run_cli("tfxc.train", "--config", teacher_config, "--model-dir", str(teacher_dir))

    # The logits the objective gathers by row id are the teacher's own.
    from tfxc.data.info import DatasetInfo
    from tfxc.losses.distill import teacher_logits

    info = DatasetInfo.load(str(tmp_path / "data"))
    logits = teacher_logits(str(teacher_dir), info)
    teacher = ModelDir(str(teacher_dir)).restore().model
    from tfxc.data.pipeline import eval_dataset

    batch = next(iter(eval_dataset(info.files("train"), 16, preprocess=teacher.encoder.preprocess)))
    np.testing.assert_allclose(logits[batch["row_id"].numpy()], teacher(batch).numpy(), rtol=1e-5, atol=1e-5)

    student_dir, saved = tmp_path / "student", tmp_path / "student_saved"
    run_cli("tfxc.train", "--config", teacher_config, "--model-dir", str(student_dir),
            "--set", 'model.encoder={"name": "fasttext", "embedding_dim": 16, "word_buckets": 4096, '
                     '"ngram_buckets": 16384}',
            "--set", f'loss={{"name": "distill", "teacher": "{teacher_dir}", "alpha": 0.5, "temperature": 2.0}}')
    metrics = json.loads((student_dir / "metrics.json").read_text())
    assert metrics["Acc@1"] > 5.0, metrics  # 77 intents, 800 training texts, 40 steps: above chance (1.3)
    run_cli("tfxc.export", "--model-dir", str(student_dir), "--out", str(saved))
    names = [name for name, _ in tf.train.list_variables(str(saved / "variables" / "variables"))]
    assert names and not any("conv" in n for n in names), "the teacher's layers must not travel with the student"


def test_train_s_trust_imports_reaches_the_teacher_s_config(tmp_path):
    """The teacher directory's config `imports` run under `tfxc.train --trust-imports`, and only then (D3)."""
    plugins, teacher, canary = tmp_path / "plugins", tmp_path / "teacher", tmp_path / "CANARY"
    plugins.mkdir()
    teacher.mkdir()
    # The plugin leaves a mark and stops the run: its import is what is checked, not a teacher to restore.
    (plugins / "teacher_plugin.py").write_text(f"open({str(canary)!r}, 'a').write('ran')\nraise RuntimeError('stop')\n")
    (teacher / "config.json").write_text(json.dumps({"imports": ["teacher_plugin"]}))
    config = tiny_config(tmp_path, model={"head": {"name": "softmax"}}, loss={"name": "distill", "teacher": str(teacher)})
    env = {"PYTHONPATH": f"{REPO}:{plugins}"}

    refused = run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "a"), check=False, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "imports modules (teacher_plugin)" in refused.stderr and "pass --trust-imports" in refused.stderr
    assert not canary.exists()
    trusted = run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "b"),
                      "--trust-imports", "teacher_plugin", check=False, env=env)
    assert canary.read_text() == "ran", trusted.stderr[-2000:]
    assert trusted.returncode == 2 and "cannot import 'teacher_plugin' (RuntimeError: stop)" in trusted.stderr


@pytest.mark.slow(reason='time: a teacher trained to be refused')
def test_distillation_refuses_another_data_set(tmp_path, shared_data):
    from encoders.text_harness import text_config

    config = text_config(tmp_path, shared_data, {"name": "fasttext", "embedding_dim": 8, "word_buckets": 512,
                                                 "ngram_buckets": 512})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "teacher"))
    other = tmp_path / "other"
    other.mkdir()
    config2 = text_config(other, shared_data, {"name": "fasttext", "embedding_dim": 8, "word_buckets": 512,
                                               "ngram_buckets": 512}, trainer={"global_batch_size": 32,
                                                                                "train_steps": 4})
    data = json.loads(open(config2).read())["data"]
    data["val_percent"] = 10  # other rows in train: another fingerprint
    result = run_cli("tfxc.train", "--config", config2, "--model-dir", str(other / "student"),
                     "--set", f"data={json.dumps(data)}",
                     "--set", f'loss={{"name": "distill", "teacher": "{tmp_path / "teacher"}"}}', check=False)
    assert result.returncode != 0 and "same converted data" in result.stderr, result.stderr[-2000:]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
