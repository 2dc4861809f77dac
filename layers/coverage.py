"""The seed coverage table: each requirement of the plan -> rule ids, or why not per enterprise.

``layers/data/coverage.toml`` is the data; :func:`coverage_markdown` renders it with the rule
catalog (verdict, scope, deadline, citation of each rule) as ``docs/coverage.md``::

    python -m layers.coverage > docs/coverage.md

A test regenerates the table and compares it with the committed file, and checks the items
against the requirements parsed from the seed text itself.
"""

from __future__ import annotations

import sys
from functools import cache

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from geo.errors import ReferenceDataError
from layers.catalog import read_data_toml, rules

__all__ = ["CoverageItem", "coverage", "coverage_markdown"]


class CoverageItem(BaseModel):
    """One requirement of the plan and how it is covered."""

    model_config = ConfigDict(extra="forbid")

    key: str
    rules: list[str] = []
    not_per_enterprise: str = ""
    note: str = ""

    @model_validator(mode="after")
    def _accounted(self) -> CoverageItem:
        if not self.rules and not self.not_per_enterprise:
            raise ValueError(f"item '{self.key}' names no rule and no reason")
        return self


@cache
def coverage() -> tuple[CoverageItem, ...]:
    """The items of ``coverage.toml``, validated against the rule catalog."""
    raw = read_data_toml("coverage.toml")
    try:
        items = tuple(CoverageItem.model_validate(x) for x in raw["item"])
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"coverage.toml is malformed: {exc}") from exc
    known = {r.id for r in rules().rules}
    for it in items:
        bad = [r for r in it.rules if r not in known]
        if bad:
            raise ReferenceDataError(f"coverage.toml item '{it.key}' names unknown rules {bad}.")
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise ReferenceDataError("coverage.toml has duplicate keys.")
    return items


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def coverage_markdown() -> str:
    """``docs/coverage.md``: the coverage table and the rule list, generated."""
    cat = rules()
    by_id = {r.id: r for r in cat.rules}
    labels = {v.id: v.label_zh for v in cat.verdicts}
    deadline = {"date": lambda r: str(r.deadline), "field": lambda r: f"按 `{r.deadline_field}`",
                "immediate": lambda r: "立即", "none": lambda r: "—"}
    items = coverage()
    n_rules = sum(1 for it in items if it.rules)
    lines = [
        "# Seed coverage (generated)",
        "",
        "Every requirement of 《广东省2019年推动落后产能退出工作方案》 and how BasinWatch",
        "decides it. Generated from `layers/data/coverage.toml` and the rule catalog by",
        "`python -m layers.coverage > docs/coverage.md`; `tests/layers/test_coverage.py`",
        "checks it is current and that every requirement parsed from the seed is listed.",
        "",
        f"{len(items)} requirements: {n_rules} decided by rules (some in part), "
        f"{len(items) - n_rules} not per enterprise; {len(cat.rules)} rules.",
        "",
        "| requirement | rules | not per enterprise, because | note |",
        "|---|---|---|---|",
    ]
    for it in items:
        rule_cell = "<br>".join(f"`{r}`" for r in it.rules) or "—"
        lines.append(
            f"| {it.key} | {rule_cell} | {_cell(it.not_per_enterprise) or '—'} | "
            f"{_cell(it.note) or ''} |"
        )
    lines += ["", "## Rules", "",
              "| rule | scope | verdict | deadline | effective | citation |",
              "|---|---|---|---|---|---|"]
    for r in cat.rules:
        lines.append(
            f"| `{r.id}` | {r.scope} | {labels[r.verdict]} | "
            f"{deadline[r.deadline_kind](r)} | {r.effective} | {_cell(r.citation)} |"
        )
    unused = sorted(set(by_id) - {x for it in items for x in it.rules})
    if unused:
        lines += ["", "Rules not linked to a requirement: " + ", ".join(unused)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(coverage_markdown())
