"""Row-sparse optimizers against Keras' dense ones, and the learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfxc._tf import keras, tf
from tfxc.encoders.sparse_bow import embedding_bag
from tfxc.optimizers import LazyAdadelta, LazyAdagrad, LazyAdam, LazyRMSprop, LazySGD, WarmupDecay

INIT = np.random.RandomState(0).randn(6, 3).astype("float32")


def train(optimizer, rows, dense_gradient=False, steps=3):
    table = keras.Variable(INIT)
    optimizer.build([table])
    ids = tf.ragged.constant(rows, tf.int64)
    vals = tf.ragged.constant([[1.0] * len(r) for r in rows])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(embedding_bag(table.value, ids, vals) ** 2)
        grad = tape.gradient(loss, table.value)
        assert isinstance(grad, tf.IndexedSlices)
        optimizer.apply_gradients([(tf.convert_to_tensor(grad) if dense_gradient else grad, table)])
    return table.numpy()


# Row 0 appears twice in one batch: duplicate indices must be summed, not overwritten.
ALL_ROWS = [[0, 1, 2], [3, 4, 5, 0]]


@pytest.mark.parametrize("lazy, dense", [
    (lambda: LazyAdam(0.1), lambda: keras.optimizers.Adam(0.1)),
    (lambda: LazySGD(0.1), lambda: keras.optimizers.SGD(0.1)),
    (lambda: LazySGD(0.1, momentum=0.9), lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
    (lambda: LazySGD(0.1, momentum=0.9, nesterov=True), lambda: keras.optimizers.SGD(0.1, momentum=0.9,
                                                                                       nesterov=True)),
    (lambda: LazyAdagrad(0.1), lambda: keras.optimizers.Adagrad(0.1)),
    (lambda: LazyRMSprop(0.01), lambda: keras.optimizers.RMSprop(0.01)),
    (lambda: LazyRMSprop(0.01, momentum=0.5, centered=True),
     lambda: keras.optimizers.RMSprop(0.01, momentum=0.5, centered=True)),
    (lambda: LazyAdadelta(1.0), lambda: keras.optimizers.Adadelta(1.0)),
])
def test_lazy_equals_dense_when_every_row_is_touched(lazy, dense):
    np.testing.assert_allclose(train(lazy(), ALL_ROWS), train(dense(), ALL_ROWS, dense_gradient=True), atol=1e-5)


@pytest.mark.parametrize("make, slots", [(lambda: LazyAdagrad(0.1), "_accumulators"),
                                         (lambda: LazyRMSprop(0.01), "_velocities"),
                                         (lambda: LazyAdadelta(1.0), "_accumulated_grads")])
def test_adaptive_optimizers_leave_untouched_rows_and_slots_alone(make, slots):
    opt = make()
    table = train(opt, [[0, 1], [1]])
    np.testing.assert_array_equal(table[2:], INIT[2:])
    assert not np.allclose(table[:2], INIT[:2])
    slot = getattr(opt, slots)[0].numpy()
    np.testing.assert_array_equal(slot[2:], np.full_like(slot[2:], 0.1 if slots == "_accumulators" else 0.0))


@pytest.mark.parametrize("compiled", [True, False])
def test_lazy_adam_equals_dense_through_the_kernel_or_tensorflow_ops(compiled, monkeypatch):
    from tfxc.optimizers.row_adam import HAVE_COMPILED_ADAM

    if compiled and not HAVE_COMPILED_ADAM:
        pytest.skip("tfxc.optimizers._adam not built")
    monkeypatch.setattr("tfxc.optimizers.lazy.HAVE_COMPILED_ADAM", compiled)
    dense = train(keras.optimizers.Adam(0.1), ALL_ROWS, dense_gradient=True)
    np.testing.assert_allclose(train(LazyAdam(0.1), ALL_ROWS), dense, atol=1e-5)


def test_untouched_rows_and_their_moments_stay_as_they_are():
    opt = LazyAdam(0.1)
    table = train(opt, [[0, 1], [1]])
    np.testing.assert_array_equal(table[2:], INIT[2:])
    assert not np.allclose(table[:2], INIT[:2])
    m = opt._momentums[0].numpy()
    assert np.all(m[2:] == 0) and np.all(m[:2] != 0)


def test_warmup_then_cosine_and_linear_decay():
    cosine = WarmupDecay(1.0, warmup_steps=10, total_steps=110, decay="cosine")
    assert float(cosine(0)) == pytest.approx(0.1)
    assert float(cosine(9)) == pytest.approx(1.0)
    assert float(cosine(60)) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert float(cosine(110)) == pytest.approx(0.0, abs=1e-7)
    linear = WarmupDecay(2.0, warmup_steps=0, total_steps=100, decay="linear")
    assert float(linear(25)) == pytest.approx(1.5)
    assert float(WarmupDecay(3.0, 0, 100, "constant")(77)) == pytest.approx(3.0)


def test_swa_anneals_linearly_from_the_schedule_to_the_swa_rate_then_holds_it():
    # Linear decay 2.0 -> 0 over 100 steps; SWA from step 40 (0-based), to 0.1 over 10 steps.
    lr = WarmupDecay(2.0, 0, 100, "linear", swa_start=40, swa_learning_rate=0.1, swa_anneal_steps=10)
    at_start = 2.0 * (1 - 40 / 100)
    assert float(lr(39)) == pytest.approx(2.0 * (1 - 39 / 100))  # the schedule before SWA
    assert float(lr(40)) == pytest.approx(0.9 * at_start + 0.1 * 0.1)  # torch SWALR: the first step moves 1/10
    assert float(lr(44)) == pytest.approx(0.5 * at_start + 0.5 * 0.1)
    for step in (49, 60, 99, 150):
        assert float(lr(step)) == pytest.approx(0.1)


def test_trainer_swa_settings_reach_the_optimizer_schedule(tmp_path):
    from tfxc.config import load_config
    from tfxc.optimizers import build_optimizer

    config = load_config(None, ["data.dir=x", "trainer.swa_start_step=41", "trainer.swa_learning_rate=0.001",
                                "trainer.swa_anneal_steps=5", "optimizer.learning_rate=0.01"])
    tc = config.trainer
    optimizer = build_optimizer(config.optimizer, total_steps=100,
                                swa=(tc.swa_start_step, tc.swa_learning_rate, tc.swa_anneal_steps))
    schedule = optimizer.learning_rate if callable(optimizer.learning_rate) else optimizer._learning_rate
    assert float(schedule(45)) == pytest.approx(0.001) and float(schedule(39)) == pytest.approx(0.01)
    with pytest.raises(Exception, match="set trainer.swa_start_step too"):
        load_config(None, ["data.dir=x", "trainer.swa_learning_rate=0.001"])


@pytest.mark.parametrize("weight_decay", [None, 0.01])
def test_fused_dense_adam_equals_keras_adam(weight_decay):
    """LazyAdam's dense update runs TF's fused ResourceApplyAdam kernel; it must be Keras' Adam."""
    rng = np.random.RandomState(1)
    init, grads = rng.randn(5, 7).astype("float32"), rng.randn(4, 5, 7).astype("float32")

    def run(optimizer):
        weight = keras.Variable(init)
        optimizer.build([weight])
        for grad in grads:  # warm-up-free steps at varying gradients: the bias corrections matter
            optimizer.apply_gradients([(tf.constant(grad), weight)])
        return weight.numpy(), optimizer._momentums[0].numpy(), optimizer._velocities[0].numpy()

    kwargs = dict(learning_rate=0.05, beta_1=0.8, beta_2=0.95, epsilon=1e-6, weight_decay=weight_decay)
    for mine, keras_one in zip(run(LazyAdam(**kwargs)), run(keras.optimizers.Adam(**kwargs))):
        np.testing.assert_allclose(mine, keras_one, rtol=1e-5, atol=1e-6)



@pytest.mark.parametrize("name, cls, settings", [
    ("adagrad", LazyAdagrad, {"initial_accumulator": 0.0, "epsilon": 1e-10}),
    ("rmsprop", LazyRMSprop, {"rho": 0.8, "momentum": 0.5, "centered": True}),
    ("adadelta", LazyAdadelta, {"rho": 0.95, "learning_rate": 1.0}),
])
def test_the_config_builds_each_optimizer_and_a_model_trains_with_it(tmp_path, name, cls, settings):
    from helpers import run_cli, tiny_config

    from tfxc.config import load_config
    from tfxc.optimizers import build_optimizer

    sets = [f"optimizer.name={name}"] + [f"optimizer.{k}={str(v).lower()}" for k, v in settings.items()]
    optimizer = build_optimizer(load_config(None, ["data.dir=x", *sets]).optimizer, total_steps=10)
    assert isinstance(optimizer, cls)
    for key, value in settings.items():
        attribute = {"initial_accumulator": "initial_accumulator_value"}.get(key, key)
        if key != "learning_rate":
            assert getattr(optimizer, attribute) == pytest.approx(value), key
    config = tiny_config(tmp_path, optimizer={"name": name, **settings})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"))
    assert (tmp_path / "model" / "metrics.json").exists()
