"""The rule catalog translated to SQL expressions (SQLAlchemy Core, bound parameters only).

Mirrors the semantics of :mod:`geo.rules` so that in-database classification gives the same
answers as the in-process engine:

* a predicate on a field the table lacks is false; a NULL (or float NaN) value is false;
* text is compared after trimming whitespace; ``is_empty`` means a known empty string;
* a numeric value tested against a text column compares the text parsed as a number (plain
  decimal / exponent notation; other spellings Python's ``float()`` accepts are not parsed);
* a date value compares the ISO ``YYYY-MM-DD`` prefix of text columns.

Each rule becomes one boolean expression; :func:`match_array` packs them into a
``boolean[]`` per row (element ``i`` = rule ``i`` of :func:`active_rules` matched), which
:func:`combo_sql` turns into verdict, standards, rule ids and reasons once per distinct
combination, exactly as :func:`geo.rules.apply_rules` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Boolean, Float, Integer, Numeric, and_, case, false, func, literal, or_
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.sql.elements import ColumnElement

from layers.catalog import AllOf, AnyOf, Condition, Predicate, Rule, RuleCatalog

__all__ = ["active_rules", "condition_sql", "rule_sql", "match_array", "rule_rows", "COMBO_SQL"]

logger = logging.getLogger(__name__)

#: A number written in decimal or exponent notation, optionally surrounded by blanks.
_NUMBER_RE = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
#: An ISO date prefix.
_DATE_RE = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}"


def active_rules(catalog: RuleCatalog, as_of: date | None) -> list[Rule]:
    """Rules effective on ``as_of`` (default today), in catalog order (as geo.rules)."""
    day = as_of or date.today()
    return [r for r in catalog.rules if r.effective <= day]


def _kind(col: ColumnElement[Any]) -> str:
    t = col.type
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, (Float, Numeric)):
        return "float"
    if isinstance(t, Integer):
        return "int"
    return "text"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _text_number(col: ColumnElement[Any]) -> ColumnElement[Any]:
    """The text column parsed as float8 where it looks like a number, else NULL."""
    return case(
        (col.op("~")(literal(_NUMBER_RE)), sa_cast(func.btrim(col), Float(precision=53))),
        else_=None,
    )


def _text_date(col: ColumnElement[Any]) -> ColumnElement[Any]:
    """The ISO date prefix of a text column (text, comparable as a date), else NULL."""
    return case(
        (col.op("~")(literal(_DATE_RE)), func.left(func.btrim(col), 10)),
        else_=None,
    )


def _order(left: ColumnElement[Any], op: str, right: Any) -> ColumnElement[bool]:
    return {
        "lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right,
    }[op]


def _text_equal(col: ColumnElement[Any], v: Any) -> ColumnElement[bool]:
    if isinstance(v, bool):
        return false()
    if _is_num(v):
        return _text_number(col) == float(v)
    if isinstance(v, date):
        return _text_date(col) == v.isoformat()
    return func.btrim(col) == str(v)


def _predicate(col: ColumnElement[Any], p: Predicate) -> ColumnElement[bool]:
    """One predicate on an existing column (NULL-valued where the value is missing)."""
    kind, op, v = _kind(col), p.op, p.value
    values = v if isinstance(v, list) else [v]
    known = col.isnot(None)
    if kind in ("float", "int") and not isinstance(v, date):
        valid = and_(known, col != literal(float("nan"), Float(precision=53))) \
            if kind == "float" else known
        if op == "is_empty":
            return false()
        if op == "not_empty":
            return valid
        if op in ("in", "not_in", "eq", "ne"):
            nums = [float(x) for x in values if _is_num(x)]
            hit = sa_cast(col, Float(precision=53)).in_(nums) if nums else false()
            return and_(hit if op in ("in", "eq") else ~hit, valid)
        return and_(_order(sa_cast(col, Float(precision=53)), op, float(v)), valid)
    if kind == "bool":
        if op == "is_empty":
            return false()
        if op == "not_empty":
            return known
        if op in ("in", "not_in", "eq", "ne"):
            accepted = sorted({bool(x) for x in values if not isinstance(x, str)
                               and not isinstance(x, date) and x in (0, 1)})
            hit = col.in_(accepted) if accepted else false()
            return and_(hit if op in ("in", "eq") else ~hit, known)
        return false()  # booleans are not numbers for order ops (as geo.rules)
    if kind in ("float", "int"):  # date value against a number: never equal, never ordered
        if op in ("ne", "not_in", "not_empty"):
            return known
        return false()
    # text
    if op == "is_empty":
        return func.btrim(col) == ""
    if op == "not_empty":
        return func.btrim(col) != ""
    if op in ("in", "not_in", "eq", "ne"):
        hit = or_(false(), *[func.coalesce(_text_equal(col, x), false()) for x in values])
        return and_(hit if op in ("in", "eq") else ~hit, known)
    if isinstance(v, date):
        return _order(_text_date(col), op, v.isoformat())
    return _order(_text_number(col), op, float(v))


def condition_sql(
    cond: Condition, columns: Mapping[str, ColumnElement[Any]]
) -> ColumnElement[bool]:
    """A catalog condition as a never-NULL boolean SQL expression over ``columns``.

    Parameters
    ----------
    cond
        Predicate, ``any`` or ``all`` group from :mod:`layers.catalog`.
    columns
        Field name -> SQL column; fields not in it make their predicates false.
    """
    if isinstance(cond, Predicate):
        col = columns.get(cond.field)
        if col is None:
            return false()
        return func.coalesce(_predicate(col, cond), false())
    if isinstance(cond, AnyOf):
        return or_(false(), *[condition_sql(c, columns) for c in cond.any])
    assert isinstance(cond, AllOf)
    return and_(*[condition_sql(c, columns) for c in cond.all])


def rule_sql(
    rule: Rule, columns: Mapping[str, ColumnElement[Any]], all_industries: Sequence[str]
) -> ColumnElement[bool]:
    """Whether ``rule`` applies to a row: industry in the rule's list and every ``when``."""
    allowed = list(all_industries) if "*" in rule.industries else list(rule.industries)
    industry = Predicate(field="industry_id", op="in", value=allowed)
    return and_(*[condition_sql(c, columns) for c in (industry, *rule.when)])


def match_array(
    rules: Sequence[Rule], columns: Mapping[str, ColumnElement[Any]],
    all_industries: Sequence[str],
) -> ColumnElement[Any]:
    """``boolean[]`` of per-rule matches (element i+1 in SQL = ``rules[i]``)."""
    if not rules:
        return sa_cast(array([false()]), Boolean)  # pragma: no cover - empty catalog
    return array([rule_sql(r, columns, all_industries) for r in rules])


def rule_rows(catalog: RuleCatalog, rules: Sequence[Rule]) -> list[dict[str, Any]]:
    """Rows of the temporary rules table :data:`COMBO_SQL` reads (``ord`` is 1-based)."""
    rank = {v.id: v.rank for v in catalog.verdicts}
    return [
        {"ord": i + 1, "id": r.id, "verdict": r.verdict, "rank": rank[r.verdict],
         "standards": list(r.standards), "reason": r.reason_zh}
        for i, r in enumerate(rules)
    ]


#: Verdict / standards / rule ids / reasons per distinct match array ``m`` of ``_bw_masks``,
#: from the rules in ``_bw_rules``: matched rules ordered by (verdict rank, catalog order),
#: standards de-duplicated keeping their first occurrence. Parameters: ``default``,
#: ``list_sep``, ``reason_sep``.
COMBO_SQL = """
CREATE TEMP TABLE _bw_combo ON COMMIT DROP AS
WITH combos AS (SELECT DISTINCT m FROM _bw_masks),
hits AS (
    SELECT c.m, r.* FROM combos c
    CROSS JOIN LATERAL unnest(c.m) WITH ORDINALITY AS u(hit, ord)
    JOIN _bw_rules r ON r.ord = u.ord
    WHERE u.hit
)
SELECT c.m,
    coalesce((SELECT h.verdict FROM hits h WHERE h.m = c.m
              ORDER BY h.rank, h.ord LIMIT 1), :default) AS verdict,
    coalesce((SELECT string_agg(x.std, :list_sep ORDER BY x.first) FROM (
                SELECT s.std, min(ARRAY[h.rank, h.ord, s.k::int]) AS first
                FROM hits h CROSS JOIN LATERAL unnest(h.standards) WITH ORDINALITY AS s(std, k)
                WHERE h.m = c.m GROUP BY s.std) x), '') AS standards,
    coalesce((SELECT string_agg(h.id, :list_sep ORDER BY h.rank, h.ord)
              FROM hits h WHERE h.m = c.m), '') AS rule_ids,
    coalesce((SELECT string_agg(h.reason, :reason_sep ORDER BY h.rank, h.ord)
              FROM hits h WHERE h.m = c.m), '') AS reasons
FROM combos c
"""
