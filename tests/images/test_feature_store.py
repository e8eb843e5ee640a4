"""The image extraction's `--split` fractions (`tfxc.images.feature_store.parse_fractions`)."""

from __future__ import annotations

import pytest

from tfxc.errors import DataError
from tfxc.images.feature_store import parse_fractions


def test_split_fractions_are_read():
    assert parse_fractions("train=0.8, val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert parse_fractions("train=1") == {"train": 1.0}


@pytest.mark.parametrize("text", ["train=nan", "train=NaN,val=0.5,test=0.5", "train=0.5,test=inf", "train=1e400",
                                  "train=0.5,test=٠.5", "train=1_0"])
def test_a_fraction_that_is_not_a_finite_number_is_refused_naming_it(text):
    """'train=nan' was accepted (NaN compares false with everything: the sum check passed it)."""
    with pytest.raises(DataError, match=r"is not split=fraction \(a finite number") as e:
        parse_fractions(text)
    assert str(e.value).startswith("field '--split': "), e.value
