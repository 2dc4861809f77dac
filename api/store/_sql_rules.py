"""The rule catalog translated to SQL expressions (SQLAlchemy Core, bound parameters only).

Mirrors the semantics of :mod:`geo.rules` so that in-database classification gives the same
answers as the in-process engine:

* a predicate on a field the table lacks is false; a NULL (or float NaN) value is false;
* text is compared after trimming whitespace; ``is_empty`` means a known empty string;
* a numeric value tested against a text column compares the text parsed as a number (plain
  decimal / exponent notation; other spellings Python's ``float()`` accepts are not parsed);
* a date value compares the ISO ``YYYY-MM-DD`` prefix of text columns, or date/timestamp
  columns directly; ``@as_of`` is the evaluation date, bound as a parameter;
* ``contains`` compares ``normalize(text, NFKC)``, lower-cased, blanks removed, middle dots
  as '.', with ``strpos`` (the words are parameters, never pattern syntax);
* ``unless`` conditions exempt a row when one of them holds (missing data never exempts).

Only ``scope = "enterprise"`` rules have a SQL form (:func:`active_rules`); unit rules need
the equipment units and are evaluated in process (see
:func:`api.store.postgis.classify_in_database`, which falls back to the in-process engine when
the store holds units).

Each rule becomes one boolean expression; :func:`match_words` packs them into ``bigint``
bit words per row (bit ``i`` = rule ``i`` of :func:`active_rules` matched), testing a row's
rules under one ``CASE`` on its industry. The distinct words are few: the store turns each into verdict, standards, rule ids, reasons,
price measures and deadline with the very functions of :mod:`geo.rules`
(:func:`combo_rows`), so texts are identical by construction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    Numeric,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    true,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.sql.elements import ColumnElement

from layers.catalog import AS_OF, AllOf, AnyOf, Condition, Predicate, Rule, RuleCatalog

__all__ = ["active_rules", "condition_sql", "rule_sql", "match_words",
           "words_to_matches", "combo_rows", "deadline_fields", "date_value", "WORD_BITS"]

logger = logging.getLogger(__name__)

#: A number written in decimal or exponent notation, optionally surrounded by blanks.
_NUMBER_RE = r"^\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
#: An ISO date prefix.
_DATE_RE = r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}"


def active_rules(catalog: RuleCatalog, as_of: date | None) -> list[Rule]:
    """Enterprise-scope rules effective on ``as_of`` (default today), in catalog order."""
    day = as_of or date.today()
    return [r for r in catalog.rules if r.effective <= day and r.scope == "enterprise"]


def _kind(col: ColumnElement[Any]) -> str:
    t = col.type
    if isinstance(t, Boolean):
        return "bool"
    if isinstance(t, (Float, Numeric)):
        return "float"
    if isinstance(t, Integer):
        return "int"
    if isinstance(t, (Date, DateTime)):
        return "date"
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


def _norm(col: ColumnElement[Any]) -> ColumnElement[Any]:
    """The text as ``contains`` compares it (geo.equipment.normalise_text)."""
    folded = func.lower(func.normalize(col, literal_column("NFKC")))
    return func.translate(func.regexp_replace(folded, r"\s+", "", "g"), "·•・", "...")


def _predicate(col: ColumnElement[Any], p: Predicate, as_of: date) -> ColumnElement[bool]:
    """One predicate on an existing column (NULL-valued where the value is missing)."""
    kind, op = _kind(col), p.op
    v: Any = as_of if p.value == AS_OF else p.value
    values = v if isinstance(v, list) else [v]
    known = col.isnot(None)
    if op == "contains":
        if kind != "text":
            return false()
        from geo.rules import _needles

        return or_(false(), *[func.strpos(_norm(col), w) > 0 for w in _needles(tuple(v))])
    if kind == "date":
        day = sa_cast(col, Date)
        if op == "not_empty":
            return known
        if not isinstance(v, (date, list)) or op == "is_empty":
            return known if op in ("ne", "not_in") else false()
        if op in ("in", "not_in", "eq", "ne"):
            ds = [x for x in values if isinstance(x, date)]
            hit = day.in_(ds) if ds else false()
            return and_(hit if op in ("in", "eq") else ~hit, known)
        return and_(_order(day, op, v), known)
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
            # booleans equal booleans only: a flag is never `eq 1` (as geo.rules._equal)
            accepted = sorted({bool(x) for x in values if isinstance(x, bool)})
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
    cond: Condition, columns: Mapping[str, ColumnElement[Any]], as_of: date | None = None
) -> ColumnElement[bool]:
    """A catalog condition as a never-NULL boolean SQL expression over ``columns``.

    Parameters
    ----------
    cond
        Predicate, ``any`` or ``all`` group from :mod:`layers.catalog`.
    columns
        Field name -> SQL column; fields not in it make their predicates false.
    as_of
        The evaluation date ``@as_of`` stands for (default today).
    """
    day = as_of or date.today()
    if isinstance(cond, Predicate):
        col = columns.get(cond.field)
        if col is None:
            return false()
        return func.coalesce(_predicate(col, cond, day), false())
    if isinstance(cond, AnyOf):
        return or_(false(), *[condition_sql(c, columns, day) for c in cond.any])
    assert isinstance(cond, AllOf)
    return and_(*[condition_sql(c, columns, day) for c in cond.all])


def rule_sql(
    rule: Rule, columns: Mapping[str, ColumnElement[Any]], all_industries: Sequence[str],
    as_of: date | None = None,
) -> ColumnElement[bool]:
    """Whether ``rule`` applies to a row: its industry, every ``when``, no ``unless``."""
    allowed = list(all_industries) if "*" in rule.industries else list(rule.industries)
    industry = Predicate(field="industry_id", op="in", value=allowed)
    parts = [condition_sql(c, columns, as_of) for c in (industry, *rule.when)]
    if rule.unless:
        parts.append(not_(or_(false(), *[condition_sql(c, columns, as_of) for c in rule.unless])))
    return and_(*parts)


#: Rules per ``bigint`` word of :func:`match_words` (the sign bit is left alone).
WORD_BITS = 62


def _bits(bodies: Sequence[ColumnElement[bool]], word: int,
          keep: Sequence[int]) -> ColumnElement[Any]:
    """``bigint``: bit ``i % WORD_BITS`` set where ``bodies[i]`` (``i`` in ``keep`` and in
    ``word``) holds."""
    terms = [case((bodies[i], literal_column(f"{1 << (i % WORD_BITS)}::bigint")),
                  else_=literal_column("0::bigint"))
             for i in keep if i // WORD_BITS == word]
    if not terms:
        return literal_column("0::bigint")
    out = terms[0]
    for t in terms[1:]:
        out = out.op("|", return_type=BigInteger)(t)
    return out


def match_words(
    rules: Sequence[Rule], columns: Mapping[str, ColumnElement[Any]],
    all_industries: Sequence[str], as_of: date | None = None,
) -> list[ColumnElement[Any]]:
    """Per-rule matches packed into ``bigint`` words: bit ``i % WORD_BITS`` of word
    ``i // WORD_BITS`` set = ``rules[i]`` matched (bit order = ``rules`` order).

    A row's rules are tested under one ``CASE`` on its trimmed industry: each branch holds
    only the rules allowing that industry, so a row evaluates its own industry's few rules
    instead of every rule's industry test (and no array is built per row).
    """
    words = max(1, -(-len(rules) // WORD_BITS))
    industry = columns.get("industry_id")
    if industry is None or _kind(industry) != "text":  # pragma: no cover - schema guard
        bodies = [rule_sql(r, columns, all_industries, as_of) for r in rules]
        return [_bits(bodies, w, range(len(rules))) for w in range(words)]
    day = as_of or date.today()
    bodies = [_rule_body(r, columns, day) for r in rules]
    allowed = [set(all_industries) if "*" in r.industries else set(r.industries)
               for r in rules]
    out = []
    for w in range(words):
        whens = {}
        for ind in dict.fromkeys(all_industries):
            keep = [i for i in range(len(rules)) if ind in allowed[i]]
            if any(i // WORD_BITS == w for i in keep):
                whens[ind] = _bits(bodies, w, keep)
        out.append(case(whens, value=func.btrim(industry), else_=literal_column("0::bigint"))
                   if whens else literal_column("0::bigint"))
    return out


def _rule_body(rule: Rule, columns: Mapping[str, ColumnElement[Any]],
               as_of: date) -> ColumnElement[bool]:
    """:func:`rule_sql` without its industry test: every ``when``, no ``unless``."""
    parts = [condition_sql(c, columns, as_of) for c in rule.when]
    if rule.unless:
        parts.append(not_(or_(false(), *[condition_sql(c, columns, as_of) for c in rule.unless])))
    return and_(true(), *parts)


def words_to_matches(words: Sequence[int], n_rules: int) -> list[bool]:
    """The per-rule matches (``[rules[0] matched, ...]``) of one row of :func:`match_words`."""
    return [bool((words[i // WORD_BITS] >> (i % WORD_BITS)) & 1) for i in range(n_rules)]


def date_value(col: ColumnElement[Any] | None) -> ColumnElement[Any]:
    """A column's value as a date (ISO prefix of text), NULL when absent or not a date."""
    if col is None:
        return sa_cast(literal(None), Date)
    if _kind(col) == "date":
        return sa_cast(col, Date)
    if _kind(col) == "text":
        return sa_cast(_text_date(col), Date)
    return sa_cast(literal(None), Date)


def deadline_fields(rules: Sequence[Rule]) -> list[str]:
    """The per-row deadline fields of ``rules`` (in order, each once)."""
    return list(dict.fromkeys(r.deadline_field for r in rules if r.deadline_field))


def combo_rows(
    catalog: RuleCatalog, rules: Sequence[Rule], combos: Sequence[Sequence[bool]]
) -> list[dict[str, Any]]:
    """Per distinct match array: the texts and deadline facts :mod:`geo.rules` derives.

    Returns rows with ``m`` (the array), ``verdict``, ``standards``, ``rule_ids``,
    ``reasons``, ``price_measures``, ``fixed_deadline`` (earliest dated deadline of the rules
    driving the verdict, or None), ``immediate``, ``undetermined`` and ``fields`` (the
    deadline fields of driving rules, whose per-row values the SQL update takes the least of).
    """
    from geo.rules import _ACTION_VERDICTS, _combo_text

    rank = {v.id: v.rank for v in catalog.verdicts}
    idx = [[i for i, hit in enumerate(m) if hit] for m in combos]
    text = _combo_text(idx, rules, catalog)
    out = []
    for k, m in enumerate(combos):
        matched = [rules[i] for i in idx[k]]
        best = min((rank[r.verdict] for r in matched), default=None)
        driving = [r for r in matched if rank[r.verdict] == best]
        dated = [r.deadline for r in driving if r.deadline is not None]
        out.append({
            "m": list(m), "verdict": text.verdict[k], "standards": text.standards[k],
            "rule_ids": text.rule_ids[k], "reasons": text.reasons[k],
            "price_measures": text.measures[k],
            "fixed_deadline": min(dated) if dated else None,
            "immediate": any(r.immediate for r in driving),
            "undetermined": any(r.deadline_kind == "none" and r.verdict in _ACTION_VERDICTS
                                for r in driving),
            "fields": [r.deadline_field for r in driving if r.deadline_field],
        })
    return out
