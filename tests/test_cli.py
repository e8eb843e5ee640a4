"""The CLIs' shared arguments: `--set` is declared once (`tfxc.cli.add_set_args`) and means the same in every verb."""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import shutil

import pytest
from helpers import REPO, tiny_config

from tfxc.cli import add_set_args


def test_set_is_repeatable_and_keeps_the_order_given():
    parser = argparse.ArgumentParser()
    add_set_args(parser, "evaluation settings", "--set eval.ks=[1,3]")
    assert parser.parse_args([]).overrides == []
    args = parser.parse_args(["--set", "eval.ks=[1,3]", "--set=trainer.epochs=2", "--set", "eval.ks=[5]"])
    assert args.overrides == ["eval.ks=[1,3]", "trainer.epochs=2", "eval.ks=[5]"]
    assert parser.parse_args([]).overrides == []  # the default list is not shared between runs
    text = " ".join(parser.format_help().split())
    assert "--set SECTION.KEY=VALUE override evaluation settings; repeatable (e.g. --set eval.ks=[1,3])" in text


# Each verb that takes --set, with the other arguments it needs to reach the config.
VERBS = {
    "tfxc.train": lambda d: ["--config", str(d / "config.json")],
    "tfxc.convert": lambda d: ["--config", str(d / "config.json")],
    "tfxc.evaluate": lambda d: ["--model-dir", str(d / "model")],
    "tfxc.export.__main__": lambda d: ["--model-dir", str(d / "model"), "--out", str(d / "out")],
    "tfxc.ensemble": lambda d: ["--model-dir", str(d / "model"), "--model-dir", str(d / "model")],
}


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """A config file, and a model directory holding it (nothing trained: `--set` fails before that matters)."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "model").mkdir()
    shutil.copy(tiny_config(tmp), tmp / "model" / "config.json")
    return tmp


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_reads_set_alike_and_names_a_malformed_assignment(verb, configs, capsys):
    main = importlib.import_module(verb).main
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--set SECTION.KEY=VALUE" in capsys.readouterr().out
    for assignment, message in [("data.dir", "expected section.key=value"), ("eval..ks=1", "empty key component")]:
        with pytest.raises(SystemExit) as e:
            main(VERBS[verb](configs) + ["--set", "trainer.epochs=2", "--set", assignment])
        assert (e.value.code, capsys.readouterr().err) == (2, f"tfxc: error: --set {assignment!r}: {message}\n")
    assert not os.path.exists(configs / "out")


def _declares_set(path: str) -> bool:
    """Whether the file calls `.add_argument("--set", ...)` itself."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "add_argument" and node.args
               and isinstance(node.args[0], ast.Constant) and node.args[0].value == "--set"
               for node in ast.walk(tree))


# Tools that keep their own --set: the benchmark's hidden flag of its per-run worker, and the tree benchmark,
# whose arguments are also parsed by the peers' interpreter, where tfxc may not be importable.
OWN_SET = {"tools/bench.py", "tools/bench_tree_build.py"}


def test_no_verb_or_tool_declares_set_by_hand():
    by_hand = []
    for top in ("tfxc", "tools"):
        for root, _, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                path = os.path.join(root, name)
                relative = os.path.relpath(path, REPO)
                if name.endswith(".py") and relative != "tfxc/cli.py" and relative not in OWN_SET \
                        and _declares_set(path):
                    by_hand.append(relative)
    assert by_hand == [], f"declare --set with tfxc.cli.add_set_args: {by_hand}"


def test_a_closed_pipe_ends_a_verb_quietly_and_successfully(capsys):
    """`python -m tfxc.evaluate ... | head -5`: head stops reading; that is not the verb's failure."""
    from tfxc.cli import main_wrapper

    @main_wrapper
    def verb(argv):
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(SystemExit) as exit_info:
        verb([])
    assert exit_info.value.code == 0 and "error" not in capsys.readouterr().err
