"""The ops a SavedModel runs, and whether TensorFlow Serving's standard model server can run them.

  python -m tfxc.export.ops SAVED_MODEL [SAVED_MODEL ...]   # the ops of each; exit 1 on any problem

TF Serving's model server (`tensorflow_model_server` as released) links core TensorFlow's ops and
kernels and TensorFlow Text's ops (tensorflow/serving, model_servers/BUILD, SUPPORTED_TENSORFLOW_OPS),
so a SavedModel made of those serves without a custom build. It cannot run:

  * an op that neither registers (a custom op library): the SavedModel does not even load;
  * an op with no CPU kernel (a TPU's, some of XLA's own);
  * PyFunc, PyFuncStateless or EagerPyFunc (`tf.py_function`, `tf.numpy_function`): their kernels call
    back into the Python interpreter that traced them, and a server has none;
  * a function marked `_XlaMustCompile` (`tf.function(jit_compile=True)`): the server disables XLA
    compilation unless started with the experimental `--xla_cpu_compilation_enabled` (off by default;
    model_servers/main.cc), and such a function then fails on every call ("XLA compilation disabled").

The last two matter only where the server runs them: in a signature, or when it loads the model (the
saver's restore). Functions that only Python reaches (a `tf.function` attribute of the saved module, such
as tfxc's `xla_serve`) are listed apart and are no problem.

`read_ops` parses saved_model.pb alone (no variables, nothing loaded into Python objects): the ops of
the graph and of every function of its library, followed through calls (a node whose op is a function,
`f`, `then_branch`, `body`, ...) to any depth. `server_registry` reads which ops TensorFlow alone, then
TensorFlow Text, registers, in a fresh process: the calling one may have loaded other op libraries.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys

from tfxc.cli import main_wrapper
from tfxc.errors import DataError, TfxcError
from tfxc.export.served import GRAPH_FILE

PY_FUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
MUST_COMPILE = "_XlaMustCompile"
SERVE_TAG = "serve"  # the MetaGraph a model server loads


@dataclasses.dataclass(frozen=True)
class Reached:
    """What one part of a SavedModel runs: op type names, the library functions it calls (to any depth),
    and those of them that XLA must compile."""

    ops: frozenset[str]
    functions: frozenset[str]
    must_compile: frozenset[str]


@dataclasses.dataclass(frozen=True)
class SavedModelOps:
    """The ops of a SavedModel's serving MetaGraph.

    Attributes:
      path: the SavedModel directory.
      everything: every node of the graph and every library function (a server registers all of them to load it).
      parts: {signature name: Reached}, plus "(restore)" for the saver's restore the server runs at load.
      python_only: library functions no part reaches (attributes of the saved objects, for Python callers).
    """

    path: str
    everything: Reached
    parts: dict
    python_only: frozenset[str]


class _Walker:
    """Collects the ops and functions that graph nodes reach through a function library."""

    def __init__(self, library: dict):
        self.library = library

    def _called(self, node) -> set[str]:
        """The library functions one NodeDef calls: its op (a direct call) and its function-valued attrs."""
        names = {node.op} & self.library.keys()
        for value in node.attr.values():
            if value.HasField("func"):
                names.add(value.func.name)
            names.update(f.name for f in value.list.func)
        return names & self.library.keys()

    def reach(self, nodes, functions=()) -> Reached:
        """What `nodes` (NodeDefs) and the library functions named in `functions` run, to any depth."""
        ops, compiled, seen = set(), set(), set(functions)
        pending = list(seen)

        def visit(node_list):
            for node in node_list:
                called = self._called(node)
                if node.op not in self.library:
                    ops.add(node.op)
                if MUST_COMPILE in node.attr and node.attr[MUST_COMPILE].b:
                    compiled.update(called)
                pending.extend(called - seen)
                seen.update(called)

        visit(nodes)
        while pending:
            function = self.library[pending.pop()]
            if MUST_COMPILE in function.attr and function.attr[MUST_COMPILE].b:
                compiled.add(function.signature.name)
            visit(function.node_def)
        return Reached(frozenset(ops), frozenset(seen), frozenset(compiled))


def _upstream(graph_nodes: dict, names) -> list:
    """The graph's nodes that `names` (node names, or tensor names "node:0", "^node") depend on, them included."""
    found, pending = {}, [n.lstrip("^").split(":")[0] for n in names]
    while pending:
        name = pending.pop()
        if name in found or name not in graph_nodes:
            continue
        found[name] = graph_nodes[name]
        pending.extend(i.lstrip("^").split(":")[0] for i in found[name].input)
    return list(found.values())


def read_ops(path: str) -> SavedModelOps:
    """The ops of the SavedModel at `path` (its "serve" MetaGraph), from saved_model.pb alone.

    Raises:
      DataError: no saved_model.pb, not a SavedModel, or no MetaGraph tagged "serve".
    """
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    graph_file = os.path.join(path, GRAPH_FILE)
    try:
        with open(graph_file, "rb") as f:
            saved = saved_model_pb2.SavedModel.FromString(f.read())
    except (OSError, DecodeError) as e:
        raise DataError(f"cannot read the SavedModel's graph ({e})", path=graph_file) from None
    metas = [m for m in saved.meta_graphs if SERVE_TAG in m.meta_info_def.tags]
    if not metas:
        raise DataError(f"has no MetaGraph tagged '{SERVE_TAG}', the one a model server loads", path=graph_file)
    meta = metas[0]
    walker = _Walker({f.signature.name: f for f in meta.graph_def.library.function})
    nodes = {n.name: n for n in meta.graph_def.node}
    everything = walker.reach(meta.graph_def.node, walker.library.keys())
    parts = {name: walker.reach(_upstream(nodes, [t.name for t in signature.outputs.values()]))
             for name, signature in meta.signature_def.items()}
    if meta.saver_def.restore_op_name:
        parts["(restore)"] = walker.reach(_upstream(nodes, [meta.saver_def.restore_op_name]))
    reached = set().union(*(part.functions for part in parts.values()))
    return SavedModelOps(path, everything, parts, frozenset(everything.functions) - reached)


@dataclasses.dataclass(frozen=True)
class Registry:
    """The ops a model server registers: core TensorFlow's, TensorFlow Text's, and those with a CPU kernel."""

    core: frozenset[str]
    text: frozenset[str]
    cpu_kernels: frozenset[str]


_REGISTRY_SCRIPT = """
import json
import tensorflow as tf
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session as c_api
from tensorflow.python.framework import kernels

def registered():
    ops = op_def_pb2.OpList.FromString(c_api.TF_GetBuffer(c_api.TF_GetAllOpList()))
    return {op.name for op in ops.op}

core = registered()
import tensorflow_text  # noqa: F401
text = registered() - core
# DEFAULT kernels run on any device (NoOp, Assert, the function calls' own).
cpu = {k.op for k in kernels.get_all_registered_kernels().kernel if k.device_type in ("CPU", "DEFAULT")}
print(json.dumps({"core": sorted(core), "text": sorted(text), "cpu_kernels": sorted(cpu)}))
"""


@functools.lru_cache(maxsize=1)
def server_registry() -> Registry:
    """The ops of core TensorFlow and of TensorFlow Text, read once per process in a fresh one (~5 s).

    Raises:
      TfxcError: the fresh process failed (TensorFlow or tensorflow-text is not installed).
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _REGISTRY_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise TfxcError(f"cannot read TensorFlow's and TensorFlow Text's op registries ({detail})")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return Registry(frozenset(found["core"]), frozenset(found["text"]), frozenset(found["cpu_kernels"]))


def servability_problems(ops: SavedModelOps, registry: Registry | None = None) -> list[str]:
    """What stops TF Serving's standard model server from loading or serving this SavedModel: one sentence
    per problem (module docstring), [] when it serves as it is."""
    registry = registry or server_registry()
    problems = [f"op {op} is registered by neither TensorFlow nor TensorFlow Text (a custom op library): the "
                "model server cannot load the SavedModel"
                for op in sorted(ops.everything.ops - registry.core - registry.text)]
    for name, part in sorted(ops.parts.items()):
        where = "loading" if name == "(restore)" else f"signature '{name}'"
        problems += [f"{where} runs {op}, which has no CPU kernel (an op of XLA's or of an accelerator)"
                     for op in sorted((part.ops & (registry.core | registry.text)) - registry.cpu_kernels)]
        problems += [f"{where} runs {op}: Python called back from the graph, and a model server has no Python"
                     for op in sorted(part.ops & PY_FUNC_OPS)]
        problems += [f"{where} calls {function}, compiled by XLA (jit_compile=True), which the model server "
                     "disables unless started with --xla_cpu_compilation_enabled"
                     for function in sorted(part.must_compile)]
    return problems


def describe(ops: SavedModelOps, registry: Registry | None = None) -> str:
    """A report of the SavedModel's ops by origin, its parts, and its problems (the CLI's output)."""
    registry = registry or server_registry()
    core = sorted(ops.everything.ops & registry.core)
    text = sorted(ops.everything.ops & registry.text)
    lines = [f"{ops.path}:", f"  core TensorFlow ops ({len(core)}): {' '.join(core)}",
             f"  TensorFlow Text ops ({len(text)}): {' '.join(text) or '-'}"]
    lines += [f"  {name}: {len(part.ops)} op types, {len(part.functions)} functions"
              + (f", {len(part.must_compile)} compiled by XLA" if part.must_compile else "")
              for name, part in sorted(ops.parts.items())]
    if ops.python_only:
        lines.append(f"  functions only Python reaches ({len(ops.python_only)}; no server runs them)")
    problems = servability_problems(ops, registry)
    lines += [f"  NOT SERVABLE: {p}" for p in problems] or ["  servable by TensorFlow Serving's standard model server"]
    return "\n".join(lines)


@main_wrapper
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfxc.export.ops", description=__doc__.splitlines()[0])
    parser.add_argument("saved_models", nargs="+", metavar="SAVED_MODEL", help="a SavedModel directory")
    args = parser.parse_args(argv)
    found = [read_ops(path) for path in args.saved_models]
    for ops in found:
        print(describe(ops))
    return 1 if any(servability_problems(ops) for ops in found) else 0


if __name__ == "__main__":
    sys.exit(main())
