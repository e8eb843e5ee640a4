"""tools/xrt_ablation.py: every variant is a valid config of every shipped XR-Transformer config."""

import glob
import os
import sys

import pytest

from tfxc.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))
from xrt_ablation import main, variants  # noqa: E402

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "xrt_*.json"))
                 + glob.glob(os.path.join(REPO, "configs", "xrt", "*.json")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_variant_loads_and_changes_what_it_names(path):
    base = load_config(path).model.head
    for name, overrides in variants(base.bootstrap).items():
        head = load_config(path, overrides).model.head  # a ConfigError names the variant's clash
        if name == "without-tfidf":
            assert head.sparse_support == 0 and base.sparse_support > 0
        elif name == "not-fine-tuned":
            assert not head.do_fine_tune
        elif name.startswith("bootstrap-"):
            assert head.bootstrap == name.removeprefix("bootstrap-") != base.bootstrap


def test_variants_are_run_in_the_order_given_and_an_unknown_one_is_named(capsys):
    config = os.path.join(REPO, "configs", "xrt_reuters.json")
    assert main(["--config", config, "--out", "/nonexistent", "--dry-run", "--variants", "without-tfidf,full"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("--model-dir ")[1].split()[0].rsplit("/", 1)[1] for line in lines] == ["without-tfidf", "full"]
    with pytest.raises(SystemExit):
        main(["--config", config, "--out", "/nonexistent", "--dry-run", "--variants", "fulll"])
    assert "unknown variant(s) fulll" in capsys.readouterr().err
