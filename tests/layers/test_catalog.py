"""Tests for layers.catalog: standards, rule catalog loading and validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from geo.errors import ReferenceDataError
from layers import catalog
from layers.catalog import Predicate, parse_rule_catalog, rule_catalog_document

BASINS = ("lianjiang", "maozhou", "shima", "danshui")


def _raw() -> dict[str, Any]:
    return copy.deepcopy(rule_catalog_document())


def test_standards_have_required_fields_and_unique_codes() -> None:
    stds = catalog.standards()
    codes = [s.code for s in stds]
    assert len(codes) == len(set(codes))
    for s in stds:
        assert s.title_zh and s.title_en and s.source
        assert s.code.startswith(("DB44/", "GB"))


def test_every_priority_basin_has_exactly_one_standard() -> None:
    for basin in BASINS:
        assert len([s for s in catalog.standards() if basin in s.basins]) == 1, basin


def test_shima_danshui_standard_records_source_discrepancy() -> None:
    by_code = {s.code: s for s in catalog.standards()}
    shima = next(s for s in catalog.standards() if "shima" in s.basins)
    maozhou = next(s for s in catalog.standards() if "maozhou" in s.basins)
    assert "danshui" in shima.basins
    assert shima.code == "DB44/2050-2017"
    # the plan cites the Maozhou number for it; the catalog keeps the right code and says so
    assert shima.cited_as is not None
    assert shima.cited_as.replace(" ", "") == maozhou.code
    assert shima.source_discrepancy and maozhou.code.split("/")[1] in shima.source_discrepancy
    assert by_code[maozhou.code].source_discrepancy is None


def test_verdicts_ranked_strongest_first() -> None:
    cat = catalog.rules()
    assert cat.verdict_order == (
        "shutdown",
        "rectify",
        "basin_standard",
        "emission_standard",
        "priority_supervision",
        "no_action",
    )
    assert cat.default_verdict == "no_action"
    labels = catalog.verdict_labels()
    assert list(labels) == list(cat.verdict_order)
    assert labels["shutdown"] == "关停退出"
    assert all(v.colour.startswith("#") for v in cat.verdicts)
    assert catalog.verdict_labels("en")["no_action"] == "No action"


def test_basin_standard_rules_cover_paper_and_dyeing_in_each_basin() -> None:
    cat = catalog.rules()
    std_of = {b: next(s.code for s in catalog.standards() if b in s.basins) for b in BASINS}
    for industry in ("paper", "dyeing"):
        for basin in BASINS:
            hits = [
                r
                for r in cat.rules
                if r.verdict == "basin_standard"
                and industry in r.industries
                and Predicate(field="basin_id", op="eq", value=basin) in r.when
            ]
            assert len(hits) == 1, (industry, basin)
            assert hits[0].standards == [std_of[basin]]
            assert hits[0].citation.startswith("表2")


def test_rule_references_are_valid() -> None:
    cat = catalog.rules()
    ids = {i.id for i in catalog.industries()}
    for r in cat.rules:
        assert set(r.industries) <= ids | {"*"}
        assert r.verdict in cat.verdict_order
        assert r.text_zh and r.citation and r.citation_text
        assert r.reason_zh.endswith(f"〔{r.citation}〕")


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r.__setitem__("industries", ["coal_mining"]), "coal_mining"),
        (lambda r: r.__setitem__("verdict", "fine"), "fine"),
        (lambda r: r.__setitem__("standards", ["DB44/9999-2030"]), "DB44/9999-2030"),
        (lambda r: r.__setitem__("when", [{"field": "b", "op": "like", "value": "x"}]), "op"),
        (lambda r: r.__setitem__("when", [{"field": "x", "op": "in", "value": "a"}]), "list"),
        (lambda r: r.__setitem__("when", [{"field": "x", "op": "lt", "value": "a"}]), "number"),
        (lambda r: r.__setitem__("when", [{"any": []}]), "any"),
        (lambda r: r.pop("citation"), "citation"),
    ],
)
def test_validation_errors_name_the_rule(mutate: Any, needle: str) -> None:
    raw = _raw()
    target = raw["rule"][3]
    mutate(target)
    with pytest.raises(ReferenceDataError) as err:
        parse_rule_catalog(raw)
    assert target["id"] in str(err.value)
    assert needle in str(err.value)


def test_duplicate_rule_id_rejected() -> None:
    raw = _raw()
    raw["rule"].append(copy.deepcopy(raw["rule"][0]))
    with pytest.raises(ReferenceDataError, match=raw["rule"][0]["id"]):
        parse_rule_catalog(raw)


def test_unknown_verdict_field_rejected() -> None:
    raw = _raw()
    raw["verdicts"]["shutdown"]["rank"] = raw["verdicts"]["rectify"]["rank"]
    with pytest.raises(ReferenceDataError, match="rank"):
        parse_rule_catalog(raw)


def test_nested_conditions_parse() -> None:
    raw = _raw()
    raw["rule"][0]["when"] = [
        {"all": [{"any": [
            {"field": "park_id", "op": "is_empty"},
            {"field": "annual_output_t", "op": "ge", "value": 2},
        ]}]}
    ]
    cat = parse_rule_catalog(raw)
    assert cat.rules[0].when[0].all[0].any[1].value == 2  # type: ignore[union-attr]


# ------------------------------------------------------------------ the field vocabulary
@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        # a field nothing produces (the Table 5 defect)
        (lambda r: r.__setitem__("when", [{"field": "tannery_hides_per_year_x", "op": "lt",
                                           "value": 5}]), "no registry column"),
        # a per-unit field read by an enterprise rule
        (lambda r: r.__setitem__("when", [{"field": "volume_m3", "op": "le", "value": 400}]),
         'scope = "unit"'),
        # an enum value the vocabulary does not have
        (lambda r: r.update(scope="unit", when=[{"field": "unit_type", "op": "eq",
                                                 "value": "blast_furnance"}]), "blast_furnance"),
        (lambda r: r.__setitem__("review_code", "no_such_code"), "no_such_code"),
        (lambda r: r.__setitem__("measures", ["free_power"]), "free_power"),
        (lambda r: r.__setitem__("text_zh", "甲；乙"), "；"),
        (lambda r: r.update(deadline="2019-12-31", immediate=True), "at most one"),
        (lambda r: r.__setitem__("review_if_missing", ["foundry_iron"]), "review_code"),
    ],
)
def test_vocabulary_errors_name_the_rule(mutate: Any, needle: str) -> None:
    raw = _raw()
    target = raw["rule"][3]
    mutate(target)
    with pytest.raises(ReferenceDataError) as err:
        parse_rule_catalog(raw)
    assert target["id"] in str(err.value) and needle in str(err.value)


def test_every_rule_field_has_a_producer_and_scope() -> None:
    vocab = catalog.field_vocabulary()
    for rule in catalog.rules().rules:
        for f in rule.fields():
            assert f in vocab, (rule.id, f)
            if vocab[f].scope == "unit":
                assert rule.scope == "unit", (rule.id, f)
    # registry and equipment columns are declared where ingest reads them
    assert vocab["discharge_permit"].producer == "registry"
    assert vocab["volume_m3"].producer == "equipment"
    assert vocab["energy_over_limit"].producer == "derived"


def test_energy_limits_have_sources_and_no_invented_values() -> None:
    inds = catalog.energy_indicators()
    for i in inds:
        assert i.source
        if i.limit is not None:
            assert i.status == "sourced" and "http" in i.source, i.id
    industries_with_std = {i.industry for i in inds}
    doc = catalog.read_data_toml("energy_limits.toml")
    # Table 1 rows 6 and 8: no national standard, so no indicator -- and the file says so
    assert set(doc["industries_without_standard"]) == {"dyeing", "lead_acid_battery"}
    assert not industries_with_std & {"dyeing", "lead_acid_battery"}
    assert len(industries_with_std) == 10
    # the one value checked against the standard's own foreword (GB 21346-2013)
    al = next(i for i in inds if i.id == "aluminium_liquid_ac_power")
    assert (al.standard, al.limit) == ("GB 21346-2013", 13700)
