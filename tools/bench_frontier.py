"""The time-to-accuracy plots of `tools/bench.py`: per data set, validation P@5 against training seconds.

Read from bench.py's records (benchmarks/results.json; `tools/bench_curves.py` explains the validation
rows and where each curve comes from): a line per tfxc system (its periodic evaluations), markers per
peer (one per training budget, dashed between). One PNG per data set, `time_to_p5_<dataset>.png`, so
the speed/accuracy frontier is visible, not one point. Needs only matplotlib (no tfxc, no
TensorFlow), so it also runs under the peers' interpreter:
`python tools/bench_frontier.py --results R --out DIR --datasets A,B --peers P,Q`.
"""

from __future__ import annotations

import os

def frontier_series(results: list[dict], dataset: str, peers: tuple[str, ...]) -> list[dict]:
    """The plot's data for one data set: [{"system", "peer", "seconds": [...], "P@5": [...]}], tfxc first.

    Records without a validation curve (failed runs, runs before curves existed) are left out; a curve's
    points stay in time order.
    """
    series = []
    for r in results:
        curve = r.get("val_curve") or []
        if r["dataset"] != dataset or r.get("status") != "ok" or not curve:
            continue
        points = sorted((p for p in curve if "P@5" in p), key=lambda p: p["seconds"])
        series.append({"system": r["system"], "peer": r["system"] in peers,
                       "seconds": [p["seconds"] for p in points], "P@5": [p["P@5"] for p in points]})
    return sorted(series, key=lambda s: (s["peer"], s["system"]))


def plot_frontier(results: list[dict], dataset: str, peers: tuple[str, ...], path: str) -> bool:
    """Draws `dataset`'s time-to-accuracy plot into `path` (PNG); False when no record has a curve."""
    series = frontier_series(results, dataset, peers)
    if not series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = {r.get("val_rows") for r in results if r["dataset"] == dataset and r.get("val_curve")}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.get_cmap("tab10").colors
    for i, s in enumerate(series):
        style = ({"marker": "o", "linestyle": "--", "linewidth": 0.8, "markersize": 7} if s["peer"]
                 else {"marker": ".", "linestyle": "-", "linewidth": 1.5})
        ax.plot(s["seconds"], s["P@5"], color=colours[i % len(colours)], label=s["system"], **style)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labelled minor ticks collide in a decade
    ax.set(xlabel="training wall-clock seconds (log)", ylabel="validation P@5",
           title=f"{dataset}: validation P@5 over training time "
                 f"({', '.join(str(n) for n in sorted(n for n in rows if n))} held-out train rows)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    plt.close(fig)
    os.replace(path + ".tmp.png", path)
    return True


def frontier_path(out: str, dataset: str) -> str:
    return os.path.join(out, f"time_to_p5_{dataset}.png")


def main(argv=None) -> int:
    """Draws the frontier plots of the given data sets from a results file (needs only matplotlib).

    bench.py runs this under `--peer-python` when its own interpreter has no matplotlib (TensorFlow's
    environment need not carry a plotting library; the peers' venv does).
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(description="time-to-accuracy plots from bench.py's results.json")
    parser.add_argument("--results", required=True)
    parser.add_argument("--out", required=True, help="directory of the time_to_p5_<dataset>.png files")
    parser.add_argument("--datasets", required=True, help="comma-separated")
    parser.add_argument("--peers", required=True, help="comma-separated peer system names")
    args = parser.parse_args(argv)
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    peers = tuple(args.peers.split(","))
    for dataset in args.datasets.split(","):
        if plot_frontier(results, dataset, peers, frontier_path(args.out, dataset)):
            print(f"[bench] {frontier_path(args.out, dataset)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
