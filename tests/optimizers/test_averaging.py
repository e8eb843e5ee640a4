"""EMA and SWA weight averages: the update rules against NumPy, and training/evaluation/export using the average."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_same_weights, checkpoint_weights, run_cli, tiny_config, train_and_check_evaluate

from tfxc._tf import tf
from tfxc.optimizers.averaging import WeightAverage


def test_ema_and_swa_follow_their_update_rules():
    rng = np.random.default_rng(0)
    w = tf.Variable(rng.normal(size=(3, 2)).astype(np.float32))
    ema = WeightAverage([w], "ema", decay=0.9)
    swa = WeightAverage([w], "swa", start=3)
    sparse = WeightAverage([w], "swa", start=2, every=3)  # MHE-XMC's swa_step: steps 2 and 5 only
    ref_ema = w.numpy().astype(np.float64)
    history = []
    for step in range(1, 8):
        w.assign(rng.normal(size=(3, 2)).astype(np.float32))
        history.append(w.numpy().astype(np.float64))
        ema.update(tf.constant(step, tf.int64))
        swa.update(tf.constant(step, tf.int64))
        sparse.update(tf.constant(step, tf.int64))
        d = min(0.9, (1 + step) / (10 + step))
        ref_ema = d * ref_ema + (1 - d) * history[-1]
    np.testing.assert_allclose(ema.shadows[0].numpy(), ref_ema, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(swa.shadows[0].numpy(), np.mean(history[2:], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse.shadows[0].numpy(), np.mean([history[1], history[4]], axis=0), rtol=1e-5,
                               atol=1e-6)
    raw = w.numpy()
    with swa.swapped():
        np.testing.assert_allclose(w.numpy(), np.mean(history[2:], axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w.numpy(), raw)


@pytest.mark.slow(reason='time: train, evaluate and export with EMA (tests/optimizers checks the average itself)')
def test_training_with_ema_evaluates_and_exports_the_average(tmp_path):
    config = tiny_config(tmp_path, trainer={"ema_decay": 0.9, "train_steps": 24})
    model_dir = tmp_path / "model"
    train_and_check_evaluate(config, model_dir)

    from tfxc.build_context import BuildContext
    from tfxc.model import build_model
    from tfxc.model_dir import ModelDir

    directory = ModelDir(str(model_dir))
    trained_model = directory.restore()  # holds the average
    raw = build_model(trained_model.config.model, BuildContext.from_info(trained_model.info, seed=0))
    tf.train.Checkpoint(model=raw).restore(directory.checkpoints()[0]).expect_partial()
    assert not np.allclose(raw.head.kernel.numpy(), trained_model.model.head.kernel.numpy()), \
        "the restored model must hold the average, not the raw weights"
    reader = tf.train.load_checkpoint(directory.checkpoints()[0])
    assert any(name.startswith("average/") for name in reader.get_variable_to_shape_map()), \
        "the checkpoint must keep the average for resuming"

    mirrored = tmp_path / "mirrored"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(mirrored), "--set", "runtime.strategy=mirrored",
            "--set", "runtime.cpu_replicas=2")
    assert_same_weights(checkpoint_weights(str(mirrored)), checkpoint_weights(str(model_dir)), atol=2e-5)


def test_swa_from_an_epoch_starts_at_its_first_step(tmp_path):
    """trainer.swa_start_epoch (MHE-XMC's swa_warmup) is swa_start_step in the run's own epochs."""
    from tfxc.config import load_config
    from tfxc.errors import ConfigError
    from tfxc.optimizers.averaging import build_average

    config = load_config(None, ["data.dir=x", "trainer.swa_start_epoch=2.5", "trainer.swa_every_steps=100"])
    assert config.trainer.swa_start(steps_per_epoch=40) == 100
    average = build_average(config.trainer, type("M", (), {"trainable_variables": [tf.Variable(1.0)]})(), 40)
    assert (average.mode, average.start, average.every) == ("swa", 100, 100)
    with pytest.raises(ConfigError, match="SWA starts at swa_start_step or at swa_start_epoch"):
        load_config(None, ["data.dir=x", "trainer.swa_start_epoch=1", "trainer.swa_start_step=5"])
