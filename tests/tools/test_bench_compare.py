"""tools/bench_compare.py: before/after rows with each side's ratio to its own fastest peer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO, cli_env


def result(dataset, system, train_s, p5=50.0, latency=1.0, rows=1000.0):
    return {"dataset": dataset, "system": system, "train_s": train_s, "P@5": p5, "PSP@5": p5 / 2,
            "latency_ms_median": latency, "predict_rows_per_s": rows, "status": "ok"}


def test_ratios_use_each_files_peers_and_a_file_without_peers_borrows_the_after_files(tmp_path):
    before = [result("a", "tfxc-recipe", 100.0), result("a", "napkinxc-plt", 4.0),
              result("b", "tfxc-recipe", 30.0)]  # b: the system alone, re-run from an older commit
    after = [result("a", "tfxc-recipe", 20.0, p5=51.0, latency=0.5, rows=2000.0), result("a", "napkinxc-plt", 2.0),
             result("a", "omikuji-bonsai", 5.0, latency=0.1, rows=9000.0),
             result("b", "tfxc-recipe", 10.0), result("b", "pecos-xrlinear", 5.0),
             result("c", "tfxc-recipe", 1.0), result("c", "omikuji-parabel", 1.0)]  # c: no before run, no row
    paths = []
    for name, results in (("before", before), ("after", after)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(results))
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_compare.py"), "--before", str(paths[0]),
                          "--after", str(paths[1])], env=cli_env(), capture_output=True, text=True, timeout=60,
                         check=True).stdout.splitlines()
    assert len(out) == 4
    assert out[2] == ("| a | 100.0 → 20.0 | 25.0× → 10.0× (napkinxc-plt 2.0 s) | 50.00 → 51.00 | 25.00 → 25.50 | "
                      "1.00 → 0.50 (0.10) | 1,000 → 2,000 (9,000) |")
    assert out[3].startswith("| b | 30.0 → 10.0 | 6.0× → 2.0× (pecos-xrlinear 5.0 s) |")
