"""A head added from outside tfxc (one module, `example_cosine_head`) passes the whole head contract."""

import os

from head_harness import run_head_test


def test_cosine_head_trains_evaluates_and_exports_end_to_end(tmp_path):
    run_head_test(tmp_path, {"name": "cosine", "scale": 10.0}, imports=["example_cosine_head"],
                  import_path=os.path.dirname(__file__))
