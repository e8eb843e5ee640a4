"""Benchmark suite: tfxc against PECOS, napkinXC and omikuji on the same data, in one run.

  python tools/bench.py --peer-python /path/to/peers-venv/bin/python            # the 8 real sets
  python tools/bench.py --peer-python ... --datasets scale                      # 10^4..10^7 labels
  python tools/bench.py --quick                                                 # 2 small sets, minutes
  python tools/bench.py --datasets bibtex --systems tfxc-recipe,pecos-xrlinear

For every (data set, system) pair, one process trains on the train split and
predicts the top 5 labels of every test point; this process then scores all
systems with the same metric code (`tfxc.eval.metrics`: P@k, nDCG@k, PSP@k with
A=0.55, B=1.5 propensities from the train labels). Recorded per run: training
wall time, batch prediction throughput, single-row latency (median over 200
test rows) and 256-row batch rows/s, peak resident memory and model size on
disk. tfxc trains with its config and is timed through its exported
SavedModel, as a server would load it, next to an empty signature with the same
inputs in the same process (`empty_latency_ms_median`,
`empty_batch256_rows_per_s`; `index_recall_at_5` when the export answers top-k
through a label index). tfxc-recipe is the recipe (its default point);
tfxc-fast runs it with `--recipe fast`, tfxc-best with `--recipe best` (an ensemble: its training time is
its members' loops added up, and it serves from one SavedModel).

Time-to-accuracy (not with --quick or --no-curves): validation P@5 against
training seconds for every system, on validation rows carved from train the
same way for all (`tools/bench_curves.py`), drawn as `time_to_p5_<set>.png`
(`tools/bench_frontier.py`; under --peer-python when this interpreter has no
matplotlib). The test-split figures above are unaffected.
Peers run with their documented defaults (see `tools/bench_peers.py`), under
`--peer-python` (libpecos needs numpy<2, so they usually live in their own
virtual environment; `pip install -e ".[bench]"` installs them where numpy<2 is
possible). Every run has a time limit; a failure is recorded, not fatal.

The scale runs (`synthetic-1e4` … `synthetic-1e7`) train every system on
100,000 generated points whose label space has 10^4 … 10^7 labels (Zipf label
frequencies; `configs/scale_synthetic_*.json`), to show how training time,
memory and model size grow with L. `--datasets shaped` runs the generated sets
shaped like a published one (`synthetic-670k-shape`: Amazon-670K's rows,
features, labels and densities), reported like a real set:

  python tools/bench.py --peer-python ... --datasets synthetic-670k-shape --no-curves \
      --systems tfxc-fast,pecos-xrlinear,omikuji-parabel,napkinxc-plt

Outputs in `--out` (default `benchmarks/`): `results.json` (raw figures, merged
with earlier runs), `tables.md` (a table per real data set with each tfxc
figure's ratio to the best peer, then one table of the scale runs and one of the serving figures),
`p5_vs_train_time.png`, `scale_vs_labels.png` and `time_to_p5_<set>.png`; with `--update-markdown FILE`
the tables replace the block between `<!-- bench:begin -->` and
`<!-- bench:end -->` in FILE.

`--standing` runs nothing: it renders the current standing (one table per data
set against the peers, from OUT/results.json, `tools/bench_standing.py`) and,
with `--update-markdown FILE`, writes it between `<!-- standing:begin -->` and
`<!-- standing:end -->` in FILE:

  python tools/bench.py --standing --update-markdown BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

from bench_curves import CARVE_DIR, carve, peer_point, tfxc_curve  # same folder
from bench_peers import BUDGETS, directory_bytes, write_result
from bench_report import markdown_tables, plot, plot_scale
from bench_sets import (DATASETS, PEERS, POINT_SYSTEMS, QUICK_DATASETS, QUICK_OVERRIDES, REAL_DATASETS,
                        RECIPE_SYSTEM, SCALE_CONFIG, SCALE_DATASETS, SHAPED_DATASETS)

from tfxc.cli import FiniteFloat
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_write_text
from tfxc.utils.memory import peak_rss_gb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
K = 5


# === Data ===
def _split_rows(dataset: str, shared: str, out: str) -> tuple[dict, int, int]:
    """({"trn": rows, "tst": rows}, num_features, num_labels) of a data set; rows are `tfxc.data.rows.Row`s."""
    spec = DATASETS[dataset]
    if spec.num_labels:
        from tfxc.config import load_config
        from tfxc.data.synthetic import SyntheticXmc

        generator = SyntheticXmc(load_config(os.path.join(REPO, SCALE_CONFIG),
                                             spec.overrides(dataset, out)).data.synthetic)
        rows = {split: list(generator.rows(name)) for split, name in (("trn", "train"), ("tst", "test"))}
        return rows, generator.num_features, generator.num_labels

    from tfxc.data.readers import XcBowReader

    readers = {split: XcBowReader(os.path.join(shared, path)) for split, path in (("trn", spec.train),
                                                                                    ("tst", spec.test))}
    rows = {split: list(reader) for split, reader in readers.items()}
    return rows, max(r.num_features for r in readers.values()), max(r.num_labels for r in readers.values())


def prepare(dataset: str, shared: str, out_dir: str) -> str:
    """Writes X/Y.{trn,tst}.npz of a data set (once) from the rows tfxc trains on; returns the directory."""
    import scipy.sparse as sp

    from tfxc.data.csr import rows_to_csr

    directory = os.path.join(out_dir, "data", dataset)
    if os.path.exists(os.path.join(directory, "done")):
        return directory
    os.makedirs(directory, exist_ok=True)
    rows, num_features, num_labels = _split_rows(dataset, shared, out_dir)
    for split, split_rows in rows.items():
        x, y = rows_to_csr(split_rows, num_features, num_labels)
        sp.save_npz(os.path.join(directory, f"X.{split}.npz"), x)
        sp.save_npz(os.path.join(directory, f"Y.{split}.npz"), y)
    open(os.path.join(directory, "done"), "w").close()
    return directory


def score(data_dir: str, ids: np.ndarray) -> dict:
    import scipy.sparse as sp

    from tfxc.eval.metrics import XmcMetrics
    from tfxc.data.propensity import propensities

    y_train, y_test = (sp.load_npz(os.path.join(data_dir, f"Y.{s}.npz")).tocsr() for s in ("trn", "tst"))
    freq = np.asarray(y_train.sum(axis=0)).ravel()
    multiclass = bool(np.all(np.diff(y_test.indptr) == 1))
    metrics = XmcMetrics(ks=(1, 3, 5), multiclass=multiclass, propensities=propensities(freq, y_train.shape[0]))
    metrics.update(ids, y_test.indptr.astype(np.int64), y_test.indices.astype(np.int64))
    return {**metrics.result(), "labels_in_train": int(np.count_nonzero(freq))}


# === Running one system ===
def run_system(dataset: str, system: str, data_dir: str, work: str, args) -> dict:
    """Runs one pair in its own process under a time limit; returns its record (never raises)."""
    record = {"dataset": dataset, "system": system, "date": time.strftime("%Y-%m-%d"), "quick": args.quick,
              "load_avg_1m": round(os.getloadavg()[0], 2)}  # the machine's state when the run began
    convert = None
    if system in PEERS:
        cmd = [args.peer_python, os.path.join(REPO, "tools", "bench_peers.py"), "--system", system,
               "--data", data_dir, "--work", work, "--k", str(K)]
    elif system == RECIPE_SYSTEM or system in POINT_SYSTEMS:
        sets = [f"--set={o}" for o in (QUICK_OVERRIDES if args.quick else [])]
        point = [f"--recipe={POINT_SYSTEMS[system]}"] if system in POINT_SYSTEMS else []
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--data", data_dir, "--work", work, *point,
               *sets, *(["--reuse-models"] if args.reuse_models else [])]
        record["config"] = f"recipe --recipe {POINT_SYSTEMS[system]}" if point else "recipe"
    else:
        config = DATASETS[dataset].systems[system]
        overrides = DATASETS[dataset].overrides(dataset, args.out) + (QUICK_OVERRIDES if args.quick else [])
        sets = [f"--set={o}" for o in overrides]
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--config", os.path.join(REPO, config),
               "--data", data_dir, "--work", work, *sets, *(["--reuse-models"] if args.reuse_models else [])]
        # Data conversion (XC text or generator -> TFRecord) is not training, and its memory is not the
        # model's: it runs first, in a process of its own, as the peers get their matrices ready-made.
        convert = [sys.executable, "-m", "tfxc.convert", "--config", os.path.join(REPO, config), *sets]
        record["config"] = config
    start = time.time()
    try:
        if convert:
            subprocess.run(convert, cwd=REPO, check=True, capture_output=True, timeout=args.timeout,
                           start_new_session=True)
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout,
                              start_new_session=True)
    except subprocess.TimeoutExpired:
        return {**record, "status": "timeout", "error": f"over the {args.timeout:.0f}s limit"}
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
        return {**record, "status": "failed", "error": f"data conversion, exit {e.returncode}: {tail[0][:300]}"}
    except OSError as e:
        return {**record, "status": "failed", "error": str(e)}
    record["wall_s"] = time.time() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return {**record, "status": "failed", "error": f"exit {proc.returncode}: {tail[0][:300]}"}
    with open(os.path.join(work, "result.json"), encoding="utf-8") as f:
        record.update(json.load(f))
    ids = np.load(os.path.join(work, "pred.npz"), allow_pickle=False)["ids"]
    record.update({k: v for k, v in score(data_dir, ids).items() if k != "num_points"})
    record["status"] = "ok"
    if system in PEERS and os.path.exists(os.path.join(data_dir, CARVE_DIR, "done")):
        record.update(peer_curve(data_dir, system, work, args))
    return record


def peer_curve(data_dir: str, system: str, work: str, args) -> dict:
    """A peer trained again on the carved train rows and scored on the validation rows (bench_curves.py):
    at its defaults, and at each smaller budget of `bench_peers.BUDGETS` (a point each)."""
    carve_dir, points = os.path.join(data_dir, CARVE_DIR), []
    for trees in (*BUDGETS.get(system, ()), 0):
        curve_work = os.path.join(work, f"val-{trees or 'default'}")
        cmd = [args.peer_python, os.path.join(REPO, "tools", "bench_peers.py"), "--system", system, "--data",
               carve_dir, "--work", curve_work, "--k", str(K), "--latency-rows", "0", "--trees", str(trees)]
        try:
            subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=args.timeout, check=True,
                           start_new_session=True)
        except (subprocess.SubprocessError, OSError) as e:
            return {"val_curve_error": f"{type(e).__name__}: {str(e)[:200]}"}
        with open(os.path.join(curve_work, "result.json"), encoding="utf-8") as f:
            train_s = json.load(f)["train_s"]
        ids = np.load(os.path.join(curve_work, "pred.npz"), allow_pickle=False)["ids"]
        points.append(peer_point(train_s, score(carve_dir, ids), len(ids), trees=trees))
    return {"val_curve": points, "val_rows": points[-1]["val_rows"]}


def trained_seconds(model_dir: str) -> float | None:
    """The training time a finished model directory records, or None: its loop's and its set-up before the loop
    (the recipe's measurements, the label tree, the warm starts: `prepare_seconds`, where recorded), plus for
    XR-Transformer each fine-tuned level's loop and the passes before each loop where recorded
    (levels/level-*/level.json, ranker_prepared.json: embeddings, `man` predictions, bootstrap, the refined
    tree)."""
    from tfxc.errors import DataError
    from tfxc.model_dir import ModelDir

    try:
        metrics = ModelDir(model_dir).metrics()
        seconds = float(metrics["train_seconds"]) + float(metrics.get("prepare_seconds", 0.0))
    except (DataError, OSError, KeyError, TypeError, ValueError):
        return None
    levels = os.path.join(model_dir, "levels")
    records = [os.path.join(levels, name, "level.json") for name in sorted(os.listdir(levels))
               ] if os.path.isdir(levels) else []
    for path in records + [os.path.join(model_dir, "ranker_prepared.json")]:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
            seconds += float(record.get("train_seconds", 0.0)) + float(record.get("prepare_seconds", 0.0))
    return seconds


def test_texts(config) -> np.ndarray | None:
    """The test split's texts (object [N]) when the config trains on JSONL text, else None."""
    if config is None or config.data.format != "jsonl":
        return None
    from tfxc.data.files import open_text

    with open_text(os.path.join(REPO, config.data.test)) as f:
        return np.array([json.loads(line)["text"] for line in f if line.strip()], dtype=object)


def tfxc_worker(args) -> None:
    """--worker: trains a tfxc config, exports it, and times the SavedModel (in its own process)."""
    import scipy.sparse as sp

    from tfxc.config import load_config
    from tfxc.model import num_parts
    from tfxc.model_dir import ModelDir

    work = args.work
    model_dir, saved = os.path.join(work, "model"), os.path.join(work, "savedmodel")
    reused = args.reuse_models and trained_seconds(model_dir) is not None
    for name in os.listdir(work) if os.path.isdir(work) else []:  # a reused model stays, nothing else
        if not (reused and name == "model"):
            shutil.rmtree(os.path.join(work, name), ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    sets = [f"--set={o}" for o in args.overrides]
    quiet = {"cwd": REPO, "check": True, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    launched = time.time()  # wall clock, comparable with the repetitions' file times below
    # No --config: the recipe (one part); its data conversion happens inside tfxc.train, outside train_seconds.
    config = load_config(args.config, args.overrides) if args.config else None
    parts = 1 if config is None or config.recipe else num_parts(config.model)  # the recipe's heads train whole
    if reused:
        train_s = trained_seconds(model_dir)
    elif not args.config:
        point = [f"--recipe={args.recipe}"] if args.recipe else []
        subprocess.run([sys.executable, "-m", "tfxc.train", "--train", os.path.join(args.data, "X.trn.npz"),
                        "--test", os.path.join(args.data, "X.tst.npz"), "--model-dir", model_dir, *point, *sets],
                       **quiet)
        train_s = trained_seconds(model_dir)
    elif parts > 1:
        # Heads trained in independent parts (MACH's repetitions) train as separate processes, two at a time
        # (train.sh), which then merges them and evaluates the merged model.
        env = dict(os.environ, PYTHON=sys.executable, TFXC_NO_TMUX="1")
        subprocess.run(["bash", "train.sh", args.config, "2", model_dir, *sets], env=env, **quiet)
        # Training time: from the launch to the last part's final checkpoint. Each part saves at its last step
        # and then evaluates itself on the test split; that evaluation, the merge and the merged model's
        # evaluation are not training (each part's process start-up is counted).
        # "checkpoint" is the state file TensorFlow rewrites at every save, the last one at the last step.
        ends = [os.path.getmtime(os.path.join(ModelDir(model_dir).part(r).checkpoint_dir, "checkpoint"))
                for r in range(parts)]
        train_s = max(ends) - launched
    else:
        subprocess.run([sys.executable, "-m", "tfxc.train", "--config", args.config, "--model-dir", model_dir,
                        *sets], **quiet)
        # The training loops alone, like the peers' train() calls (no interpreter/TF start-up or final
        # evaluation).
        train_s = trained_seconds(model_dir)
    process_s = time.time() - launched
    if reused and config is not None:  # served with the config's prediction settings as they are now
        from tfxc.config import to_dict

        prediction = getattr(config.model.head, "prediction", None)  # the head's prediction section, if it has one
        if prediction is not None:
            sets.append(f"--set=model.head.prediction={json_text(to_dict(prediction))}")
    subprocess.run([sys.executable, "-m", "tfxc.export", "--model-dir", model_dir, "--out", saved, *sets], **quiet)

    from bench_serving import index_recall, load_baseline, serving_figures  # same folder (imports TensorFlow)

    from tfxc._tf import tf

    texts = test_texts(config)
    if texts is not None:
        import tensorflow_text  # noqa: F401  (registers the TF-Text ops a text model's graph runs)
    serve = tf.saved_model.load(saved).signatures["serving_default"]
    x = sp.load_npz(os.path.join(args.data, "X.tst.npz")).tocsr() if texts is None else texts

    def request(rows):  # a slice or an index array of test rows
        if texts is not None:  # a text model: the raw strings of the same rows, in the same order
            return {"text": tf.constant(texts[rows])}
        part = x[rows]
        return {"feat_idx": tf.constant(part.indices, tf.int64), "feat_val": tf.constant(part.data, tf.float32),
                "row_splits": tf.constant(part.indptr, tf.int64)}

    batch = 256
    requests = [request(slice(i, i + batch)) for i in range(0, x.shape[0], batch)]
    serve(**requests[0])  # warm-up (traces nothing: the signatures are concrete)
    start = time.perf_counter()
    ids = np.concatenate([serve(**r)["label_ids"].numpy()[:, :K] for r in requests])
    predict_s = time.perf_counter() - start
    singles = [request(slice(i, i + 1)) for i in range(min(200, x.shape[0]))]
    # 256-row batches of random test rows (with replacement: a small test split still gives 20 of them).
    batches = [request(rows) for rows in np.random.default_rng(0).integers(0, x.shape[0], (20, batch))]
    baseline = load_baseline(os.path.join(work, "empty-signature"), text=texts is not None)
    serving = serving_figures(serve, baseline, singles, batches)
    np.savez(os.path.join(work, "pred.npz"), ids=ids.astype(np.int64))
    carve_dir = os.path.join(args.data, CARVE_DIR)
    curve = tfxc_curve(model_dir, carve_dir) if os.path.exists(os.path.join(carve_dir, "done")) else {}
    # The largest of this process and its children (training, export). A child's ru_maxrss also counts this
    # process's size when it forked (Linux keeps it across execve), which is at most this process's own peak.
    rss_gb = max(peak_rss_gb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20)
    write_result(work, {"train_s": train_s, "train_process_s": process_s, "predict_rows_per_s": x.shape[0] / predict_s,
                        **serving, "index_recall_at_5": index_recall(saved), "model_bytes": directory_bytes(saved),
                        "peak_rss_gb": rss_gb, **curve})


def draw_frontiers(results_path: str, datasets: list[str], args) -> None:
    """The time-to-accuracy plots (tools/bench_frontier.py), drawn by an interpreter that has matplotlib."""
    python = sys.executable
    if importlib.util.find_spec("matplotlib") is None:
        python = args.peer_python  # BENCHMARKS.md's peers' venv carries matplotlib
    cmd = [python, os.path.join(REPO, "tools", "bench_frontier.py"), "--results", results_path, "--out", args.out,
           "--datasets", ",".join(datasets), "--peers", ",".join(PEERS)]
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:  # the results are written: a missing plot is no reason for a traceback
        print("[bench] no time-to-accuracy plot (tools/bench_frontier.py did not finish in 600 s)", flush=True)
        return
    why = (proc.stderr.strip().splitlines() or ["no curves"])[-1]
    print(proc.stdout.strip() or f"[bench] no time-to-accuracy plot ({why})", flush=True)


def refuse_to_overwrite_published(out: str, markdown: str) -> None:
    """--quick's 200-step figures must never replace full results (in OUT/results.json or a markdown block)."""
    results_path = os.path.join(out, "results.json")
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            published = [r for r in json.load(f) if not r.get("quick")]
        if published:
            raise SystemExit(f"bench.py: --quick would write smoke-test figures next to {len(published)} full "
                             f"results in {results_path}; give another --out")
    if markdown and os.path.exists(markdown):
        with open(markdown, encoding="utf-8") as f:
            content = f.read()
        block = content.split("<!-- bench:begin -->", 1)[-1].split("<!-- bench:end -->", 1)[0]
        if "### " in block and "(quick mode" not in block:
            raise SystemExit(f"bench.py: --quick would replace the published tables in {markdown}; "
                             "drop --update-markdown")


def replace_block(path: str, text: str, marker: str = "bench") -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    with open(path, encoding="utf-8") as f:
        content = f.read()
    if begin not in content or end not in content:
        raise SystemExit(f"{path}: add the markers {begin} and {end} where the tables go")
    head, rest = content.split(begin, 1)
    atomic_write_text(path, head + begin + "\n" + text + end + rest.split(end, 1)[1])


def standing(out: str, markdown: str) -> int:
    """--standing: prints the current-standing section rendered from OUT/results.json (and puts it in markdown)."""
    from bench_standing import render_standing  # same folder

    results_path = os.path.join(out, "results.json")
    with open(results_path, encoding="utf-8") as f:
        results = json.load(f)
    source = os.path.relpath(results_path, REPO) if results_path.startswith(REPO + os.sep) else results_path
    text = render_standing(results, list(DATASETS), PEERS, source)
    if markdown:
        replace_block(markdown, text, marker="standing")
    print(text)
    return 0


# The kernel probe's time limit: it imports tfxc (about a second on an idle machine), which a machine busy
# with other runs can slow down by orders of magnitude.
PROBE_TIMEOUT_S = 600.0


def compiled_kernels_in_repo(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the tfxc that the runs import (the one in REPO, their working directory) has its Cython kernels.

    Asked in a child process started there, as the runs are: this process may import another checkout's tfxc
    (an editable install points at one tree, and a worktree's runs import their own).

    Raises:
      SystemExit: the probe did not finish in `timeout` seconds (one line: what timed out, how to give it longer).
    """
    probe = ("import tfxc.kernels as k, tfxc.kernels.mach as m; "
             "print(int(k.HAVE_COMPILED_KERNELS and m.HAVE_COMPILED_MACH))")
    try:
        out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        load = os.getloadavg()[0]
        raise SystemExit(f"bench.py: the probe of tfxc's compiled kernels (importing tfxc.kernels in {REPO}) did not "
                         f"finish in {timeout:g} s (load average {load:.1f} on {os.cpu_count()} cores); raise "
                         "--probe-timeout, or skip the probe with --allow-numpy-kernels") from None
    return out.returncode == 0 and out.stdout.strip() == "1"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="",
                        help=f"comma-separated, from {', '.join(DATASETS)}; or the groups 'real' (the default), "
                             "'scale' (the synthetic-1e* runs), 'shaped' (generated sets of a published set's shape) "
                             "and 'all'")
    parser.add_argument("--systems", default="",
                        help="comma-separated: tfxc-recipe, tfxc-fast, tfxc-best, tfxc-ova, tfxc-mach, tfxc-softmax, "
                             "tfxc-linear, tfxc-tree, tfxc-mhc, tfxc-mhp, tfxc-mhs, tfxc-xrt, "
                             + ", ".join(PEERS) + " (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="bibtex and medical, tfxc for 200 steps (a smoke test: writes to benchmarks/work/quick "
                             "unless --out is given, and never over published results)")
    parser.add_argument("--out", default=None, help="where results, tables and plots go (default: benchmarks/)")
    parser.add_argument("--shared-data", default=SHARED)
    parser.add_argument("--peer-python", default=sys.executable,
                        help="interpreter with libpecos/napkinxc/omikuji installed")
    parser.add_argument("--timeout", type=FiniteFloat(0, low_open=True), default=3600.0,
                        help="seconds per (data set, system) run")
    parser.add_argument("--no-curves", action="store_true",
                        help="no time-to-accuracy curves (they train each peer a second time, on the train rows "
                             "outside the validation carve; tools/bench_curves.py)")
    parser.add_argument("--update-markdown", default="", help="file whose bench:begin/end block gets the tables")
    parser.add_argument("--standing", action="store_true",
                        help="run nothing: render the current standing from OUT/results.json (and write it into "
                             "--update-markdown's standing:begin/end block)")
    parser.add_argument("--allow-numpy-kernels", action="store_true",
                        help="run even though the tfxc that the runs import lacks its compiled kernels (their "
                             "NumPy fallbacks are slower, so the timings would not be tfxc's)")
    parser.add_argument("--probe-timeout", type=FiniteFloat(0, low_open=True), default=PROBE_TIMEOUT_S,
                        metavar="SECONDS", help="time limit of the check that tfxc's compiled kernels are built (a "
                                                "child process importing tfxc; default %(default)g)")
    # Internal: run one tfxc system (a separate process per run).
    parser.add_argument("--reuse-models", action="store_true",
                        help="a tfxc system whose OUT/work/SET/SYSTEM/model finished training is measured again "
                             "(export, predictions, serving) without training: its recorded training time stands "
                             "(the recipe's systems too: train one with tfxc.train --train/--test into that "
                             "directory to watch its log)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--recipe", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return tfxc_worker(args)

    if args.out is None:
        args.out = os.path.join(REPO, "benchmarks", "work", "quick") if args.quick else os.path.join(REPO, "benchmarks")
    if args.standing:
        return standing(args.out, args.update_markdown)
    if args.quick:
        refuse_to_overwrite_published(args.out, args.update_markdown)
    if not args.allow_numpy_kernels and not compiled_kernels_in_repo(args.probe_timeout):
        raise SystemExit(f"the tfxc in {REPO} has no compiled kernels (a fresh checkout or git worktree?): "
                         "its MACH evaluation and metrics would run their NumPy fallbacks and the timings would "
                         "not be tfxc's. Build them there (pip install -e . or python setup.py build_ext "
                         "--inplace), or pass --allow-numpy-kernels")

    groups = {"real": REAL_DATASETS, "scale": SCALE_DATASETS, "shaped": SHAPED_DATASETS, "all": list(DATASETS)}
    datasets = [name for d in args.datasets.split(",") if d for name in groups.get(d, [d])]
    datasets = datasets or list(QUICK_DATASETS if args.quick else REAL_DATASETS)
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    wanted = [s for s in args.systems.split(",") if s]
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.json")
    results = []
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as f:
            results = json.load(f)
    for dataset in datasets:
        data_dir = prepare(dataset, args.shared_data, args.out)
        if not args.no_curves and not args.quick:
            carve(data_dir)
        systems = list(DATASETS[dataset].systems) + [RECIPE_SYSTEM, *POINT_SYSTEMS] + list(PEERS)
        for system in [s for s in systems if not wanted or s in wanted]:
            work = os.path.join(args.out, "work", dataset, system)
            print(f"[bench] {dataset} / {system} ...", flush=True)
            record = run_system(dataset, system, data_dir, work, args)
            summary = (f"P@1 {record['P@1']:.2f} P@5 {record['P@5']:.2f} train {record['train_s']:.1f}s"
                       if record["status"] == "ok" else f"{record['status']}: {record.get('error', '')}")
            print(f"[bench] {dataset} / {system}: {summary}", flush=True)
            results = [r for r in results if (r["dataset"], r["system"]) != (dataset, system)] + [record]
            atomic_write_text(results_path, json_text(results, indent=2))
    tables = markdown_tables(results)
    atomic_write_text(os.path.join(args.out, "tables.md"), tables)
    try:
        plot(results, os.path.join(args.out, "p5_vs_train_time.png"))
        plot_scale(results, os.path.join(args.out, "scale_vs_labels.png"))
    except ImportError:
        print("[bench] matplotlib is not installed: no plot", flush=True)
    draw_frontiers(results_path, datasets, args)
    if args.update_markdown:
        replace_block(args.update_markdown, tables)
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
