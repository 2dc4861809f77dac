"""Typed loaders for the catalogs in ``layers/data`` (industries, standards, rules, labels).

Every catalog is a TOML file with its source recorded in the file; loaders validate it
with pydantic and cache the result, so a malformed file fails loudly at first use.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo.errors import ReferenceDataError

__all__ = [
    "DATA_DIR",
    "data_path",
    "read_data_toml",
    "Industry",
    "industries",
    "Standard",
    "standards",
    "OPS",
    "Predicate",
    "AnyOf",
    "AllOf",
    "Condition",
    "Verdict",
    "Rule",
    "RuleCatalog",
    "parse_rule_catalog",
    "rules",
    "verdict_labels",
]

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(name: str) -> Path:
    """Path of a bundled data file, raising :class:`ReferenceDataError` if it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        raise ReferenceDataError(f"Reference data file {path} is missing; reinstall BasinWatch.")
    return path


@cache
def read_data_toml(name: str) -> dict[str, Any]:
    """Parse a bundled TOML data file (cached)."""
    path = data_path(name)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ReferenceDataError(f"{path} is not valid TOML: {exc}") from exc


class Industry(BaseModel):
    """One of the plan's 12 key industries."""

    id: str
    name_zh: str
    name_en: str
    codes: list[str]
    aliases: list[str] = []


@cache
def industries() -> tuple[Industry, ...]:
    """The 12 key industries from ``industries.toml``, in the plan's order."""
    raw = read_data_toml("industries.toml")
    try:
        return tuple(Industry.model_validate(item) for item in raw["industry"])
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"industries.toml is malformed: {exc}") from exc


class Standard(BaseModel):
    """A discharge standard cited by the rule catalog."""

    model_config = ConfigDict(extra="forbid")

    code: str
    title_zh: str
    title_en: str
    basins: list[str] = []
    source: str
    #: Note where the plan text cites this standard wrongly (e.g. a wrong number).
    source_discrepancy: str | None = None
    #: The (wrong) code the plan text uses, when it differs from ``code``.
    cited_as: str | None = None


@cache
def standards() -> tuple[Standard, ...]:
    """The standards of ``standards.toml``, in file order."""
    raw = read_data_toml("standards.toml")
    try:
        items = tuple(Standard.model_validate(item) for item in raw["standard"])
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"standards.toml is malformed: {exc}") from exc
    codes = [s.code for s in items]
    if len(set(codes)) != len(codes):
        raise ReferenceDataError(f"standards.toml has duplicate codes: {codes}")
    return items


#: Predicate operators of the rule catalog.
OPS = ("in", "not_in", "eq", "ne", "lt", "le", "gt", "ge", "is_empty", "not_empty")
_LIST_OPS = {"in", "not_in"}
_ORDER_OPS = {"lt", "le", "gt", "ge"}
_UNARY_OPS = {"is_empty", "not_empty"}

Scalar = str | int | float | bool | date


class Predicate(BaseModel):
    """``{field, op, value}``: one test on one column."""

    model_config = ConfigDict(extra="forbid")

    field: str
    op: Literal["in", "not_in", "eq", "ne", "lt", "le", "gt", "ge", "is_empty", "not_empty"]
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> Predicate:
        if self.op in _LIST_OPS and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' on '{self.field}' needs a list value")
        if self.op in _ORDER_OPS and (
            isinstance(self.value, (list, bool, str)) or self.value is None
        ):
            raise ValueError(f"op '{self.op}' on '{self.field}' needs a number or date value")
        if self.op in {"eq", "ne"} and (self.value is None or isinstance(self.value, list)):
            raise ValueError(f"op '{self.op}' on '{self.field}' needs a scalar value")
        if self.op in _UNARY_OPS and self.value is not None:
            raise ValueError(f"op '{self.op}' on '{self.field}' takes no value")
        return self


class AnyOf(BaseModel):
    """``{any = [...]}``: true when at least one nested condition holds."""

    model_config = ConfigDict(extra="forbid")

    any: list[Condition] = Field(min_length=1)


class AllOf(BaseModel):
    """``{all = [...]}``: true when every nested condition holds."""

    model_config = ConfigDict(extra="forbid")

    all: list[Condition] = Field(min_length=1)


Condition = Predicate | AnyOf | AllOf
AnyOf.model_rebuild()
AllOf.model_rebuild()


class Verdict(BaseModel):
    """A verdict: rank 1 is the strongest."""

    model_config = ConfigDict(extra="forbid")

    id: str
    rank: int
    label_zh: str
    label_en: str
    colour: str


class Rule(BaseModel):
    """One rule of the plan: who it applies to, when, the verdict and its citation."""

    model_config = ConfigDict(extra="forbid")

    id: str
    verdict: str
    industries: list[str] = Field(min_length=1)
    when: list[Condition] = []
    standards: list[str] = []
    effective: date
    deadline: date | None = None
    text_zh: str
    citation: str
    citation_text: str

    @property
    def reason_zh(self) -> str:
        """User-facing reason: the sentence followed by its citation."""
        return f"{self.text_zh}〔{self.citation}〕"


class RuleCatalog(BaseModel):
    """Verdicts (strongest first) and rules (file order)."""

    version: str = ""
    verdicts: tuple[Verdict, ...]
    rules: tuple[Rule, ...]

    @property
    def verdict_order(self) -> tuple[str, ...]:
        """Verdict ids, strongest first."""
        return tuple(v.id for v in self.verdicts)

    def verdict(self, verdict_id: str) -> Verdict:
        """The verdict with that id."""
        for v in self.verdicts:
            if v.id == verdict_id:
                return v
        raise KeyError(verdict_id)

    @property
    def default_verdict(self) -> str:
        """The weakest verdict, given when no rule matches."""
        return self.verdicts[-1].id


def parse_rule_catalog(
    raw: Mapping[str, Any],
    *,
    industry_ids: tuple[str, ...] | None = None,
    standard_codes: tuple[str, ...] | None = None,
) -> RuleCatalog:
    """Validate a parsed rules TOML document into a :class:`RuleCatalog`.

    Parameters
    ----------
    raw
        The document: ``verdicts`` table and ``rule`` array.
    industry_ids, standard_codes
        Allowed industry ids and standard codes; default to the bundled catalogs.

    Raises
    ------
    ReferenceDataError
        Naming the rule (or verdict) id and what is wrong: unknown op, industry,
        verdict or standard, malformed predicate, duplicate id.
    """
    if industry_ids is None:
        industry_ids = tuple(i.id for i in industries())
    if standard_codes is None:
        standard_codes = tuple(s.code for s in standards())
    raw_verdicts = raw.get("verdicts")
    if not isinstance(raw_verdicts, Mapping) or not raw_verdicts:
        raise ReferenceDataError("rules.toml has no [verdicts] table.")
    verdicts: list[Verdict] = []
    for vid, body in raw_verdicts.items():
        try:
            verdicts.append(Verdict.model_validate({"id": vid, **body}))
        except (TypeError, ValidationError) as exc:
            raise ReferenceDataError(f"rules.toml verdict '{vid}' is malformed: {exc}") from exc
    verdicts.sort(key=lambda v: v.rank)
    ranks = [v.rank for v in verdicts]
    if len(set(ranks)) != len(ranks):
        raise ReferenceDataError(f"rules.toml verdict ranks must be distinct, got {ranks}.")
    verdict_ids = {v.id for v in verdicts}

    parsed: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("rule", [])):
        rid = item.get("id", f"#{i + 1}") if isinstance(item, Mapping) else f"#{i + 1}"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            raise ReferenceDataError(f"rules.toml rule '{rid}' is malformed: {exc}") from exc
        if rule.id in seen:
            raise ReferenceDataError(f"rules.toml rule '{rid}' is defined twice.")
        seen.add(rule.id)
        if rule.verdict not in verdict_ids:
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': unknown verdict '{rule.verdict}'; "
                f"expected one of {sorted(verdict_ids)}."
            )
        bad = [x for x in rule.industries if x != "*" and x not in industry_ids]
        if bad or ("*" in rule.industries and len(rule.industries) > 1):
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': unknown industries {bad or rule.industries}; "
                f"expected ids from industries.toml {list(industry_ids)} or ['*']."
            )
        bad = [x for x in rule.standards if x not in standard_codes]
        if bad:
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': unknown standards {bad}; "
                f"expected codes from standards.toml {list(standard_codes)}."
            )
        if rule.deadline is not None and rule.deadline < rule.effective:
            raise ReferenceDataError(f"rules.toml rule '{rid}': deadline before effective date.")
        parsed.append(rule)
    if not parsed:
        raise ReferenceDataError("rules.toml has no [[rule]] entries.")
    return RuleCatalog(
        version=str(raw.get("version", "")), verdicts=tuple(verdicts), rules=tuple(parsed)
    )


@cache
def rules() -> RuleCatalog:
    """The bundled rule catalog (``rules.toml``), validated and cached."""
    return parse_rule_catalog(read_data_toml("rules.toml"))


@cache
def verdict_labels(lang: Literal["zh", "en"] = "zh") -> dict[str, str]:
    """Verdict id -> label (Chinese by default), strongest first."""
    return {
        v.id: (v.label_zh if lang == "zh" else v.label_en) for v in rules().verdicts
    }
