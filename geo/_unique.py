"""Compute a column-wise function once per distinct value and take it back to the rows.

Registry and inventory columns repeat a few values (12 industries, 4 coordinate systems,
mostly blank attribute columns): string normalisation and parsing of 1M cells then costs
what a few hundred cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

__all__ = ["by_unique", "nfkc"]


def by_unique(values: pd.Series, fn: Callable[[pd.Series], Any]) -> Any:
    """``fn(values)``, computed on the distinct values when they repeat.

    Parameters
    ----------
    values
        A column without missing values.
    fn
        Maps a Series to a Series, a DataFrame or a tuple of them, row for row (its result
        for a value must not depend on the other rows).

    Returns
    -------
    Any
        What ``fn(values)`` returns, with ``values``' index; computed directly when more
        than half the values are distinct.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    if len(uniques) * 2 > len(values):
        return fn(values)
    result = fn(pd.Series(uniques, dtype=values.dtype))

    def back(part: Any) -> Any:
        return part.iloc[codes].set_axis(values.index, axis=0)

    return tuple(back(r) for r in result) if isinstance(result, tuple) else back(result)


def nfkc(values: pd.Series) -> pd.Series:
    """``values.str.normalize("NFKC")``, computed only on the values that are not plain
    ASCII (NFKC leaves every ASCII character as it is: coordinates, credit codes and
    numbers then skip the per-value normalisation).

    Parameters
    ----------
    values
        Text (pandas string or object dtype; missing values stay missing).

    Returns
    -------
    pandas.Series
        What ``values.str.normalize("NFKC")`` returns.
    """
    if not pd.api.types.is_string_dtype(values.dtype) or pd.api.types.is_object_dtype(
            values.dtype):
        return values.str.normalize("NFKC")
    other = ~values.str.isascii().fillna(True).astype(bool)
    if other.all():
        return values.str.normalize("NFKC")
    out = values.copy()
    if other.any():
        out[other] = values[other].str.normalize("NFKC")
    return out
