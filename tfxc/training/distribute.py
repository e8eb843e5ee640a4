"""tf.distribute strategies from `RuntimeConfig`, with bounded start-up.

* default: the single-device default strategy.
* mirrored: all local GPUs, or, on a CPU-only machine, the CPU split into
  `cpu_replicas` logical devices (correctness testing; they share the cores).
* multi_worker_mirrored: the cluster in TF_CONFIG; collectives use RING with
  `collective_timeout_s`, so a worker that dies mid-training makes the others
  fail within that bound. Forming the cluster is not covered by that timeout
  (a missing worker blocks the others forever, tf-notes §2), so a watchdog
  ends the process with a clear message after `startup_timeout_s`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError

log = logging.getLogger("tfxc.distribute")


def _split_cpu(n: int) -> list[str]:
    cpus = tf.config.list_physical_devices("CPU")
    if n > 1:
        try:
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError:  # already initialised (e.g. a second strategy in one process)
            pass
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(devices) < n:
        raise ConfigError(f"runtime.cpu_replicas ({n}) needs {n} logical CPUs, but TF was already "
                          f"initialised with {len(devices)}")
    return devices[:n]


_WATCHDOG = """
import os, signal, sys, time
pid, timeout, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(timeout)
sys.stderr.write(message + "\\n"); sys.stderr.flush()
os.kill(pid, signal.SIGTERM)
time.sleep(3)
os.kill(pid, signal.SIGKILL)  # a process blocked in TF's cluster set-up ignores SIGTERM
"""


class StartupWatchdog:
    """Terminates this process with a message unless the block finishes within `timeout_s`.

    The watchdog is a tiny separate process, not a thread: while the cluster
    forms, TF blocks in C++ and a Python timer thread would never get to run.
    """

    def __init__(self, timeout_s: float, what: str):
        self.timeout_s = timeout_s
        self.message = (f"tfxc: error: {what} did not complete within {timeout_s:.0f}s "
                        "(runtime.startup_timeout_s); is every worker in TF_CONFIG running and reachable?")

    def __enter__(self):
        self._proc = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.timeout_s),
                                       self.message], stdin=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        self._proc.kill()
        self._proc.wait()


def cluster_spec() -> tuple[int, int]:
    """(num_workers, worker_index) from TF_CONFIG; (1, 0) without one."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 1, 0
    try:
        tf_config = json.loads(raw)
        workers = tf_config["cluster"]["worker"]
        index = int(tf_config["task"]["index"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"TF_CONFIG is not valid ({e}): {raw!r}") from None
    return len(workers), index


def make_strategy(runtime) -> tf.distribute.Strategy:
    """Creates the strategy named by `runtime.strategy` (call before any other TF op)."""
    if runtime.strategy == "default":
        return tf.distribute.get_strategy()
    if runtime.strategy == "mirrored":
        # Physical, not logical, devices: listing logical ones would start TF
        # before the CPU can be split.
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy(_split_cpu(runtime.cpu_replicas))
    num_workers, index = cluster_spec()
    if "TF_CONFIG" not in os.environ:
        raise ConfigError("runtime.strategy 'multi_worker_mirrored' needs the TF_CONFIG environment variable "
                          "(see README: Several machines)")
    comm = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING,
        timeout_seconds=runtime.collective_timeout_s)
    with StartupWatchdog(runtime.startup_timeout_s, f"forming the {num_workers}-worker cluster (worker {index})"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=comm)
        # The first collective is where a missing peer actually blocks.
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    log.info("worker %d/%d joined a cluster with %d replicas", index, num_workers, strategy.num_replicas_in_sync)
    return strategy


def all_reduce_sum(strategy: tf.distribute.Strategy, values: np.ndarray) -> np.ndarray:
    """Σ over the workers of each worker's float64 vector `values`; every worker gets the total.

    A collective: every worker must call it, with a vector of the same length. Each of a worker's
    local replicas contributes values / (its local replica count), so the sum counts every worker once.
    """
    num_workers, _ = cluster_spec()
    local_replicas = max(strategy.num_replicas_in_sync // max(num_workers, 1), 1)
    share = tf.constant(np.asarray(values, np.float64) / local_replicas)
    per_replica = strategy.run(lambda: tf.identity(share))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy()


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """Whether `flag` holds on any worker: the vote that keeps the workers' decisions alike.

    With several workers each decides from what it saw itself (a signal it received, its own clock),
    yet they must stop or save at the same step together. A collective: every worker must call it at
    the same point. With one worker (no TF_CONFIG, or a cluster of one) it is `flag`, and no collective.
    """
    num_workers, _ = cluster_spec()
    if num_workers == 1:
        return flag
    votes = strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0 if flag else 0.0)), axis=None)
    return float(votes) > 0


def evaluation_shard(strategy: tf.distribute.Strategy):
    """(shard, add_up) for an `Evaluator` under `strategy`: the worker's share of the batches and the
    all-reduce that totals the metric sums with several workers; (None, None) with one."""
    num_workers, index = cluster_spec()
    if num_workers < 2 or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return None, None
    return (index, num_workers), lambda values: all_reduce_sum(strategy, values)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)
