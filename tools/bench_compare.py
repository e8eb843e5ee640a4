"""Before/after table of one tfxc system against the peers, from two `tools/bench.py` results files.

  git show REV:benchmarks/results.json > /tmp/before.json
  python tools/bench_compare.py --before /tmp/before.json --after benchmarks/results.json --system tfxc-recipe

For every data set both files have a run of `--system` for, one Markdown row: training seconds before and
after, each as a ratio to the fastest peer of the same file (the peers ran in the same bench run as the
system, so each ratio compares like with like; a before file of the system alone, re-run from an older
commit on the same day, borrows the after file's peers), P@5 and PSP@5 before and after, single-row latency and
batch rows/s before and after against the best peer of the after file.
"""

from __future__ import annotations

import argparse
import json

PEERS = ("pecos-xrlinear", "napkinxc-plt", "omikuji-parabel", "omikuji-bonsai")


def by_set(path: str) -> dict[str, dict[str, dict]]:
    """{data set: {system: result}} of the runs that finished."""
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    table: dict[str, dict[str, dict]] = {}
    for result in results:
        if result.get("status", "ok") == "ok":
            table.setdefault(result["dataset"], {})[result["system"]] = result
    return table


def best_peer(runs: dict[str, dict], key: str, lowest: bool) -> tuple[str, float] | None:
    """(peer, value) of the best peer on `key` among `runs`, None without peers."""
    values = [(name, runs[name][key]) for name in PEERS if name in runs and runs[name].get(key)]
    if not values:
        return None
    return (min if lowest else max)(values, key=lambda item: item[1])


def rows(before: dict, after: dict, system: str) -> list[str]:
    lines = ["| set | train s before → after | × fastest peer before → after | P@5 before → after | "
             "PSP@5 before → after | 1-row ms before → after (best peer) | rows/s before → after (best peer) |",
             "|---|---|---|---|---|---|---|"]
    for name, runs in after.items():
        old_runs = before.get(name, {})
        if system not in runs or system not in old_runs:
            continue
        new, old = runs[system], old_runs[system]
        fastest_new = best_peer(runs, "train_s", True)
        fastest_old = best_peer(old_runs, "train_s", True) or fastest_new

        def ratio(result, fastest):
            return f"{result['train_s'] / max(fastest[1], 1e-3):.1f}×" if fastest else "–"

        latency, throughput = best_peer(runs, "latency_ms_median", True), best_peer(runs, "predict_rows_per_s", False)
        lines.append(
            f"| {name} | {old['train_s']:.1f} → {new['train_s']:.1f} | {ratio(old, fastest_old)} → "
            f"{ratio(new, fastest_new)} ({fastest_new[0] if fastest_new else '–'} {fastest_new[1] if fastest_new else 0:.1f} s) | "
            f"{old['P@5']:.2f} → {new['P@5']:.2f} | {old['PSP@5']:.2f} → {new['PSP@5']:.2f} | "
            f"{old['latency_ms_median']:.2f} → {new['latency_ms_median']:.2f} ({latency[1]:.2f}) | "
            f"{old['predict_rows_per_s']:,.0f} → {new['predict_rows_per_s']:,.0f} ({throughput[1]:,.0f}) |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--system", default="tfxc-recipe")
    args = parser.parse_args()
    print("\n".join(rows(by_set(args.before), by_set(args.after), args.system)))


if __name__ == "__main__":
    main()
