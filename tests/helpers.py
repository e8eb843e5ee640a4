"""Test helpers: tiny configs and running the CLIs in fresh processes with hard timeouts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_sources(tops=("tfxc", "tools")):
    """(path relative to REPO, parsed module) of every .py file under `tops`, in a stable order: for tests that
    check a rule across the package's source (flag types, JSON writers)."""
    import ast

    for top in tops:
        for root, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    with open(path, encoding="utf-8") as f:
                        yield os.path.relpath(path, REPO), ast.parse(f.read(), path)
SHARED_DATA = os.environ.get("TFXC_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))


def tiny_config(tmp_path, **sections) -> str:
    """Writes a small synthetic-data config (seconds to train) and returns its path.

    Keyword arguments are merged into the named sections, e.g.
    `tiny_config(tmp_path, trainer={"train_steps": 20})`.
    """
    config = {
        "data": {"format": "synthetic", "dir": str(tmp_path / "data"), "num_shards": 2,
                 "synthetic": {"num_train": 1024, "num_test": 256, "num_features": 300, "num_labels": 40,
                               "features_per_label": 10, "features_per_point": 15, "seed": 3}},
        "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16]},
                  "head": {"name": "one_vs_all"}},
        "optimizer": {"name": "adam", "learning_rate": 0.01},
        "trainer": {"global_batch_size": 64, "train_steps": 24, "steps_per_loop": 4, "log_every_steps": 8,
                    "checkpoint_every_steps": 8},
        "runtime": {"seed": 7},
        "export": {"top_k": 5},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def write_text(tmp_path, name: str, text: str):
    """Writes `text` to tmp_path/name (gzipped when the name ends in .gz) and returns the path."""
    import gzip

    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def cli_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


# Environment variables TensorFlow (or the C++ runtime under it) reads once, when it starts: a run that sets
# one needs a process of its own.
STARTUP_ENV = ("TF_", "CUDA_", "XLA_", "OMP_", "KMP_", "MKL_")
# Config keys that set up devices before TensorFlow starts (several workers).
STARTUP_KEYS = ("multi_worker", "TF_CONFIG")
# The logical CPUs every test process has (tests/conftest.py sets them up before TensorFlow starts), so that a
# MirroredStrategy of up to this many replicas (`runtime.cpu_replicas`) runs in the test's own process.
TEST_CPUS = 2


def needs_fresh_process(args, env: dict | None, cwd: str) -> str | None:
    """Why `python -m tfxc.X args` must run in a process of its own, or None when calling its `main` here is
    the same run: a different working directory (what `python -m` puts on `sys.path` is the point of such
    tests), an environment variable read at TensorFlow's start-up, or devices set up before it (more logical
    CPUs than `TEST_CPUS`, several workers), by a flag or the config file."""
    if os.path.realpath(cwd) != os.path.realpath(REPO):
        return f"runs in {cwd}"
    for key in env or {}:
        if key.startswith(STARTUP_ENV):
            return f"sets {key}"
    for i, arg in enumerate(args):
        if any(key in arg for key in STARTUP_KEYS):
            return f"sets {arg}"
        if arg.startswith("runtime.cpu_replicas=") and not arg.split("=", 1)[1].strip() in map(str, range(TEST_CPUS + 1)):
            return f"sets {arg} (more logical CPUs than the {TEST_CPUS} of this process)"
        if arg == "--config" and i + 1 < len(args) and os.path.isfile(args[i + 1]):
            try:
                with open(args[i + 1], encoding="utf-8") as f:
                    runtime = json.load(f).get("runtime") or {}
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(runtime, dict) and (str(runtime.get("cpu_replicas") or 1) not in map(str, range(TEST_CPUS + 1))
                                              or "multi_worker" in str(runtime.get("strategy", ""))):
                return f"{args[i + 1]} sets up devices"
    return None


def run_cli(module: str, *args: str, timeout: float = 240, env: dict | None = None,
            check: bool = True, cwd: str = REPO, fresh: bool | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m module args...` in `cwd` and returns its exit status, stdout and stderr.

    By default the module's `main(argv)` is called in this process (`run_main`: the same parser, verb and
    error handling, without paying TensorFlow's import again), unless `needs_fresh_process` says the run
    depends on a process of its own. `fresh=True` asks for a process of its own (kills, signals, a fresh
    process's imports); it is killed, with its whole process group, on timeout.
    """
    if fresh is None:
        fresh = needs_fresh_process(args, env, cwd) is not None
    if not fresh:
        result = run_main(module, *args, env=env)
    else:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=cli_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"{module} {' '.join(args)} timed out after {timeout}s\n{err[-3000:]}")
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check and result.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} exited {result.returncode}\n{result.stderr[-3000:]}")
    return result


def run_main(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m module args...` as a call of the module's `main(list(args))` in this process.

    What the process would print is captured (stdout, stderr, and the log lines of `setup_logging`, which
    writes to the stderr of the moment); the exit status is `main`'s return value, a `SystemExit`'s code,
    or 1 with the traceback on stderr for any other exception, as the interpreter does. What a run changes
    in this process is put back afterwards: the environment (`env` is set for the call, its PYTHONPATH put
    in front of `sys.path`), `sys.path` and `sys.argv`, the working directory, the root logger's handlers
    and levels, and TF's op determinism (`runtime.deterministic` turns it on for the rest of a process).
    """
    import contextlib
    import importlib
    import io
    import logging
    import traceback

    from tensorflow.python.framework import config as tf_config

    target = importlib.import_module(module)
    if not hasattr(target, "main") and hasattr(target, "__path__"):  # a package: `python -m` runs __main__
        target = importlib.import_module(module + ".__main__")
    saved_env, saved_path, saved_argv, saved_cwd = dict(os.environ), list(sys.path), list(sys.argv), os.getcwd()
    root = logging.getLogger()
    loggers = [root] + [logging.getLogger(name) for name in ("tensorflow", "absl", "tfxc")]
    saved_logging = [(logger, list(logger.handlers), logger.level) for logger in loggers]
    determinism = tf_config.is_op_determinism_enabled()
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", write_through=True)
                for _ in range(2))
    try:
        extra = dict(env or {})
        path = extra.pop("PYTHONPATH", "")
        os.environ.pop("TF_CONFIG", None)
        os.environ.update(extra)
        sys.path[:0] = [entry for entry in path.split(os.pathsep) if entry and entry != REPO]
        sys.argv = [module, *args]
        os.chdir(REPO)
        root.handlers = []  # an unconfigured process: warnings reach stderr through logging's last resort
        root.setLevel(logging.WARNING)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = target.main(list(args))
                returncode = status if isinstance(status, int) else 0
            except SystemExit as e:
                code = e.code
                if code is not None and not isinstance(code, int):
                    sys.stderr.write(f"{code}\n")
                returncode = code if isinstance(code, int) else (0 if code is None else 1)
            except Exception:  # noqa: BLE001 - what the interpreter prints for an uncaught exception
                sys.stderr.write(traceback.format_exc())
                returncode = 1
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:], sys.argv = saved_path, saved_argv
        for logger, handlers, level in saved_logging:
            logger.handlers = handlers
            logger.setLevel(level)
        if tf_config.is_op_determinism_enabled() != determinism:
            (tf_config.enable_op_determinism if determinism else tf_config.disable_op_determinism)()
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], returncode,
                                       out.buffer.getvalue().decode("utf-8", "replace"),
                                       err.buffer.getvalue().decode("utf-8", "replace"))


def checkpoint_weights(model_dir: str) -> dict:
    """The trainable weights of the latest checkpoint in `model_dir`, by variable path.

    Restores into a freshly built model rather than reading tensor names: a
    checkpoint stores each value once, under the first path that reaches it
    (often `optimizer/_trainable_variables/N`), so names alone are misleading.
    """
    from tfxc.model_dir import ModelDir

    model = ModelDir(model_dir).restore().model
    return {v.path: v.numpy() for v in model.trainable_variables}


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def checkpoint_nu(model_dir: str):
    """The dual variables ν (float32 [n]) of the latest checkpoint in `model_dir`."""
    from tfxc._tf import tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")))
    (key,) = [k for k in reader.get_variable_to_shape_map() if k.startswith("objective/nu/")]
    return reader.get_tensor(key)


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=atol, rtol=0, err_msg=name)


# === Multi-worker runs: 2 processes on 127.0.0.1 with hard timeouts ===
def start_workers(config: str, model_dir: str, n: int, extra=(), start=None):
    ports = free_ports(n)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(n) if start is None else start:
        env = cli_env({"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})})
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tfxc.train", "--config", config, "--model-dir", model_dir,
             "--set", "runtime.strategy=multi_worker_mirrored", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True))
    return procs


def finish(procs, timeout: float):
    """Waits for all processes (killing every one on timeout); returns [(rc, stderr)]."""
    deadline = time.time() + timeout
    out = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(deadline - time.time(), 1))
            out.append((p.returncode, err))
    except subprocess.TimeoutExpired:
        raise AssertionError("workers did not finish in time") from None
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
    return out


def train_and_check_evaluate(config: str, model_dir, env: dict | None = None) -> dict:
    """Trains with `tfxc.train`, checks that `tfxc.evaluate` reports the metrics training wrote; returns them."""
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir), env=env)
    with open(os.path.join(str(model_dir), "metrics.json"), encoding="utf-8") as f:
        trained = json.load(f)
    evaluated = json.loads(run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json",
                                   env=env).stdout.splitlines()[-1])
    for key, value in evaluated.items():
        assert abs(trained[key] - value) < 1e-3, (key, trained[key], value)
    return evaluated


def check_training_on_one_batch(model, batch, optimizer_config, steps: int = 30) -> list:
    """Gradients reach every trainable variable and `steps` optimizer steps on `batch` reduce the loss.

    Returns the first step's gradients (in `model.trainable_variables` order).
    """
    from tfxc._tf import tf
    from tfxc.optimizers import build_optimizer

    optimizer = build_optimizer(optimizer_config, total_steps=100, sparse_variables=model.sparse_variables)
    optimizer.build(model.trainable_variables)
    variables = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(model.per_example_loss(batch, training=True))
        grads = tape.gradient(value, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return value, grads

    first, grads = step()
    missing = [v.path for v, g in zip(variables, grads) if g is None]
    assert not missing, f"no gradient reaches {missing}"
    for _ in range(steps):
        last, _ = step()
    assert float(last) < float(first), f"{steps} steps on one batch did not reduce the loss ({first} -> {last})"
    return grads


def check_checkpoint_round_trip(model, fresh_model, batch, k: int, directory) -> None:
    """`model`'s checkpoint, restored into `fresh_model` (built alike, initialised otherwise), ranks the same."""
    from tfxc._tf import tf

    path = tf.train.Checkpoint(model=model).save(os.path.join(str(directory), "ckpt"))
    tf.train.Checkpoint(model=fresh_model).restore(path).assert_existing_objects_matched()
    for a, b in zip(model.top_k(batch, k), fresh_model.top_k(batch, k)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# Python source that makes `tfxc.utils.io` die (os._exit, no clean-up) while it replaces a directory: with
# `where == "between renames"` between the two renames of a file system that cannot exchange two paths,
# otherwise right after the exchange, before the old copy is deleted. Needs `os`, `io` and `where` defined.
KILL_WHILE_REPLACING = """
if where == "between renames":
    io.exchange = lambda a, b: False
    rename = os.replace
    def replace(src, dst):
        rename(src, dst)
        if dst.endswith(".old"):
            os._exit(9)
    os.replace = replace
else:
    io.shutil = type("killed", (), {"rmtree": staticmethod(lambda *a, **k: os._exit(9))})
"""


def csr_request(rows: list[dict]) -> tuple[dict, dict]:
    """Rows of `tfxc.data.tfrecord.read_all` as a serving request ({"feat_idx", "feat_val", "row_splits"}: lists,
    JSON-ready) and as the encoder's ragged batch ({"feat_idx": int64, "feat_val": float32 ragged [B, None]})."""
    import numpy as np

    from tfxc._tf import tf

    request = {"feat_idx": np.concatenate([r["feat_idx"] for r in rows]).tolist(),
               "feat_val": np.concatenate([r["feat_val"] for r in rows]).tolist(),
               "row_splits": np.cumsum([0] + [len(r["feat_idx"]) for r in rows]).tolist()}
    splits = tf.constant(request["row_splits"], tf.int64)
    ragged = {key: tf.RaggedTensor.from_row_splits(tf.constant(request[key], dtype), splits)
              for key, dtype in (("feat_idx", tf.int64), ("feat_val", tf.float32))}
    return request, ragged


def text_data(tmp_path, shared_data, train_rows: int = 800, test_rows: int = 64) -> dict:
    """The first rows of banking77's train and test files, as a `data` config section."""
    source = os.path.join(shared_data, "banking77")
    for split, rows in (("train", train_rows), ("test", test_rows)):
        with open(os.path.join(source, f"{split}.jsonl"), encoding="utf-8") as f:
            lines = [next(f) for _ in range(rows)]
        (tmp_path / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    return {"format": "jsonl", "train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl"),
            "label_names": os.path.join(source, "labels.txt"), "dir": str(tmp_path / "data"), "num_shards": 2}


def tool_module(name: str):
    """tools/`name`.py imported as a module (the tools are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A directory the test processes of one run share (tests/conftest.py sets it): presets built once a run.
PRESETS_ENV = "TFXC_TEST_PRESETS"
# Set for a pytest run whose tests never start TensorFlow: its processes skip the devices' set-up.
WITHOUT_TF_ENV = "TFXC_TESTS_WITHOUT_TF"


def tiny_preset(family: str, directory, shared_data, **shape) -> str:
    """A 2-layer `family` backbone (random weights) with its tokenizer learnt on banking77's first 2,000 texts,
    saved as a native keras-hub preset by tools/tiny_preset.py, in `directory`; under pytest, built once a test
    run for each family and shape (learning a tokenizer takes seconds) and read from there by every test."""
    module = tool_module("tiny_preset")
    cache = os.environ.get(PRESETS_ENV)
    if not cache:
        texts = module.read_texts(os.path.join(shared_data, "banking77", "train.jsonl"), 2000)
        return module.build_preset(family, texts, str(directory), **shape)
    import fcntl
    import shutil

    key = "-".join([family, *(f"{name}={shape[name]}" for name in sorted(shape))])
    built = os.path.join(cache, key)
    with open(built + ".lock", "w") as lock:  # another test process may be building the same one
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(built):
            shutil.rmtree(built + ".tmp", ignore_errors=True)  # what a failed build left
            texts = module.read_texts(os.path.join(shared_data, "banking77", "train.jsonl"), 2000)
            module.build_preset(family, texts, built + ".tmp", **shape)
            os.rename(built + ".tmp", built)
    return built


def tiny_bert_preset(directory, shared_data) -> str:
    """A 2-layer BERT with a WordPiece vocabulary learnt on banking77, saved as a native keras-hub preset."""
    return tiny_preset("bert", directory, shared_data)


def digit_images(count: int = 0, size: int = 8, fmt: str = "png") -> list[tuple[bytes, int]]:
    """(encoded image, digit) of scikit-learn's `load_digits` (1,797 real 8x8 grey scans), as RGB `fmt` files
    (png or jpeg), upscaled to `size` x `size` by pixel repetition; the first `count` (all with 0)."""
    import numpy as np
    from sklearn.datasets import load_digits

    from tfxc._tf import tf

    digits = load_digits()
    images, targets = digits.images[:count or None], digits.target[:count or None]
    encode = tf.io.encode_png if fmt == "png" else tf.io.encode_jpeg
    out = []
    for image, target in zip(images, targets):
        pixels = (image * (255 / 16)).astype(np.uint8).repeat(size // 8, 0).repeat(size // 8, 1)
        out.append((encode(np.repeat(pixels[..., None], 3, axis=-1)).numpy(), int(target)))
    return out


def tiny_vision_preset(family: str, directory, **shape) -> str:
    """A random-weight keras-hub image backbone and its converter, saved by tools/tiny_vision_preset.py."""
    return tool_module("tiny_vision_preset").build_preset(family, str(directory), **shape)


def huge_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real grey PNG of width x height black pixels (1.7 MB at 20000 x 20000: zeros compress), written row
    by row with zlib: what a decompression bomb is, without an image library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, rows = zlib.compressobj(1), b"\0" * (width + 1) * 100  # each row: filter byte 0, then the pixels
    body = b"".join(packer.compress(rows) for _ in range(height // 100))
    body += packer.compress(b"\0" * (width + 1) * (height % 100)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))
