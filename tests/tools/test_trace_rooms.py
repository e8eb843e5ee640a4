"""tools/trace_rooms.py: the tfxc modules a command's calls enter, in order, and its moves between them."""

from __future__ import annotations

import json

from helpers import tiny_config, tool_module


def test_a_printed_config_walks_from_the_command_line_through_the_config_rooms(tmp_path, capsys):
    trace_rooms = tool_module("trace_rooms")
    config = tiny_config(tmp_path)
    result = trace_rooms.trace("tfxc.train", ["--config", config, "--print-config"])
    # main_wrapper (tfxc.cli) installs its signal handlers and calls tfxc.train's main, which reads the config.
    assert result["status"] == 0 and result["order"][:3] == ["tfxc.cli", "tfxc.utils.signals", "tfxc.train"], (
        result["order"])
    assert {"tfxc.resolve", "tfxc.config.loading"} <= set(result["order"])
    assert "tfxc.training.trainer" not in result["order"]
    assert result["rooms"] == len(result["order"]) == len(set(result["order"])) and result["moves"] >= result["climbs"]
    # The command's own printout (the config) went to stderr, apart from the trace's.
    assert '"model"' in capsys.readouterr().err
    # --until stops counting at the first call into that module.
    cut = trace_rooms.trace("tfxc.train", ["--config", config, "--print-config"], until="tfxc.config.loading")
    assert "tfxc.config.loading" not in cut["order"] and cut["rooms"] < result["rooms"]
    assert trace_rooms.main(["--json", "--", "tfxc.train", "--config", config, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["order"][:3] == result["order"][:3]
