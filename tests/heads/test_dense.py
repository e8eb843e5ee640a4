"""One-vs-all and softmax heads through the shared head harness (the dense references are in tests/models)."""

import pytest
from head_harness import run_head_test


@pytest.mark.parametrize("head", [{"name": "one_vs_all"}, {"name": "softmax", "label_smoothing": 0.1}],
                         ids=lambda h: h["name"])
def test_head_contract(head, tmp_path):
    run_head_test(tmp_path, head)
