"""The tables and plots `tools/bench.py` renders from its records (benchmarks/results.json).

`markdown_tables`: a table per real data set with each tfxc figure's ratio to the best peer and the
sentences where tfxc trails, then the synthetic scale runs; `plot`: P@5 against training time per set;
`plot_scale`: memory and training time against the number of labels; `serving_lines`: the serving
figures measured in one process per system (one row and 256-row batches through the SavedModel next to
the empty signature, bench.py's worker), with the margins the project aims at: one row within
`ROW_MARGIN_MS` of the empty call, and batch rows/s against the best peer's; `curve_lines`: the
time-to-accuracy curves' numbers (`tools/bench_curves.py`, plotted by `tools/bench_frontier.py`).
"""

from __future__ import annotations

import os

from bench_sets import DATASETS, PEERS, REAL_DATASETS, SCALE_CONFIG, SCALE_DATASETS, SHAPED_DATASETS  # same folder

ROW_MARGIN_MS = 0.3  # issue 41's target: one row at most this much over the empty signature call

COLUMNS = [("P@1", "P@1", "{:.2f}", "high"), ("P@3", "P@3", "{:.2f}", "high"), ("P@5", "P@5", "{:.2f}", "high"),
           ("nDCG@5", "nDCG@5", "{:.2f}", "high"), ("PSP@1", "PSP@1", "{:.2f}", "high"),
           ("PSP@5", "PSP@5", "{:.2f}", "high"), ("train s", "train_s", "{:.1f}", "low"),
           ("predict rows/s", "predict_rows_per_s", "{:,.0f}", "high"),
           ("1-row ms", "latency_ms_median", "{:.2f}", "low"), ("peak RSS GB", "peak_rss_gb", "{:.2f}", "low"),
           ("model MB", "model_bytes", "{:.1f}", "low")]


def _value(record: dict, key: str) -> float:
    return record[key] / 2**20 if key == "model_bytes" else record[key]


def markdown_tables(results: list[dict]) -> str:
    """A table per real data set, then one table for the synthetic scale runs (if any ran)."""
    out = []
    for dataset in [d for d in REAL_DATASETS + SHAPED_DATASETS if any(r["dataset"] == d for r in results)]:
        rows = sorted((r for r in results if r["dataset"] == dataset), key=lambda r: r["system"])
        ok = [r for r in rows if r["status"] == "ok"]
        peers = [r for r in ok if r["system"] in PEERS]
        quick = " (quick mode: tfxc trained 200 steps)" if any(r.get("quick") for r in rows) else ""
        out += [f"### {dataset}{quick}", "",
                "| system | " + " | ".join(name for name, *_ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for r in ok:
            out.append(f"| {r['system']} | " + " | ".join(fmt.format(_value(r, key)) for _, key, fmt, _ in COLUMNS)
                       + " |")
            if peers and r["system"] not in PEERS:
                cells = []
                for _, key, _, better in COLUMNS:
                    best = (max if better == "high" else min)(_value(p, key) for p in peers)
                    cells.append(f"{_value(r, key) / best:.2f}×" if best else "–")
                out.append(f"| ↳ {r['system']} / best peer | " + " | ".join(cells) + " |")
        for r in rows:
            if r["status"] != "ok":
                out.append(f"| {r['system']} | {r['status']}: {r.get('error', '')} |" + " |" * (len(COLUMNS) - 1))
        out += ["", *behind_lines(ok, peers), ""]
    out += scale_table(results) + serving_lines(results, list(DATASETS), PEERS)
    out += curve_lines(results, list(DATASETS), PEERS)
    return "\n".join(out).rstrip() + "\n"


SCALE_COLUMNS = [("P@1", "P@1", "{:.2f}"), ("P@5", "P@5", "{:.2f}"), ("train s", "train_s", "{:,.1f}"),
                 ("predict rows/s", "predict_rows_per_s", "{:,.0f}"), ("1-row ms", "latency_ms_median", "{:.2f}"),
                 ("peak RSS GB", "peak_rss_gb", "{:.2f}"), ("model MB", "model_bytes", "{:,.1f}")]


def scale_table(results: list[dict]) -> list[str]:
    """One table over the synthetic label counts: how time, memory and size grow with L, per system."""
    runs = [r for r in results if r["dataset"] in SCALE_DATASETS]
    if not runs:
        return []
    out = ["### synthetic scale runs: 10^4 to 10^7 labels", "",
           "| labels (in train) | system | " + " | ".join(name for name, *_ in SCALE_COLUMNS) + " |",
           "|---" * (len(SCALE_COLUMNS) + 2) + "|"]
    for dataset in [d for d in SCALE_DATASETS if any(r["dataset"] == d for r in runs)]:
        labels = f"{DATASETS[dataset].num_labels:,}"
        for r in sorted((r for r in runs if r["dataset"] == dataset), key=lambda r: r["system"]):
            seen = f" ({r['labels_in_train']:,})" if "labels_in_train" in r else ""
            if r["status"] == "ok":
                cells = [fmt.format(_value(r, key)) for _, key, fmt in SCALE_COLUMNS]
            else:
                cells = [f"{r['status']}: {r.get('error', '')}"] + [""] * (len(SCALE_COLUMNS) - 1)
            out.append(f"| {labels}{seen} | {r['system']} | " + " | ".join(cells) + " |")
    return out + [""]


def behind_lines(ok: list[dict], peers: list[dict]) -> list[str]:
    """Plain sentences for every figure where a tfxc system trails the best peer."""
    lines = []
    for r in (r for r in ok if r["system"] not in PEERS):
        behind = []
        for name, key, _, better in COLUMNS:
            if not peers:
                continue
            values = [(_value(p, key), p["system"]) for p in peers]
            best, who = (max if better == "high" else min)(values)
            mine = _value(r, key)
            if (better == "high" and mine < best) or (better == "low" and mine > best):
                behind.append(f"{name} ({mine:.4g} vs {who} {best:.4g})")
        if behind:
            lines.append(f"{r['system']} is behind the best peer on: " + "; ".join(behind) + ".")
        elif peers:
            lines.append(f"{r['system']} is at or ahead of the best peer on every figure.")
    return lines


def serving_lines(results: list[dict], datasets: list[str], peers: tuple[str, ...]) -> list[str]:
    """A markdown table of the serving figures: per data set and system, one row and 256-row batches.

    tfxc systems: one-row median ms, the empty signature's in the same process, their difference (✓
    within ROW_MARGIN_MS), 256-row batch rows/s (the empty call's beside it), the ratio to the best
    peer's batch rows/s, and the index's recall of the exact top-5 when the export recorded one.
    Peers: one-row ms and batch rows/s.
    """
    rows = [r for r in results if r.get("status") == "ok" and r["dataset"] in datasets and "batch256_rows_per_s" in r]
    if not rows:
        return []
    out = ["### serving: one row and 256-row batches", "",
           "| data set | system | 1-row ms | empty call ms | over empty ms | batch rows/s | empty rows/s "
           "| / best peer | index recall@5 |", "|---" * 9 + "|"]
    for dataset in datasets:
        ours = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: (r["system"] in peers, r["system"]))
        best_peer = max((r["batch256_rows_per_s"] for r in ours if r["system"] in peers), default=None)
        for r in ours:
            cells = [f"{r['latency_ms_median']:.2f}"]
            if r["system"] in peers:
                cells += ["", "", f"{r['batch256_rows_per_s']:,.0f}", "", "", ""]
            else:
                over = r["latency_ms_median"] - r["empty_latency_ms_median"]
                mark = " ✓" if over <= ROW_MARGIN_MS else ""
                recall = r.get("index_recall_at_5")
                cells += [f"{r['empty_latency_ms_median']:.2f}", f"{over:+.2f}{mark}",
                          f"{r['batch256_rows_per_s']:,.0f}", f"{r['empty_batch256_rows_per_s']:,.0f}",
                          f"{r['batch256_rows_per_s'] / best_peer:.2f}×" if best_peer else "–",
                          "–" if recall is None else f"{100 * recall:.2f} %"]
            out.append(f"| {dataset} | {r['system']} | " + " | ".join(cells) + " |")
    return out + [""]


def time_to_reach(curve: list[dict], target: float) -> float | None:
    """The seconds of a curve's first point at or above `target` validation P@5 (None: never)."""
    return next((p["seconds"] for p in sorted(curve, key=lambda p: p["seconds"]) if p["P@5"] >= target), None)


def curve_lines(results: list[dict], datasets: list[str], peers: tuple[str, ...]) -> list[str]:
    """A markdown table of the time-to-accuracy curves (the plots' numbers): per data set and system, its best
    validation P@5 and when it came, and when it first reached the best peer's validation P@5."""
    rows = [r for r in results if r.get("status") == "ok" and r["dataset"] in datasets and r.get("val_curve")]
    if not rows:
        return []
    out = ["### time to accuracy: validation P@5 against training seconds", "",
           "| data set | system | val rows | best val P@5 | at s | best peer's val P@5 | reached at s |",
           "|---" * 7 + "|"]
    for dataset in datasets:
        ours = sorted((r for r in rows if r["dataset"] == dataset), key=lambda r: (r["system"] in peers, r["system"]))
        target = max((p["P@5"] for r in ours if r["system"] in peers for p in r["val_curve"]), default=None)
        for r in ours:
            best = max(r["val_curve"], key=lambda p: (p["P@5"], -p["seconds"]))  # the earliest of equals
            reached = "–"
            if target is not None:
                seconds = time_to_reach(r["val_curve"], target)
                reached = "never" if seconds is None else f"{seconds:.2f}"
            out.append(f"| {dataset} | {r['system']} | {r.get('val_rows', '?')} | {best['P@5']:.2f} | "
                       f"{best['seconds']:.2f} | {'–' if target is None else f'{target:.2f}'} | {reached} |")
    return out + [""]


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ok = [r for r in results if r["status"] == "ok"]
    datasets = [d for d in REAL_DATASETS + SHAPED_DATASETS if any(r["dataset"] == d for r in ok)]
    if not datasets:
        return
    cols = min(4, len(datasets))
    rows = -(-len(datasets) // cols)
    # One colour per system across all panels, so a system is recognisable without reading its label.
    colours = dict(zip(sorted({r["system"] for r in ok}), plt.get_cmap("tab10").colors))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows), squeeze=False)
    for ax, dataset in zip(axes.ravel(), datasets):
        for r in (r for r in ok if r["dataset"] == dataset):
            ax.scatter(r["train_s"], r["P@5"], marker="o" if r["system"] in PEERS else "*", s=70,
                       color=colours[r["system"]])
            ax.annotate(r["system"], (r["train_s"], r["P@5"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # a narrow decade would crowd them
        ax.set(title=dataset, xlabel="training time (s, log)", ylabel="P@5")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(datasets):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)


def plot_scale(results: list[dict], path: str) -> None:
    """Peak memory and training time against the number of labels (log-log), a line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in results if r["status"] == "ok" and r["dataset"] in SCALE_DATASETS]
    if not ok:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for system in sorted({r["system"] for r in ok}):
        runs = sorted((r for r in ok if r["system"] == system), key=lambda r: DATASETS[r["dataset"]].num_labels)
        labels = [DATASETS[r["dataset"]].num_labels for r in runs]
        style = {"marker": "o" if system in PEERS else "*", "linestyle": "--" if system in PEERS else "-"}
        axes[0].plot(labels, [r["peak_rss_gb"] for r in runs], label=system, **style)
        axes[1].plot(labels, [r["train_s"] for r in runs], label=system, **style)
    for ax, ylabel in zip(axes, ("peak resident memory (GB)", "training time (s)")):
        ax.set(xscale="log", yscale="log", xlabel="number of labels", ylabel=ylabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"synthetic scale runs ({SCALE_CONFIG} with num_labels = L)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path + ".tmp.png", dpi=100)
    os.replace(path + ".tmp.png", path)
