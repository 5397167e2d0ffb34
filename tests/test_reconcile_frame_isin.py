"""``frame.isin`` answers as pandas' ``Series.isin`` does, whichever storage a string column has."""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest

from transfer_wallet.reconcile.frame import isin

STORAGES = ["python"] + (["pyarrow"] if importlib.util.find_spec("pyarrow") else [])
VALUES = [["a", "d"], ("c",), [], {"a"}, frozenset({"d", "x"}), ["x"], ["a", None]]
VALUE_IDS = ["list", "tuple", "empty", "set", "frozenset", "absent", "with-na"]


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("values", VALUES, ids=VALUE_IDS)
def test_isin_matches_pandas_for_every_kind_of_value_set(storage: str, values: object) -> None:
    series = pd.Series(["a", None, "c", "d", "a"], dtype=pd.StringDtype(storage), index=[5, 6, 7, 8, 9])
    expected = series.isin(list(values) if isinstance(values, (set, frozenset)) else values)  # type: ignore[arg-type]
    found = isin(series, values)
    assert found.tolist() == expected.tolist()
    assert list(found.index) == [5, 6, 7, 8, 9]


@pytest.mark.parametrize("storage", STORAGES)
def test_isin_takes_a_string_series_as_the_value_set_and_matches_na_only_to_na(storage: str) -> None:
    series = pd.Series(["a", None, "b"], dtype=pd.StringDtype(storage))
    assert isin(series, pd.Series(["b", None], dtype=pd.StringDtype(storage))).tolist() == [False, True, True]
    assert isin(series, pd.Series(["b"], dtype="string")).tolist() == [False, False, True]


def test_isin_leaves_other_dtypes_to_pandas() -> None:
    assert isin(pd.Series([1, 2, 3]), [2, 5]).tolist() == [False, True, False]
