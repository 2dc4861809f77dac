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
    "Measure",
    "RuleCatalog",
    "FieldSpec",
    "field_vocabulary",
    "unit_types",
    "EnergyIndicator",
    "energy_indicators",
    "AS_OF",
    "parse_rule_catalog",
    "rule_catalog_document",
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
OPS = ("in", "not_in", "eq", "ne", "lt", "le", "gt", "ge", "is_empty", "not_empty", "contains")
#: The value of an order predicate that means "the evaluation date" (``--as-of``).
AS_OF = "@as_of"
_LIST_OPS = {"in", "not_in", "contains"}
_ORDER_OPS = {"lt", "le", "gt", "ge"}
_UNARY_OPS = {"is_empty", "not_empty"}

Scalar = str | int | float | bool | date


class Predicate(BaseModel):
    """``{field, op, value}``: one test on one column."""

    model_config = ConfigDict(extra="forbid")

    field: str
    op: Literal[
        "in", "not_in", "eq", "ne", "lt", "le", "gt", "ge", "is_empty", "not_empty", "contains"
    ]
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check_value(self) -> Predicate:
        if self.op in _LIST_OPS and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' on '{self.field}' needs a list value")
        if self.op == "contains" and not all(
            isinstance(v, str) and v.strip() for v in self.value  # type: ignore[union-attr]
        ):
            raise ValueError(f"op 'contains' on '{self.field}' needs a list of non-empty words")
        if self.op in _ORDER_OPS and self.value != AS_OF and (
            isinstance(self.value, (list, bool, str)) or self.value is None
        ):
            raise ValueError(
                f"op '{self.op}' on '{self.field}' needs a number, a date or '{AS_OF}'"
            )
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
    """One rule of the plan: who it applies to, when, the verdict and its citation.

    ``scope="unit"`` rules are evaluated per equipment unit; ``unless`` conditions are the
    plan's exemptions; ``review_code`` flags a matched row for review (always, or only when a
    field of ``review_if_missing`` is blank). The deadline is ``deadline`` (a date),
    ``deadline_field`` (a per-row date column), ``immediate`` or none.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    verdict: str
    scope: Literal["enterprise", "unit"] = "enterprise"
    industries: list[str] = Field(min_length=1)
    when: list[Condition] = []
    unless: list[Condition] = []
    review_if_missing: list[str] = []
    review_code: str | None = None
    standards: list[str] = []
    measures: list[str] = []
    effective: date
    deadline: date | None = None
    deadline_field: str | None = None
    immediate: bool = False
    deadline_note: str = ""
    value_source: str = ""
    text_zh: str
    citation: str
    citation_text: str

    @model_validator(mode="after")
    def _check_deadline(self) -> Rule:
        given = [self.deadline is not None, self.deadline_field is not None, self.immediate]
        if sum(given) > 1:
            raise ValueError("give at most one of deadline, deadline_field, immediate")
        if self.review_if_missing and not self.review_code:
            raise ValueError("review_if_missing needs a review_code")
        return self

    @property
    def reason_zh(self) -> str:
        """User-facing reason: the sentence followed by its citation."""
        return f"{self.text_zh}〔{self.citation}〕"

    @property
    def deadline_kind(self) -> Literal["date", "field", "immediate", "none"]:
        """How the rule's deadline is given."""
        if self.deadline is not None:
            return "date"
        if self.deadline_field is not None:
            return "field"
        return "immediate" if self.immediate else "none"

    def fields(self) -> set[str]:
        """Every field the rule reads (``when``, ``unless``, review and deadline fields)."""
        out: set[str] = set()
        for cond in (*self.when, *self.unless):
            out |= condition_fields(cond)
        out |= set(self.review_if_missing)
        if self.deadline_field:
            out.add(self.deadline_field)
        return out


def condition_fields(cond: Condition) -> set[str]:
    """The fields a condition reads."""
    if isinstance(cond, AnyOf):
        return set().union(*(condition_fields(c) for c in cond.any))
    if isinstance(cond, AllOf):
        return set().union(*(condition_fields(c) for c in cond.all))
    return {cond.field}


class Measure(BaseModel):
    """A price measure of 二(一)3 that rules attach (差别电价, 阶梯电价, 惩罚性电价)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label_zh: str
    label_en: str
    text_zh: str
    citation: str
    citation_text: str

    @property
    def reason_zh(self) -> str:
        """User-facing sentence with its citation."""
        return f"{self.text_zh}〔{self.citation}〕"


class RuleCatalog(BaseModel):
    """Verdicts (strongest first), price measures and rules (file order)."""

    version: str = ""
    verdicts: tuple[Verdict, ...]
    rules: tuple[Rule, ...]
    measures: tuple[Measure, ...] = ()

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


class FieldSpec(BaseModel):
    """One field of the rule vocabulary: who produces it, for what scope, of what kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    scope: Literal["enterprise", "unit"]
    producer: Literal["registry", "equipment", "ingest", "classify", "derived"]
    kind: Literal["text", "enum", "number", "bool", "date"]
    label_zh: str = ""
    values: tuple[str, ...] = ()


def _spec_fields(doc: Mapping[str, Any], scope: str, producer: str) -> dict[str, FieldSpec]:
    """Fields a registry.toml / equipment.toml document declares."""
    out: dict[str, FieldSpec] = {}

    def add(name: str, kind: str, item: Mapping[str, Any], values: Any = ()) -> None:
        out[name] = FieldSpec(
            name=name, scope=scope, producer=producer, kind=kind,  # type: ignore[arg-type]
            label_zh=str(item.get("label_zh", "")), values=tuple(values),
        )

    for name, item in doc.get("numeric", {}).items():
        add(name, "number", item)
    for name, item in doc.get("numbers", {}).items():
        add(name, "number", item)
    for name, item in doc.get("dates", {}).items():
        add(name, "date", item)
    for name, item in doc.get("measures", {}).items():
        if item.get("dimension") == "capacity":
            for col in sorted(set(doc["dimensions"]["capacity"]["columns"].values())):
                add(col, "number", item)
        else:
            add(name, "number", item)
    for name, item in doc.get("attributes", {}).items():
        add(name, str(item["kind"]), item, item.get("values", {}).keys())
    if producer == "equipment":
        add("unit_type", "enum", doc["columns"]["unit_type"], doc["unit_types"].keys())
        add("unit_id", "text", doc["columns"]["unit_id"])
    return out


@cache
def field_vocabulary() -> dict[str, FieldSpec]:
    """Every field a rule may read: registry.toml + equipment.toml + fields.toml.

    Raises
    ------
    ReferenceDataError
        If a field is declared twice with different meanings, or a file is malformed.
    """
    vocab: dict[str, FieldSpec] = {}
    try:
        parts = [
            _spec_fields(read_data_toml("registry.toml"), "enterprise", "registry"),
            _spec_fields(read_data_toml("equipment.toml"), "unit", "equipment"),
            {
                name: FieldSpec(name=name, **{k: v for k, v in item.items() if k != "note"})
                for name, item in read_data_toml("fields.toml")["field"].items()
            },
        ]
    except (KeyError, TypeError, ValidationError) as exc:
        raise ReferenceDataError(f"the field vocabulary is malformed: {exc}") from exc
    for part in parts:
        for name, spec in part.items():
            if name in vocab and vocab[name].scope != spec.scope:
                raise ReferenceDataError(
                    f"field '{name}' is declared for scope '{vocab[name].scope}' "
                    f"({vocab[name].producer}) and '{spec.scope}' ({spec.producer})."
                )
            vocab.setdefault(name, spec)
    return vocab


@cache
def unit_types() -> dict[str, str]:
    """Equipment unit type id -> Chinese name (equipment.toml [unit_types])."""
    return {k: str(v["name_zh"]) for k, v in read_data_toml("equipment.toml")["unit_types"].items()}


class EnergyIndicator(BaseModel):
    """An energy-consumption indicator of a Table 1 standard, with its sourced limit."""

    model_config = ConfigDict(extra="forbid")

    id: str
    industry: str
    standard: str
    name_zh: str
    aliases: list[str] = []
    unit: str
    limit: float | None = None
    effective: date | None = None
    status: Literal["sourced", "value_needed"]
    source: str
    note: str = ""

    @model_validator(mode="after")
    def _check_limit(self) -> EnergyIndicator:
        if (self.limit is None) != (self.status == "value_needed"):
            raise ValueError(
                f"indicator '{self.id}': a limit needs status 'sourced' (with its source), "
                "no limit needs status 'value_needed'"
            )
        return self


@cache
def energy_indicators() -> tuple[EnergyIndicator, ...]:
    """The indicators of ``energy_limits.toml``, validated against industries and standards."""
    raw = read_data_toml("energy_limits.toml")
    try:
        items = tuple(EnergyIndicator.model_validate(x) for x in raw["indicator"])
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"energy_limits.toml is malformed: {exc}") from exc
    known_ind = {i.id for i in industries()}
    known_std = {s.code for s in standards()}
    for it in items:
        if it.industry not in known_ind or it.standard not in known_std:
            raise ReferenceDataError(
                f"energy_limits.toml indicator '{it.id}': unknown industry '{it.industry}' or "
                f"standard '{it.standard}' (expected ids of industries.toml, codes of "
                "standards.toml)."
            )
    return items


def _check_rule_fields(rule: Rule, vocab: Mapping[str, FieldSpec]) -> None:
    """Every field the rule reads exists, in the rule's scope, with known enum values."""
    for name in sorted(rule.fields()):
        spec = vocab.get(name)
        if spec is None:
            raise ReferenceDataError(
                f"rules.toml rule '{rule.id}' reads field '{name}', which no registry column "
                "(registry.toml), equipment column (equipment.toml) or pipeline field "
                "(fields.toml) produces: fix the field name or declare where it comes from."
            )
        if spec.scope == "unit" and rule.scope != "unit":
            raise ReferenceDataError(
                f"rules.toml rule '{rule.id}' reads the per-unit field '{name}' "
                f"({spec.producer}) but has scope '{rule.scope}': set scope = \"unit\"."
            )
    for cond in (*rule.when, *rule.unless):
        for pred in _predicates(cond):
            spec = vocab[pred.field]
            if spec.kind != "enum" or not spec.values or pred.op not in ("eq", "ne", "in", "not_in"):
                continue
            values = pred.value if isinstance(pred.value, list) else [pred.value]
            bad = [v for v in values if v not in spec.values]
            if bad:
                raise ReferenceDataError(
                    f"rules.toml rule '{rule.id}': field '{pred.field}' has no value(s) {bad}; "
                    f"expected one of {list(spec.values)}."
                )


def _predicates(cond: Condition) -> list[Predicate]:
    if isinstance(cond, AnyOf):
        return [p for c in cond.any for p in _predicates(c)]
    if isinstance(cond, AllOf):
        return [p for c in cond.all for p in _predicates(c)]
    return [cond]


def parse_rule_catalog(
    raw: Mapping[str, Any],
    *,
    industry_ids: tuple[str, ...] | None = None,
    standard_codes: tuple[str, ...] | None = None,
    fields: Mapping[str, FieldSpec] | None = None,
    review_codes: tuple[str, ...] | None = None,
) -> RuleCatalog:
    """Validate a parsed rules TOML document into a :class:`RuleCatalog`.

    Parameters
    ----------
    raw
        The document: ``verdicts`` and ``measures`` tables and the ``rule`` array (parts
        already merged, see :func:`rule_catalog_document`).
    industry_ids, standard_codes
        Allowed industry ids and standard codes; default to the bundled catalogs.
    fields
        The field vocabulary; default :func:`field_vocabulary`.
    review_codes
        Allowed ``review_code`` values; default the keys of labels.toml [review_reasons].

    Raises
    ------
    ReferenceDataError
        Naming the rule (or verdict) id and what is wrong: unknown op, industry, verdict,
        standard, measure, review code, a field nothing produces, a per-unit field read by an
        enterprise rule, an unknown enum value, malformed predicate, duplicate id.
    """
    if industry_ids is None:
        industry_ids = tuple(i.id for i in industries())
    if standard_codes is None:
        standard_codes = tuple(s.code for s in standards())
    vocab = field_vocabulary() if fields is None else fields
    if review_codes is None:
        review_codes = tuple(read_data_toml("labels.toml").get("review_reasons", {}))
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
    measures: list[Measure] = []
    for mid, body in raw.get("measures", {}).items():
        try:
            measures.append(Measure.model_validate({"id": mid, **body}))
        except (TypeError, ValidationError) as exc:
            raise ReferenceDataError(f"rules.toml measure '{mid}' is malformed: {exc}") from exc
    measure_ids = {m.id for m in measures}

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
        bad = [x for x in rule.measures if x not in measure_ids]
        if bad:
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': unknown measures {bad}; expected {sorted(measure_ids)}."
            )
        if rule.review_code is not None and rule.review_code not in review_codes:
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': review_code '{rule.review_code}' has no text in "
                f"labels.toml [review_reasons]; expected one of {list(review_codes)}."
            )
        if "；" in rule.text_zh or "；" in rule.citation:
            raise ReferenceDataError(
                f"rules.toml rule '{rid}': text_zh and citation must not contain '；' "
                "(it separates the reasons of one enterprise); use '，'."
            )
        if rule.deadline is not None and rule.deadline < rule.effective:
            raise ReferenceDataError(f"rules.toml rule '{rid}': deadline before effective date.")
        _check_rule_fields(rule, vocab)
        parsed.append(rule)
    if not parsed:
        raise ReferenceDataError("rules.toml has no [[rule]] entries.")
    return RuleCatalog(
        version=str(raw.get("version", "")), verdicts=tuple(verdicts), rules=tuple(parsed),
        measures=tuple(measures),
    )


def rule_catalog_document(name: str = "rules.toml") -> dict[str, Any]:
    """The rule catalog as one document: ``name`` with the rules of its ``[catalog] parts``
    appended in order (each part is a TOML file of ``[[rule]]`` entries)."""
    doc = dict(read_data_toml(name))
    merged = list(doc.get("rule", []))
    for part in doc.get("catalog", {}).get("parts", []):
        merged += list(read_data_toml(str(part)).get("rule", []))
    doc["rule"] = merged
    return doc


@cache
def rules() -> RuleCatalog:
    """The bundled rule catalog (``rules.toml`` and its parts), validated and cached."""
    return parse_rule_catalog(rule_catalog_document())


@cache
def verdict_labels(lang: Literal["zh", "en"] = "zh") -> dict[str, str]:
    """Verdict id -> label (Chinese by default), strongest first."""
    return {
        v.id: (v.label_zh if lang == "zh" else v.label_en) for v in rules().verdicts
    }
