"""Every head's SavedModel runs only what TensorFlow Serving's standard model server runs (issue 41).

One small model per head of the registry (and per option that changes the serving graph: margins, the
sparse term, bfloat16 products) is exported once per session and its ops are read from saved_model.pb
(`tfxc.export.ops`): each must be registered by core TensorFlow or TensorFlow Text with a CPU kernel,
and no signature may call Python (PyFunc) or a function XLA must compile. The models are not trained:
the graph a SavedModel holds does not depend on the weights (the CLI-trained export of tests/export's
`trained` fixture is checked too). Text encoders are checked on tests/encoders/test_text_serving.py's
exports. A fresh process that disables XLA compilation as the model server does then calls every
signature of the label tree's export, the head whose top-k used to be compiled.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from head_models import HEADS
from helpers import cli_env

from tfxc._tf import tf
from tfxc.export import ops as ops_module
from tfxc.export.ops import Reached, Registry, SavedModelOps, read_ops, server_registry, servability_problems

def test_every_registered_head_is_checked():
    from tfxc.heads import HEADS as REGISTRY

    # tfxc's own heads: tests elsewhere in the same process register heads of their own (the guide's example).
    package = {name for name in REGISTRY.names() if REGISTRY.get(name).__module__.startswith("tfxc.")}
    assert package and package <= {head["name"] for head in HEADS.values()}


@pytest.mark.parametrize("name", [*HEADS, "trained"])
def test_every_heads_saved_model_uses_only_ops_a_model_server_runs(head_exports, name):
    ops = read_ops(head_exports[name])
    assert servability_problems(ops) == [], name
    assert {"serving_default", "top_k", "embed", "(restore)"} <= ops.parts.keys()
    registry = server_registry()
    # The signatures reach the head's products and the top-k, and all of them are core TensorFlow's.
    assert {"TopKV2", "StatefulPartitionedCall"} <= ops.parts["serving_default"].ops <= registry.core
    assert ops.everything.ops <= registry.core


def test_the_label_trees_compiled_top_k_is_for_python_only(head_exports):
    ops = read_ops(head_exports["label_tree"])
    assert not any(part.must_compile for part in ops.parts.values())
    compiled = read_ops(head_exports["label_tree"]).everything.must_compile
    assert compiled and compiled <= ops.python_only  # `xla_serve`, beside the signatures
    assert not read_ops(head_exports["softmax"]).everything.must_compile


def test_the_registries_are_core_tensorflow_then_tensorflow_text():
    registry = server_registry()
    assert {"MatMul", "TopKV2", "PyFunc", "StatefulPartitionedCall"} <= registry.core
    assert {"FastWordpieceTokenizeWithOffsets", "CaseFoldUTF8"} <= registry.text
    assert not registry.core & registry.text
    assert {"MatMul", "NoOp", "FastWordpieceTokenizeWithOffsets"} <= registry.cpu_kernels
    assert {"TPUExecute", "XlaSendToHost"} <= registry.core - registry.cpu_kernels  # accelerators' and XLA's own


class _Planted(tf.Module):
    """Signatures that a model server could not run: Python called back, and an XLA-compiled function."""

    def __init__(self):
        super().__init__()
        self.compiled = tf.function(lambda x: x * 2.0, jit_compile=True)
        self.python_only = tf.function(lambda x: x + 1.0, jit_compile=True,
                                       input_signature=[tf.TensorSpec([None], tf.float32)])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def with_python(self, x):
        return {"y": tf.py_function(lambda v: v + 1.0, [x], tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def with_xla(self, x):
        return {"y": self.compiled(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def plain(self, x):
        return {"y": tf.sort(x)}


def test_python_and_compiled_functions_in_a_signature_are_found(tmp_path):
    module = _Planted()
    module.python_only(tf.constant([1.0]))
    tf.saved_model.save(module, str(tmp_path), signatures={"python": module.with_python, "xla": module.with_xla,
                                                          "serving_default": module.plain})
    ops = read_ops(str(tmp_path))
    assert "EagerPyFunc" in ops.parts["python"].ops and not ops.parts["python"].must_compile
    assert len(ops.parts["xla"].must_compile) == 1 and not ops.parts["serving_default"].must_compile
    # `python_only`, compiled but called by no signature, is listed apart and is no problem.
    assert ops.everything.must_compile - ops.parts["xla"].must_compile <= ops.python_only
    assert ops.everything.must_compile - ops.parts["xla"].must_compile  # the traces of `python_only`
    problems = servability_problems(ops)
    assert len(problems) == 2, problems
    assert problems[0].startswith("signature 'python' runs EagerPyFunc"), problems
    assert problems[1].startswith("signature 'xla' calls ") and "XLA" in problems[1], problems


def test_an_op_no_server_registers_is_found(head_exports, tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    # The graph of a real export with one op renamed as a custom op library would name it.
    saved = saved_model_pb2.SavedModel.FromString(open(f"{head_exports['softmax']}/saved_model.pb", "rb").read())
    node = next(n for f in saved.meta_graphs[0].graph_def.library.function for n in f.node_def if n.op == "TopKV2")
    node.op = "MyTopK"
    (tmp_path / "saved_model.pb").write_bytes(saved.SerializeToString())
    problems = servability_problems(read_ops(str(tmp_path)))
    assert problems == ["op MyTopK is registered by neither TensorFlow nor TensorFlow Text (a custom op library): "
                        "the model server cannot load the SavedModel"]


def test_an_op_without_a_cpu_kernel_is_found_where_a_signature_runs_it():
    reached = Reached(frozenset({"MatMul", "TPUExecute"}), frozenset(), frozenset())
    ops = SavedModelOps("m", reached, {"serving_default": reached, "embed": Reached(frozenset({"MatMul"}),
                                                                                     frozenset(), frozenset())},
                        frozenset())
    registry = Registry(frozenset({"MatMul", "TPUExecute"}), frozenset(), frozenset({"MatMul"}))
    assert servability_problems(ops, registry) == [
        "signature 'serving_default' runs TPUExecute, which has no CPU kernel (an op of XLA's or of an accelerator)"]


def test_the_command_line_reports_each_saved_model_and_fails_on_a_problem(head_exports, tmp_path, capsys):
    module = _Planted()
    tf.saved_model.save(module, str(tmp_path / "bad"), signatures={"serving_default": module.with_python})
    assert ops_module.main([head_exports["label_tree"]]) == 0
    out = capsys.readouterr().out
    assert "servable by TensorFlow Serving's standard model server" in out and "NOT SERVABLE" not in out
    assert ops_module.main([head_exports["label_tree"], str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert out.count("NOT SERVABLE") == 1 and "EagerPyFunc" in out
    with pytest.raises(SystemExit) as exit_info:
        ops_module.main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2


# The model server's start (tensorflow_serving/model_servers/main.cc) calls tensorflow::DisableXlaCompilation()
# unless --xla_cpu_compilation_enabled is given; this process does the same before it loads the export.
WITHOUT_XLA = """
import ctypes, json, os, sys
import tensorflow as tf
lib = ctypes.CDLL(os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2"))
lib._ZN10tensorflow21DisableXlaCompilationEv()
m = tf.saved_model.load(sys.argv[1])
row = {"feat_idx": tf.constant([1, 2], tf.int64), "feat_val": tf.constant([0.5, 1.0]),
       "row_splits": tf.constant([0, 2], tf.int64)}
out = {}
for name, fn in [*m.signatures.items(), ("xla_serve", m.xla_serve)]:
    args = dict(row, **({"k": tf.constant(3)} if name == "top_k" else {}))
    try:
        out[name] = [list(v.shape) for v in fn(**args).values()]
    except tf.errors.OpError as e:
        out[name] = "error: " + e.message
print(json.dumps(out))
"""


def test_the_label_tree_serves_with_xla_compilation_disabled_as_in_the_model_server(head_exports):
    import ctypes
    import os

    library = os.path.join(os.path.dirname(tf.__file__), "libtensorflow_cc.so.2")
    if not hasattr(ctypes.CDLL(library), "_ZN10tensorflow21DisableXlaCompilationEv"):
        pytest.skip("this TensorFlow does not export tensorflow::DisableXlaCompilation")
    proc = subprocess.run([sys.executable, "-c", WITHOUT_XLA, head_exports["label_tree"]], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "XLA compilation disabled" in out.pop("xla_serve")  # the emulation is real
    assert all(isinstance(shapes, list) for shapes in out.values()), out
    assert {"serving_default", "top_k", "embed"} <= out.keys()
