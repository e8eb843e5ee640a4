"""python -m tfxc.train: what the command line takes before anything trains."""

from __future__ import annotations

import os

import pytest
from helpers import REPO

SHAPE = "rows=490449,features=135909,labels=670091,labels_per_row=5.45,features_per_row=75.7"


@pytest.mark.parametrize("shape, message", [
    # float() and int() read these as numbers: '1_000' as 1000, '١٢' (Arabic-Indic digits) as 12, 'nan' and 'inf'.
    (SHAPE.replace("rows=490449", "rows=1_000"), "rows='1_000' is not a number in ASCII digits (a whole number"),
    (SHAPE.replace("rows=490449", "rows=١٢"), "rows='١٢' is not a number in ASCII digits (a whole number"),
    (SHAPE.replace("rows=490449", "rows=" + "9" * 5000), "rows='99999999"),
    (SHAPE.replace("=5.45", "=nan"), "labels_per_row='nan' is not a finite number in ASCII decimal notation"),
    (SHAPE.replace("=5.45", "=Infinity"), "labels_per_row='Infinity' is not a finite number"),
    (SHAPE.replace("=75.7", "=1e400"), "features_per_row='1e400' is not a finite number"),
    (SHAPE.replace("=75.7", "=7_5"), "features_per_row='7_5' is not a finite number"),
    (SHAPE.replace("rows=490449", "rows=0"), "rows=0 must be positive"),
    (SHAPE.replace("=5.45", "=-1"), "labels_per_row=-1 must be positive"),
    (SHAPE.replace("rows=", "row="), "'row=490449' is not KEY=VALUE with KEY one of rows, features, labels"),
    (SHAPE + ",rows=3", "rows is given twice"),
])
def test_a_declared_shape_s_numbers_are_ascii_finite_and_positive_in_one_line(shape, message, capsys):
    """`--plan --shape` read its numbers with float() and int(): '1_000', '١٢', 'nan' and 'inf' passed (a NaN
    row count planned NaN bytes). Each is refused in one line naming the key, before anything is planned."""
    from tfxc import train

    with pytest.raises(SystemExit) as e:
        train.main(["--config", os.path.join(REPO, "configs", "mach_amazon670k.json"), "--plan", "--shape", shape])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("tfxc: error: --shape: "), err
    assert message in err[0], err
