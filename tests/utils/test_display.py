"""tfxc.utils.display: JSON for people in UTF-8, and where it must stay ASCII."""

from __future__ import annotations

import ast
import os

from helpers import python_sources

from tfxc.utils.display import json_text

# (file, function) of each `json.dumps` / `json.dump` whose JSON only a program reads, and why its escapes stay.
# Every other JSON of tfxc and its tools is read by people (a printout, a card, a model directory's records,
# an error message) and goes through `json_text`, which keeps 天气 as itself instead of "\u5929\u6c14".
MACHINE_JSON = {
    ("tfxc/utils/display.py", "json_text"): "its own fallback for text holding a lone surrogate",
    ("tfxc/convert.py", "main"): "--set assignments parsed back into the config",
    ("tfxc/resolve.py", "read_given"): "a deep copy (dumped and loaded)",
    ("tfxc/config/loading.py", "apply_overrides"): "a deep copy (dumped and loaded)",
    ("tfxc/config/loading.py", "_is_json"): "a test that the value is JSON",
    ("tfxc/config/loading.py", "_line_of_repeat"): "a key searched for in the config's text",
    ("tfxc/tree/__init__.py", "cached_cluster_labels"): "a cache key",
    ("tfxc/data/sources.py", "source_fingerprint"): "hashed",
    ("tfxc/compat/stand_ins.py", "mtime_fingerprint"): "hashed",
    ("tfxc/data/info.py", "_stats_without_provenance"): "the card's canonical form, hashed",
    ("tfxc/data/usage.py", "add_dependent"): "a registry of dependents read by tfxc",
    ("tfxc/data/in_memory.py", "source_files"): "fit's arrays as JSONL, compared byte for byte before a rewrite",
    ("tfxc/heads/centroid_precision.py", "centroid_precision"): "a cache",
    ("tfxc/images/feature_store.py", "write_plan"): "the resume state (settings compared as values)",
    ("tfxc/images/feature_store.py", "commit"): "the resume point",
    ("tfxc/xr/pipeline.py", "run_level"): "a stage's done-marker",
    ("tfxc/xr/pipeline.py", "train_xr_transformer"): "a stage's done-marker",
    ("tfxc/export/saved_model.py", "export_saved_model"): "export.json: numbers and ASCII names for the loader",
    ("tools/bench_mach_scale.py", "main"): "a child process's argument",
    ("tools/bench_tree_build.py", "pecos_worker"): "a child's result line, parsed by its parent",
}


def _json_calls_without_ensure_ascii():
    """(file, enclosing function, line) of every json.dumps / json.dump call in tfxc and tools that does not
    set ensure_ascii."""
    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and child.func.attr in ("dumps", "dump")
                    and getattr(child.func.value, "id", "") == "json"
                    and not any(k.arg == "ensure_ascii" for k in child.keywords)):
                yield relative, inner, child.lineno
            yield from visit(child, inner)

    for relative, tree in python_sources():
        relative = relative.replace(os.sep, "/")
        yield from visit(tree, "<module>")


def test_every_json_a_person_reads_keeps_non_ascii_text_as_itself():
    """stats.json, extract.json, the verbs' JSON printouts, a model directory's records and the tools' outputs
    escaped non-ASCII text ("\\u4e2d"); only JSON that a program alone reads may (`MACHINE_JSON`)."""
    escaping = [f"{file}:{line} ({function})" for file, function, line in _json_calls_without_ensure_ascii()
                if (file, function) not in MACHINE_JSON]
    assert escaping == [], "JSON for people goes through tfxc.utils.display.json_text: " + ", ".join(escaping)


def test_json_text_is_utf8_unless_a_lone_surrogate_cannot_be():
    assert json_text({"label": "天气"}) == '{"label": "天气"}'
    assert json_text(["a\udcff"]) == '["a\\udcff"]'  # a file name that is not UTF-8, as Python reads it
