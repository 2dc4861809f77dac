"""Typed loaders for the enforcement-workflow catalogs in ``layers/data``.

``limits.toml`` (discharge limits with a source per value), ``monitoring.toml`` (monitoring
file headers, pollutants, units, "serious" criteria), ``cases.toml`` (case statuses,
dimensions and departments, rule metadata) and ``calendar.toml`` (the plan's lists and due
dates). Like :mod:`layers.catalog`, each loader validates with pydantic and caches, so a
malformed file fails loudly at first use with the file and entry named.
"""

from __future__ import annotations

import logging
from datetime import date
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from geo.errors import ReferenceDataError
from layers.catalog import industries, read_data_toml, standards

__all__ = [
    "LimitStandard",
    "Limit",
    "LimitCatalog",
    "limit_catalog",
    "Pollutant",
    "SeriousCriterion",
    "MonitoringSpec",
    "monitoring_spec",
    "Status",
    "Dimension",
    "CaseSpec",
    "case_spec",
    "ListDef",
    "CalendarItem",
    "CalendarSpec",
    "calendar_spec",
]

logger = logging.getLogger(__name__)


def _fail(name: str, exc: Exception) -> ReferenceDataError:
    return ReferenceDataError(f"{name} is malformed: {exc}")


# --------------------------------------------------------------------------- limits


class LimitStandard(BaseModel):
    """A standard limits.toml draws values from (national industry or basin)."""

    model_config = ConfigDict(extra="forbid")

    code: str
    title_zh: str
    kind: Literal["national", "basin"]
    industries: list[str]
    effective_existing: date
    effective_source: str


class Limit(BaseModel):
    """One limit value, or an unsourced gap, of one standard for one pollutant."""

    model_config = ConfigDict(extra="forbid")

    standard: str
    pollutant: str
    status: Literal["sourced", "unsourced"]
    discharge: Literal["direct", "indirect"] = "direct"
    subcategory: str = ""
    limit_kind: Literal["max", "range"] = "max"
    value: float | None = None
    low: float | None = None
    high: float | None = None
    source: str = ""
    verified_by: str = ""
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Limit:
        if self.status == "unsourced":
            if self.value is not None or self.low is not None or self.high is not None:
                raise ValueError(
                    f"{self.standard}/{self.pollutant}: an unsourced limit carries no value"
                )
            if not self.note:
                raise ValueError(f"{self.standard}/{self.pollutant}: unsourced needs a note")
            return self
        if not self.source or not self.verified_by:
            raise ValueError(
                f"{self.standard}/{self.pollutant}: a sourced value needs source and verified_by"
            )
        if self.limit_kind == "max" and (self.value is None or self.value <= 0):
            raise ValueError(f"{self.standard}/{self.pollutant}: max limit needs value > 0")
        if self.limit_kind == "range" and (
            self.low is None or self.high is None or self.low >= self.high
        ):
            raise ValueError(f"{self.standard}/{self.pollutant}: range needs low < high")
        return self


class LimitCatalog(BaseModel):
    """The standards and limit rows of limits.toml plus the floor principle."""

    version: str
    floor: dict[str, str]
    standards: tuple[LimitStandard, ...]
    limits: tuple[Limit, ...]

    def standard(self, code: str) -> LimitStandard:
        """The standard with that code."""
        for s in self.standards:
            if s.code == code:
                return s
        raise KeyError(code)


@cache
def limit_catalog() -> LimitCatalog:
    """``limits.toml``, validated against the standards, industries and pollutants."""
    raw = read_data_toml("limits.toml")
    try:
        cat = LimitCatalog(
            version=str(raw.get("version", "")),
            floor={k: str(v) for k, v in raw["floor"].items()},
            standards=tuple(LimitStandard.model_validate(s) for s in raw["standard"]),
            limits=tuple(Limit.model_validate(x) for x in raw["limit"]),
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise _fail("limits.toml", exc) from exc
    codes = {s.code for s in cat.standards}
    known_ind = {i.id for i in industries()}
    basin_codes = {s.code for s in standards()}
    pollutants = set(monitoring_spec().pollutants)
    for s in cat.standards:
        bad = set(s.industries) - known_ind
        if bad:
            raise ReferenceDataError(f"limits.toml standard {s.code}: unknown industries {bad}")
        if s.kind == "basin" and s.code not in basin_codes:
            raise ReferenceDataError(
                f"limits.toml basin standard {s.code} is not in standards.toml {basin_codes}"
            )
    for lim in cat.limits:
        if lim.standard not in codes:
            raise ReferenceDataError(f"limits.toml limit of unknown standard {lim.standard}")
        if lim.pollutant != "*" and lim.pollutant not in pollutants:
            raise ReferenceDataError(
                f"limits.toml {lim.standard}: unknown pollutant '{lim.pollutant}'; expected an "
                f"id of monitoring.toml [pollutants] {sorted(pollutants)}"
            )
    return cat


# --------------------------------------------------------------------------- monitoring


class Pollutant(BaseModel):
    """A monitored pollutant: Chinese name, spellings, unit, toxicity class."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name_zh: str
    aliases: list[str]
    unit: str
    # ``class`` is a keyword: stored as ``klass``.
    klass: str = ""


class SeriousCriterion(BaseModel):
    """One criterion of 超标排放情节严重 with its legal basis."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label_zh: str
    pollutant_class: str
    min_multiple: float
    min_months: int
    basis: str
    basis_text: str
    verified_by: str
    note: str = ""


class MonitoringSpec(BaseModel):
    """The parsed monitoring.toml."""

    columns: dict[str, dict[str, Any]]
    pollutants: dict[str, Pollutant]
    units: dict[str, dict[str, Any]]
    below_detection: dict[str, Any]
    discharge: dict[str, list[str]]
    measures: dict[str, str]
    serious_window_days: int
    serious: tuple[SeriousCriterion, ...]
    issues: dict[str, dict[str, str]]

    def issue_message(self, code: str, **fields: object) -> str:
        """``"中文 | English"`` message of a rejection code, placeholders filled."""
        try:
            item = self.issues[code]
        except KeyError:
            raise ReferenceDataError(f"monitoring.toml has no [issue.{code}].") from None
        return f"{item['message_zh'].format(**fields)} | {item['message_en'].format(**fields)}"

    def unit_factor(self, pollutant: str, unit: str) -> float | None:
        """Factor from ``unit`` to the pollutant's unit, or None when incompatible."""
        target = self.pollutants[pollutant].unit
        if not unit:
            return 1.0
        for dim in self.units.values():
            if dim["to"] == target:
                return dim["factors"].get(unit)
        return 1.0 if unit == target else None


@cache
def monitoring_spec() -> MonitoringSpec:
    """``monitoring.toml``, validated."""
    raw = read_data_toml("monitoring.toml")
    try:
        pollutants = {
            pid: Pollutant.model_validate(
                {"id": pid, **{("klass" if k == "class" else k): v for k, v in body.items()}}
            )
            for pid, body in raw["pollutants"].items()
        }
        serious = raw["serious"]
        return MonitoringSpec(
            columns=raw["columns"],
            pollutants=pollutants,
            units=raw["units"],
            below_detection=raw["below_detection"],
            discharge=raw["discharge"],
            measures=raw["measures"],
            serious_window_days=int(serious["window_days"]),
            serious=tuple(SeriousCriterion.model_validate(c) for c in serious["criterion"]),
            issues=raw["issue"],
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise _fail("monitoring.toml", exc) from exc


# --------------------------------------------------------------------------- cases


class Status(BaseModel):
    """A case status and the statuses it may move to."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label_zh: str
    label_en: str
    colour: str
    open: bool
    exit: bool = False
    next: list[str]


class Dimension(BaseModel):
    """One of the plan's five dimensions and its responsible department."""

    model_config = ConfigDict(extra="forbid")

    id: str
    label_zh: str
    department: str
    citation: str
    citations: list[str]
    rectify_months: int | None = None
    extension_months: int | None = None
    deadline_citation: str = ""
    equipment: bool = False


class CaseSpec(BaseModel):
    """The parsed cases.toml."""

    statuses: dict[str, Status]
    equipment_actions: dict[str, dict[str, str]]
    dimensions: dict[str, Dimension]
    topics: dict[str, dict[str, Any]]
    capacity: dict[str, dict[str, str]]
    max_distance_m: float
    shutdown_due_from_effective: bool = True
    import_columns: dict[str, dict[str, Any]] = {}
    ui: dict[str, str] = {}

    def status(self, status_id: str) -> Status:
        """The status with that id (KeyError if unknown)."""
        return self.statuses[status_id]

    @property
    def initial_status(self) -> str:
        """The status a new case starts in (the first one of the file)."""
        return next(iter(self.statuses))


@cache
def case_spec() -> CaseSpec:
    """``cases.toml``, validated (every ``next`` names a known status)."""
    raw = read_data_toml("cases.toml")
    try:
        spec = CaseSpec(
            statuses={k: Status.model_validate({"id": k, **v})
                      for k, v in raw["statuses"].items()},
            equipment_actions=raw["equipment_actions"],
            dimensions={k: Dimension.model_validate({"id": k, **v})
                        for k, v in raw["dimensions"].items()},
            topics=raw.get("topics", {}),
            capacity=raw.get("capacity", {}),
            max_distance_m=float(raw["matching"]["max_distance_m"]),
            shutdown_due_from_effective=bool(
                raw.get("deadlines", {}).get("shutdown_due_from_effective", True)),
            import_columns=raw.get("import", {}).get("columns", {}),
            ui={str(k): str(v) for k, v in raw.get("ui", {}).items()},
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise _fail("cases.toml", exc) from exc
    for s in spec.statuses.values():
        bad = set(s.next) - set(spec.statuses)
        if bad:
            raise ReferenceDataError(f"cases.toml status {s.id}: unknown next {sorted(bad)}")
    return spec


# --------------------------------------------------------------------------- calendar


class ListDef(BaseModel):
    """A list the plan names."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title_zh: str
    publisher: str
    select: str
    citation: str
    citation_text: str
    due: date | None = None


class CalendarItem(BaseModel):
    """A dated obligation of the plan."""

    model_config = ConfigDict(extra="forbid")

    id: str
    due: date
    title_zh: str
    list: str
    departments: list[str]
    to: str
    citation: str


class CalendarSpec(BaseModel):
    """The parsed calendar.toml."""

    year: int
    lists: dict[str, ListDef]
    items: tuple[CalendarItem, ...]
    periodic_lists: list[str]
    periodic_with: list[str]
    due_soon_days: int
    columns: dict[str, str] = {}

    def item(self, item_id: str) -> CalendarItem:
        """The item with that id."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(item_id)


@cache
def calendar_spec() -> CalendarSpec:
    """``calendar.toml``, validated (items name known lists)."""
    raw = read_data_toml("calendar.toml")
    try:
        spec = CalendarSpec(
            year=int(raw["meta"]["year"]),
            lists={k: ListDef.model_validate({"id": k, **v}) for k, v in raw["lists"].items()},
            items=tuple(sorted((CalendarItem.model_validate(i) for i in raw["item"]),
                               key=lambda i: (i.due, i.id))),
            periodic_lists=list(raw["periodic"]["lists"]),
            periodic_with=list(raw["periodic"]["with_items"]),
            due_soon_days=int(raw["report"]["due_soon_days"]),
            columns={str(k): str(v) for k, v in raw.get("columns", {}).items()},
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise _fail("calendar.toml", exc) from exc
    for it in spec.items:
        if it.list not in spec.lists:
            raise ReferenceDataError(f"calendar.toml item {it.id}: unknown list {it.list}")
    for lid in spec.periodic_lists:
        if lid not in spec.lists:
            raise ReferenceDataError(f"calendar.toml [periodic]: unknown list {lid}")
    return spec
