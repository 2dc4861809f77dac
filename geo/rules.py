"""Rules engine: verdicts, standards and reasons from the rule catalog.

The catalog (``layers/data/rules.toml``, loaded by :func:`layers.catalog.rules`) states each
rule's conditions as data. This module evaluates them column-wise: one boolean mask per rule
(a loop over rules, never over rows), packed into an integer bitmask per row; the output
strings are then built once per *unique* bitmask and mapped back, so a million rows cost
little more than the masks themselves.

Semantics of a predicate ``{field, op, value}``: a field absent from the frame, or a missing
value (NaN/None) in a row, makes the predicate false for that row -- unknown data never
triggers a rule. ``is_empty`` means a known empty string.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from geo.schema import LIST_SEP, REASON_SEP, RULES_COLUMNS, TEXT_DTYPE
from layers.catalog import (
    AllOf,
    AnyOf,
    Condition,
    Predicate,
    Rule,
    RuleCatalog,
    industries,
)
from layers.catalog import rules as default_rules

__all__ = ["apply_rules", "rule_masks", "rules_for_point"]

logger = logging.getLogger(__name__)

FrameT = TypeVar("FrameT", bound=pd.DataFrame)


_STR = TEXT_DTYPE


class _Columns:
    """Per-field cache of the encodings predicates are evaluated on.

    Numeric columns become float arrays (NaN = missing); all others are factorised once
    into ``codes`` (-1 = missing) and ``uniques`` so that string tests run on the few
    distinct values only.
    """

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.n = len(df)
        self._numeric: dict[str, np.ndarray] = {}
        self._factor: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def numeric(self, field: str) -> np.ndarray | None:
        s = self.df[field]
        if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
            return None
        if field not in self._numeric:
            self._numeric[field] = s.to_numpy(dtype="float64", na_value=np.nan)
        return self._numeric[field]

    def factor(self, field: str) -> tuple[np.ndarray, np.ndarray]:
        if field not in self._factor:
            codes, uniques = pd.factorize(self.df[field], use_na_sentinel=True)
            self._factor[field] = (np.asarray(codes), np.asarray(uniques, dtype=object))
        return self._factor[field]


def _is_missing(u: Any) -> bool:
    return u is None or (isinstance(u, float) and math.isnan(u)) or u is pd.NA or u is pd.NaT


def _as_number(u: Any) -> float | None:
    if isinstance(u, bool):
        return None
    try:
        f = float(u)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _as_date(u: Any) -> date | None:
    if isinstance(u, pd.Timestamp):
        return u.date()
    if isinstance(u, date):
        return u
    try:
        return date.fromisoformat(str(u).strip()[:10])
    except ValueError:
        return None


def _test_value(u: Any, op: str, value: Any) -> bool:
    """Evaluate a predicate on one distinct (non-missing) value."""
    if op == "is_empty":
        return isinstance(u, str) and u.strip() == ""
    if op == "not_empty":
        return not (isinstance(u, str) and u.strip() == "")
    if op in ("eq", "ne", "in", "not_in"):
        values = value if isinstance(value, list) else [value]
        hit = any(_equal(u, v) for v in values)
        return hit if op in ("eq", "in") else not hit
    # order ops
    left: Any
    right: Any
    if isinstance(value, date):
        left, right = _as_date(u), value
    else:
        left, right = _as_number(u), float(value)
    if left is None:
        return False
    if op == "lt":
        return bool(left < right)
    if op == "le":
        return bool(left <= right)
    if op == "gt":
        return bool(left > right)
    return bool(left >= right)


def _equal(u: Any, v: Any) -> bool:
    if isinstance(v, bool) or isinstance(u, (bool, np.bool_)):
        return isinstance(u, (bool, np.bool_)) and bool(u) == v
    if isinstance(v, (int, float)):
        f = _as_number(u)
        return f is not None and f == float(v)
    if isinstance(v, date):
        return _as_date(u) == v
    return isinstance(u, str) and u.strip() == v


def _predicate_mask(cols: _Columns, p: Predicate) -> np.ndarray:
    if p.field not in cols.df.columns:
        return np.zeros(cols.n, dtype=bool)
    arr = cols.numeric(p.field)
    if arr is not None and not isinstance(p.value, date):
        valid = ~np.isnan(arr)
        op, v = p.op, p.value
        if op == "is_empty":
            return np.zeros(cols.n, dtype=bool)
        if op == "not_empty":
            return valid
        if op in ("in", "not_in", "eq", "ne"):
            vals = v if isinstance(v, list) else [v]
            nums = [
                float(x) for x in vals if isinstance(x, (int, float)) and not isinstance(x, bool)
            ]
            hit = np.isin(arr, nums) if nums else np.zeros(cols.n, dtype=bool)
            return (hit if op in ("in", "eq") else ~hit) & valid
        f = float(v)  # type: ignore[arg-type]
        with np.errstate(invalid="ignore"):
            res = {"lt": arr < f, "le": arr <= f, "gt": arr > f, "ge": arr >= f}[op]
        return res & valid
    codes, uniques = cols.factor(p.field)
    on_uniques = np.fromiter(
        (not _is_missing(u) and _test_value(u, p.op, p.value) for u in uniques),
        dtype=bool,
        count=len(uniques),
    )
    # code -1 (missing) picks the trailing False
    return np.append(on_uniques, False)[codes]


def _condition_mask(cols: _Columns, cond: Condition) -> np.ndarray:
    if isinstance(cond, Predicate):
        return _predicate_mask(cols, cond)
    if isinstance(cond, AnyOf):
        out = np.zeros(cols.n, dtype=bool)
        for c in cond.any:
            out |= _condition_mask(cols, c)
        return out
    assert isinstance(cond, AllOf)
    return _conjunction(cols, cond.all)


def _conjunction(cols: _Columns, conds: Sequence[Condition]) -> np.ndarray:
    out = np.ones(cols.n, dtype=bool)
    for c in conds:
        if not out.any():
            break
        out &= _condition_mask(cols, c)
    return out


def _rule_mask(cols: _Columns, rule: Rule, all_industries: list[str]) -> np.ndarray:
    allowed = all_industries if "*" in rule.industries else list(rule.industries)
    conds: list[Condition] = [Predicate(field="industry_id", op="in", value=allowed)]
    return _conjunction(cols, [*conds, *rule.when])


def _active_rules(catalog: RuleCatalog, as_of: date | None) -> list[Rule]:
    day = as_of or date.today()
    return [r for r in catalog.rules if r.effective <= day]


def rule_masks(
    df: pd.DataFrame, *, catalog: RuleCatalog | None = None, as_of: date | None = None
) -> dict[str, np.ndarray]:
    """Boolean mask per active rule id (rules effective on ``as_of``, default today).

    Parameters
    ----------
    df
        Frame with ``industry_id`` and whatever fields the rules test.
    catalog
        Rule catalog; defaults to the bundled one.
    as_of
        Evaluation date; rules whose ``effective`` is later do not apply.
    """
    catalog = catalog or default_rules()
    cols = _Columns(df)
    all_ids = [i.id for i in industries()]
    return {r.id: _rule_mask(cols, r, all_ids) for r in _active_rules(catalog, as_of)}


def _pack(masks: list[np.ndarray], n: int) -> tuple[np.ndarray, list[list[int]]]:
    """Pack masks into per-row bitmasks; return row -> unique-combination code, and the
    matched rule indices of every unique combination."""
    n_words = max(1, math.ceil(len(masks) / 64))
    words = np.zeros((n_words, n), dtype=np.uint64)
    for i, m in enumerate(masks):
        words[i // 64] |= m.astype(np.uint64) << np.uint64(i % 64)
    if n_words == 1:
        codes, uniq = pd.factorize(words[0])
        uniq_words = np.asarray(uniq, dtype=np.uint64)[None, :]
    else:
        uniq_t, inverse = np.unique(words.T, axis=0, return_inverse=True)
        codes, uniq_words = inverse.reshape(-1), uniq_t.T
    combos = [
        [i for i in range(len(masks)) if (int(uniq_words[i // 64, k]) >> (i % 64)) & 1]
        for k in range(uniq_words.shape[1])
    ]
    return np.asarray(codes), combos


def apply_rules(
    gdf: FrameT, *, catalog: RuleCatalog | None = None, as_of: date | None = None
) -> FrameT:
    """Add ``verdict``, ``standards``, ``rule_ids`` and ``reasons`` to a classified frame.

    Parameters
    ----------
    gdf
        Output of :func:`geo.classify.classify` (any DataFrame with ``industry_id`` and the
        fields the rules test; missing fields simply do not trigger rules).
    catalog
        Rule catalog; defaults to :func:`layers.catalog.rules`.
    as_of
        Evaluation date (default today); rules not yet effective on it do not apply.

    Returns
    -------
    A copy of ``gdf`` with :data:`geo.schema.RULES_COLUMNS`. ``verdict`` is the strongest
    matched verdict (``no_action`` when none); ``standards`` and ``rule_ids`` are
    ``;``-separated; ``reasons`` are Chinese sentences with plan citations, ``；``-separated.
    """
    catalog = catalog or default_rules()
    active = _active_rules(catalog, as_of)
    cols = _Columns(gdf)
    all_ids = [i.id for i in industries()]
    masks = [_rule_mask(cols, r, all_ids) for r in active]
    codes, combos = _pack(masks, len(gdf))

    rank = {v.id: v.rank for v in catalog.verdicts}
    verdicts, stds, ids, reasons = [], [], [], []
    for combo in combos:
        matched = sorted((active[i] for i in combo), key=lambda r: rank[r.verdict])
        verdicts.append(matched[0].verdict if matched else catalog.default_verdict)
        stds.append(LIST_SEP.join(dict.fromkeys(s for r in matched for s in r.standards)))
        ids.append(LIST_SEP.join(r.id for r in matched))
        reasons.append(REASON_SEP.join(r.reason_zh for r in matched))

    out = gdf.copy(deep=False)  # only whole columns are set below: gdf is never modified
    for name, values in zip(RULES_COLUMNS, (verdicts, stds, ids, reasons), strict=True):
        # take() on a tiny str array is ~10x faster than building 1M Python strings
        out[name] = pd.array(values, dtype=_STR).take(codes)
    logger.debug("%d rules, %d rows, %d combinations", len(active), len(gdf), len(combos))
    return out


def rules_for_point(
    attrs: Mapping[str, Any], *, catalog: RuleCatalog | None = None, as_of: date | None = None
) -> list[dict[str, Any]]:
    """What the rules say at one location, for each of the 12 industries.

    Parameters
    ----------
    attrs
        Location attributes, typically one row of :func:`geo.classify.classify` output
        (``city``, ``basin_id``, ``region_id``, ``park_id``, ...) plus optional numeric
        fields. ``industry_id`` is ignored.
    catalog, as_of
        As in :func:`apply_rules`.

    Returns
    -------
    One dict per industry, in the plan's order: ``industry_id``, ``industry`` (Chinese),
    ``verdict``, ``verdict_label`` (Chinese), ``standards``, ``rule_ids``, ``reasons`` (lists).
    """
    when = as_of or date.today()
    fields = _catalog_fields(catalog or default_rules())
    key = tuple(sorted((k, _hashable(v)) for k, v in attrs.items() if k in fields))
    answer = (
        _default_rules_for_key(key, when) if catalog is None else _rules_for_key(key, catalog, when)
    )
    return [{k: list(v) if isinstance(v, list) else v for k, v in item} for item in answer]


def _hashable(value: Any) -> Any:
    """A cache-key form of an attribute value (NaN and None both mean missing)."""
    return None if _is_missing(value) else value


def _condition_fields(cond: Condition) -> set[str]:
    if isinstance(cond, AnyOf):
        return set().union(*(_condition_fields(c) for c in cond.any))
    if isinstance(cond, AllOf):
        return set().union(*(_condition_fields(c) for c in cond.all))
    return {cond.field}


def _catalog_fields(catalog: RuleCatalog) -> frozenset[str]:
    """Every column some rule of ``catalog`` reads, besides ``industry_id``."""
    fields: set[str] = set()
    for rule in catalog.rules:
        for cond in rule.when:
            fields |= _condition_fields(cond)
    return frozenset(fields - {"industry_id"})


@functools.lru_cache(maxsize=4096)
def _default_rules_for_key(
    key: tuple[tuple[str, Any], ...], as_of: date
) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """:func:`_rules_for_key` with the bundled catalog, memoised (point look-ups repeat)."""
    return _rules_for_key(key, default_rules(), as_of)


def _rules_for_key(
    key: tuple[tuple[str, Any], ...], catalog: RuleCatalog, as_of: date
) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """:func:`rules_for_point` for the attributes the rules read."""
    inds = industries()
    base = dict(key)
    frame = pd.DataFrame([{**base, "industry_id": i.id} for i in inds])
    res = apply_rules(frame, catalog=catalog, as_of=as_of)
    labels = {v.id: v.label_zh for v in catalog.verdicts}

    def split(s: str, sep: str) -> list[str]:
        return [x for x in s.split(sep) if x]

    return tuple(
        (
            ("industry_id", ind.id),
            ("industry", ind.name_zh),
            ("verdict", row.verdict),
            ("verdict_label", labels[row.verdict]),
            ("standards", split(row.standards, LIST_SEP)),
            ("rule_ids", split(row.rule_ids, LIST_SEP)),
            ("reasons", split(row.reasons, REASON_SEP)),
        )
        for ind, row in zip(inds, res.itertuples(index=False), strict=True)
    )
