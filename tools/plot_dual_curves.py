"""Plots validation curves of several runs (their eval_log.jsonl) and prints a Markdown table.

  python tools/plot_dual_curves.py --out docs/dual_wordnet_nextword.png \
      runs/nextword/{scent,sox,bsgd,umax,asgd,softplus}

Each run directory's eval_log.jsonl has one line per periodic evaluation
(written by `tfxc.train` with trainer.eval_every_steps/epochs). The PNG has two
panels, full-softmax cross-entropy and top-1 accuracy against epochs; the
table lists, per run, the value at every logged epoch and the final test line.
Needs matplotlib (not a tfxc dependency).
"""

from __future__ import annotations

import argparse
import json
import os

from tfxc.model_dir import ModelDir


def read_log(run_dir: str) -> tuple[list[dict], dict | None]:
    """(periodic evaluation lines, the final test line or None) of one run."""
    lines = ModelDir(run_dir).eval_log()
    curve_split = "val" if any(line["split"] == "val" for line in lines) else "test"
    curve = [line for line in lines if line["split"] == curve_split]
    final = [line for line in lines if line["split"] == "test"]
    return curve, (final[-1] if final else None)


def label_of(run_dir: str) -> str:
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        opt = json.load(f)["optimizer"]
    return f"{opt['algorithm'] or 'softmax'} (lr {opt['learning_rate']:g})"


def markdown_table(runs: dict[str, tuple[list[dict], dict | None]]) -> str:
    epochs = sorted({round(line["epoch"], 2) for curve, _ in runs.values() for line in curve})
    head = "| run | " + " | ".join(f"CE / top-1 @ epoch {e:g}" for e in epochs) + " | final test CE | top-1 | top-5 |"
    rows = [head, "|" + "---|" * (len(epochs) + 4)]
    for name, (curve, final) in runs.items():
        by_epoch = {round(line["epoch"], 2): line for line in curve}
        cells = [f"{by_epoch[e]['CE']:.3f} / {by_epoch[e]['Acc@1']:.2f}" if e in by_epoch else "–" for e in epochs]
        tail = [f"{final['CE']:.3f}", f"{final['Acc@1']:.2f}", f"{final['Acc@5']:.2f}"] if final else ["–"] * 3
        rows.append(f"| {name} | " + " | ".join(cells + tail) + " |")
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories (with eval_log.jsonl and config.json)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    runs = {label_of(run): read_log(run) for run in args.runs}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_ce, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    # A diverging run would flatten every other curve: clip the loss axis a little above the
    # first evaluation and mark what lies beyond it.
    first = [curve[0]["CE"] for curve, _ in runs.values() if curve]
    lows = [line["CE"] for curve, _ in runs.values() for line in curve]
    top = max(first) + 0.5 if first else None
    for name, (curve, _) in runs.items():
        epochs = [line["epoch"] for line in curve]
        ces = [line["CE"] for line in curve]
        (line_ce,) = ax_ce.plot(epochs, [min(c, top) for c in ces], marker="o", label=name)
        for e, c in zip(epochs, ces):
            if c > top:
                ax_ce.annotate(f"{c:.1f}", (e, top), fontsize=7, color=line_ce.get_color(),
                               xytext=(2, -10), textcoords="offset points")
        ax_acc.plot(epochs, [line["Acc@1"] for line in curve], marker="o", label=name)
    if top is not None:
        ax_ce.set_ylim(min(lows) - 0.1, top + 0.05)
    ax_ce.set(xlabel="epoch", ylabel="full-softmax cross-entropy (nats)", title="validation loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="validation top-1")
    for ax in (ax_ce, ax_acc):
        ax.grid(alpha=0.3)
    ax_ce.legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, args.out)
    print(markdown_table(runs))


if __name__ == "__main__":
    main()
