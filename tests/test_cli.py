"""The CLIs' shared arguments: `--set` is declared once (`tfxc.cli.add_set_args`) and means the same in every verb."""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import shutil

import pytest
from helpers import REPO, python_sources, tiny_config

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


# === Number flags (issue 55, item 3) ===
def _typed_flags(refused: str, accepted: tuple[str, ...], accepted_class: str) -> tuple[dict, list]:
    """The `add_argument` calls of tfxc and tools by their `type=`: ({file relative to REPO: [flag, ...]} of those
    typed with one of `accepted` or an instance of `accepted_class`, ["file: flag" typed with builtin `refused`])."""
    found, typed_refused = {}, []
    for relative, tree in python_sources():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_argument"):
                continue
            kind = next((k.value for k in node.keywords if k.arg == "type"), None)
            flag = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "?"
            if isinstance(kind, ast.Name) and kind.id == refused:
                typed_refused.append(f"{relative}: {flag}")
            elif (isinstance(kind, ast.Name) and kind.id in accepted) or (
                    isinstance(kind, ast.Call) and getattr(kind.func, "id", "") == accepted_class):
                found.setdefault(relative, []).append(flag)
    return found, typed_refused


def _float_flags_in_source() -> dict[str, list[str]]:
    """{file relative to REPO: [flag, ...]} of the `add_argument` calls typed with `tfxc.cli.FiniteFloat`; fails on
    any typed `float` (which takes nan, inf and 1e400)."""
    found, typed_float = _typed_flags("float", ("finite_float",), "FiniteFloat")
    assert typed_float == [], f"type=float takes nan, inf and 1e400: use tfxc.cli.FiniteFloat: {typed_float}"
    return found


class _Captured(BaseException):  # not an Exception: no verb's error handling catches it
    def __init__(self, parser):
        self.parser = parser


def _parser_of(relative: str, monkeypatch) -> argparse.ArgumentParser:
    """The ArgumentParser that the main() of the file `relative` builds (captured as it starts parsing)."""
    import sys

    def capture(parser, *args, **kwargs):
        raise _Captured(parser)

    if relative.startswith("tools" + os.sep):
        monkeypatch.syspath_prepend(os.path.join(REPO, "tools"))
        module = importlib.import_module(os.path.splitext(os.path.basename(relative))[0])
    else:
        module = importlib.import_module(os.path.splitext(relative)[0].replace(os.sep, "."))
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr(sys, "argv", [relative])  # a main() without argv parses sys.argv
    try:
        module.main([]) if module.main.__code__.co_argcount else module.main()
    except _Captured as e:
        return e.parser
    finally:
        monkeypatch.undo()
    raise AssertionError(f"{relative}: main() did not parse its arguments")


class _Refused(Exception):
    pass


def _refuse(message):
    raise _Refused(message)


def test_no_flag_takes_nan_or_infinity(monkeypatch):
    """`tfxc.predict --threshold nan` kept no label of any row, rc 0: every number flag of every verb and tool is
    a `FiniteFloat`, which refuses nan, inf and 1e400 (and numbers outside its range) with the flag's name."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tfxc.cli import FiniteFloat

    flags = _float_flags_in_source()
    assert "--threshold" in flags.get(os.path.join("tfxc", "predict.py"), []), flags
    non_finite = st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity", "INF", "1e400",
                                  "-1e400", "1e999", "٣", "1_0", " 1"])
    for relative, names in flags.items():
        parser = _parser_of(relative, monkeypatch)
        parser.error = _refuse  # instead of printing the usage and exiting
        actions = {name: action for action in parser._actions for name in action.option_strings}
        for action in parser._actions:
            action.required = False  # only the number flag is given
        for flag in names:
            action = actions[flag]
            assert isinstance(action.type, FiniteFloat), (relative, flag, action.type)

            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
            @given(text=non_finite | st.floats(allow_nan=False, allow_infinity=False).map(repr))
            def check(text):
                value = float(text) if text.strip() == text and text.isascii() and "_" not in text else None
                within = value is not None and abs(value) != float("inf") and value == value and all(
                    [action.type.low is None or (value > action.type.low if action.type.low_open
                                                 else value >= action.type.low),
                     action.type.high is None or (value < action.type.high if action.type.high_open
                                                  else value <= action.type.high)])
                try:
                    args = parser.parse_args([f"{flag}={text}"])  # "-1e+16" alone would read as a flag
                except _Refused as e:
                    assert not within, (relative, flag, text, str(e))
                    assert str(e).startswith(f"argument {flag}: "), (relative, flag, str(e))
                else:
                    assert within and getattr(args, action.dest) == value, (relative, flag, text)

            check()


def test_a_number_flag_s_range_is_in_its_message():
    from tfxc.cli import FiniteFloat

    recall = FiniteFloat(0, 1, low_open=True)
    assert recall("1") == 1.0 and recall("0.5") == 0.5
    for text, message in [("0", "must be in (0, 1], got 0"), ("1.5", "must be in (0, 1], got 1.5"),
                          ("nan", "expected a finite number, got 'nan'"), ("1e400", "expected a finite number, got "
                                                                                   "'1e400'")]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            recall(text)
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("must be > 0, got 0")):
        FiniteFloat(0, low_open=True)("0")
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("must be <= 2, got 3")):
        FiniteFloat(high=2)("3")


def _int_flags_in_source() -> dict[str, list[str]]:
    """{file relative to REPO: [flag, ...]} of the `add_argument` calls typed with `tfxc.cli.AsciiInt` (or its
    instances `positive_int`, `non_negative_int`, `any_int`); fails on any typed `int` (which takes '1_000',
    ' 3', '+3' and other scripts' digits: '١٢' is 12)."""
    found, typed_int = _typed_flags("int", ("positive_int", "non_negative_int", "any_int"), "AsciiInt")
    assert typed_int == [], f"type=int takes '1_000' and '١٢': use tfxc.cli.AsciiInt: {typed_int}"
    return found


def test_every_integer_flag_takes_ascii_digits_only(monkeypatch):
    """`type=int` (and `positive_int`, which called int()) took '1_000', ' 3', '+3' and '١٢' (Arabic-Indic
    digits, read as 12): every integer flag of every verb and tool is a `tfxc.cli.AsciiInt`, which reads ASCII
    digits with an optional '-' only, in its range, and names the flag when it refuses."""
    from tfxc.cli import AsciiInt

    flags = _int_flags_in_source()
    assert "--batch-size" in flags.get(os.path.join("tfxc", "predict.py"), []), flags
    refused = ["1_000", "١٢", " 3", "3 ", "+3", "²", "3.0", "1e3", "0x10", "", "-", "9" * 5000]
    def flag_actions(parser, command=()):
        """{flag: (the sub-command's words, action)} of a parser and its sub-commands' parsers."""
        parser.error = _refuse  # instead of printing the usage and exiting
        out = {}
        for action in parser._actions:
            action.required = False  # only the number flag is given
            out.update({name: (command, action) for name in action.option_strings})
            for word, sub in (getattr(action, "choices", None) or {}).items() if isinstance(
                    action, argparse._SubParsersAction) else ():
                out.update({k: v for k, v in flag_actions(sub, (*command, word)).items() if k not in out})
        return out

    for relative, names in flags.items():
        parser = _parser_of(relative, monkeypatch)
        actions = flag_actions(parser)
        for flag in names:
            command, action = actions[flag]
            assert isinstance(action.type, AsciiInt), (relative, flag, action.type)
            named = re.escape(f"argument {flag}") + r"(/[-\w]+)*: "
            for text in refused:
                with pytest.raises(_Refused, match=named):
                    parser.parse_args([*command, f"{flag}={text}"])
            low = 0 if action.type.low is None else action.type.low
            args = parser.parse_args([*command, flag, str(low)] + (["1"] if action.nargs == "+" else []))
            got = getattr(args, action.dest)
            assert got == low or got == [low, 1], (relative, flag, got)
            if action.type.low is not None:
                with pytest.raises(_Refused, match=named + "must be"):
                    parser.parse_args([*command, f"{flag}={action.type.low - 1}"])


def test_an_integer_flag_s_range_is_in_its_message():
    from tfxc.cli import AsciiInt, positive_int

    assert positive_int("12") == 12 and AsciiInt()("-3") == -3 and AsciiInt(0, 1)("1") == 1
    for kind, text, message in [(positive_int, "0", "must be >= 1, got 0"),
                                (positive_int, "1_000", "expected an integer >= 1 in ASCII digits, got '1_000'"),
                                (positive_int, "١٢", "expected an integer >= 1 in ASCII digits, got '١٢'"),
                                (AsciiInt(0, 1), "2", "must be in [0, 1], got 2"),
                                (AsciiInt(), " 3", "expected an integer in ASCII digits, got ' 3'"),
                                (AsciiInt(), "9" * 5000, "expected an integer of at most 18 digits, got '999999")]:
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
            kind(text)


def test_predict_refuses_a_threshold_that_is_not_a_finite_number(tmp_path, capsys):
    """P5: --threshold nan (or 1e400) gave every row no label, rc 0."""
    from tfxc import predict

    rows = tmp_path / "rows.txt"
    rows.write_text("1 2:0.5\n")
    for text in ("nan", "1e400"):
        with pytest.raises(SystemExit) as e:
            predict.main(["--model", str(tmp_path / "none"), "--input", str(rows), "--output",
                          str(tmp_path / "out.jsonl"), "--threshold", text])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and err[-1] == (f"python -m tfxc.predict: error: argument --threshold: expected a "
                                                 f"finite number, got '{text}'"), err
    assert not (tmp_path / "out.jsonl").exists()
