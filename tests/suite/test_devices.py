"""The devices every test process has (tests/conftest.py): two logical CPUs, and MirroredStrategies that can
follow one another in one process."""

from __future__ import annotations

from helpers import TEST_CPUS

from tfxc._tf import tf


def test_every_test_process_has_its_logical_cpus():
    assert len(tf.config.list_logical_devices("CPU")) == TEST_CPUS


def test_two_mirrored_strategies_in_one_process_all_reduce_tensors_of_other_shapes():
    # Without the conftest's moving of the collective key base, the second strategy's all-reduce meets the
    # first one's collective instance: "Shape mismatch in the collective instance 100".
    for size in (3, 5):
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(TEST_CPUS)])

        @tf.function
        def step():
            return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("SUM", tf.ones([size])))

        results = strategy.experimental_local_results(step())
        assert [r.numpy().tolist() for r in results] == [[float(TEST_CPUS)] * size] * TEST_CPUS
