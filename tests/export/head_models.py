"""One small random-init model per head of the registry (and per option that changes the serving graph: margins,
the sparse term, bfloat16 products), exported once per test session as a SavedModel and as its ONNX twin
(`head_models` in tests/export/conftest.py). The models are not trained: the graphs do not depend on the
weights."""

from __future__ import annotations

import json

from head_harness import head_config

# k of both exports: the ONNX parity compares the top 10.
K = 10
# The serving graph of every registered head, plus the options that change it. A head added to the
# registry fails tests/export/test_servable_ops.py's `test_every_registered_head_is_checked` until it has an
# entry here.
MULTICLASS = {"mhp", "mhs", "linear", "softmax_arcface"}
HEADS = {
    "one_vs_all": {"name": "one_vs_all"},
    "softmax": {"name": "softmax"},
    "softmax_sparse_term": {"name": "softmax", "multi_label_loss": "decoupled", "sparse_support": 8,
                            "sparse_max_nnz": 16},
    "softmax_arcface": {"name": "softmax", "margin": "arcface", "margin_scale": 16.0, "margin_m": 0.3},
    "softmax_bfloat16": {"name": "softmax"},
    "linear": {"name": "linear", "use_bias": True, "init_stddev": 0.1},
    "mach": {"name": "mach", "num_buckets": 8, "num_repetitions": 2},
    "label_tree": {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2, "sparse_support": 6,
                   "prediction": {"beam_size": 4}},
    "mhp": {"name": "mhp", "num_classes": [5, 9], "label_order": "frequency"},
    "mhc": {"name": "mhc", "num_group": 8, "candidates_topk": 8, "hidden_dim": 16, "label_order": "tree"},
    "mhs": {"name": "mhs", "num_classes": [7, 6], "extra_blocks": 1, "init_stddev": 0.1},
    # An XR-Transformer level (its tree clustered from the data in `_export`) and the ranker.
    "xr_level": {"name": "xr_level", "level": 1, "negatives": "tfn"},
    "xr_transformer": {"name": "xr_transformer", "max_leaf_size": 4, "nr_splits": 2, "sparse_support": 6,
                       "prediction": {"beam_size": 4}},
}


def export_head_model(directory, head: dict, multiclass: bool, precision: str) -> tuple[str, str]:
    """A small random-init model with `head`, exported to directory/sm (k = K) and its ONNX twin to
    directory/onnx; returns the two paths."""
    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.export.onnx import export_onnx
    from tfxc.export.saved_model import export_saved_model
    from tfxc.model import build_model

    directory.mkdir(parents=True)
    path = head_config(directory, head, multiclass=multiclass)
    config = json.loads(open(path, encoding="utf-8").read())
    config["model"]["precision"] = precision
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    config = load_config(path)
    info = ensure_converted(config.data)
    if head["name"] == "xr_level":
        from tfxc.tree import cached_cluster_labels

        tree_file = str(directory / "tree.npz")
        cached_cluster_labels(info, max_leaf_size=4, nr_splits=2).save(tree_file)
        config = load_config(path, overrides=[f"model.head.tree_file={tree_file}"])
    model = build_model(config.model, BuildContext.from_info(info, seed=3))
    model.top_k(next(iter(eval_dataset(info.files("test"), 4))), 5)
    return (export_saved_model(model, config, info, str(directory / "sm"), top_k=K),
            export_onnx(model, config, info, str(directory / "onnx"), top_k=K))
