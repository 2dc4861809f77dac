"""The seed coverage table: zero requirements of the plan left unaccounted for.

The requirements are parsed from the seed text itself (tables by row and numbered
sub-item, sections by numbered item), independently of coverage.toml.
"""

from __future__ import annotations

import re
from pathlib import Path

from layers.catalog import rules
from layers.coverage import coverage, coverage_markdown

ROOT = Path(__file__).resolve().parents[2]
SEED = Path("/work/shared/seed/000_614dae50352398fd.txt")
SEED_COPY = ROOT / "tests" / "data" / "seed_plan.txt"
CN = "一二三四五六七八九十"


def seed_text() -> str:
    return SEED_COPY.read_text(encoding="utf-8")


def seed_requirements(text: str) -> list[str]:
    """Requirement keys of the plan, in order, parsed from its text."""
    keys: list[str] = []
    lines = text.splitlines()
    part = ""        # 一 .. 四
    sub = ""         # (一) .. (五)
    table = ""
    row = ""
    row_items = 0
    for line in lines:
        s = line.strip("\u3000 \t")
        m = re.match(r"^表(\d)：", s)
        if m:
            table, row = f"表{m.group(1)}", ""
            if table == "表4":
                keys.append("表4")
            continue
        m = re.match(r"^([一二三四])、", s)
        if m:
            if table and row and row_items == 0:
                keys.append(f"{table} 第{row}项")
            table, row, part, sub = "", "", m.group(1), ""
            if part == "一":
                keys.append("一")
            continue
        if table:
            if re.fullmatch(r"\d+", s) and line.startswith("\t"):
                if row and row_items == 0:
                    keys.append(f"{table} 第{row}项")
                row, row_items = s, 0
                continue
            if s.startswith("备注"):
                if row and row_items == 0:
                    keys.append(f"{table} 第{row}项")
                keys.append(f"{table} 备注")
                table, row = "", ""
                continue
            for n in re.findall(r"^（(\d+)）", s):
                if row:
                    keys.append(f"{table} 第{row}项({n})")
                    row_items += 1
            m = re.match(r"^（([一二三四五])）", s)
            if not m:
                continue
            if row and row_items == 0:
                keys.append(f"{table} 第{row}项")
            table, row = "", ""
        m = re.match(r"^（([一二三四五])）", s)
        if m and part:
            sub = m.group(1)
            if part in ("三", "四"):
                keys.append(f"{part}({sub})")
            continue
        m = re.match(r"^(\d)[\.．]\s*\S", s)
        if m and part == "二" and sub:
            keys.append(f"二({sub}){m.group(1)}")
    return keys


def test_seed_copy_is_the_seed() -> None:
    if SEED.exists():  # the shared seed, when this checkout sits next to it
        assert SEED.read_bytes() == SEED_COPY.read_bytes()
    assert "表5：我省重点行业淘汰要求清单（工艺装备）" in seed_text()


def test_parser_finds_the_plan_structure() -> None:
    keys = seed_requirements(seed_text())
    assert len(keys) == len(set(keys))
    # spot checks against the plan as printed
    for k in ("一", "二(一)3", "表1 第6项", "表2 第1项(3)", "表2 第11项", "表3 第2项(1)",
              "表4", "表5 第4项", "表5 第6项(6)", "表5 第8项(6)", "表5 备注", "二(五)4", "四(三)"):
        assert k in keys, k
    assert sum(k.startswith("表1 ") for k in keys) == 12
    assert sum(k.startswith("表5 ") for k in keys) == 39


def test_every_requirement_is_accounted_for() -> None:
    want = seed_requirements(seed_text())
    have = [it.key for it in coverage()]
    assert sorted(set(want) - set(have)) == []
    assert sorted(set(have) - set(want)) == []
    for it in coverage():
        assert it.rules or it.not_per_enterprise, it.key


def test_every_rule_covers_a_requirement_it_cites() -> None:
    listed: dict[str, list[str]] = {}
    for it in coverage():
        for r in it.rules:
            listed.setdefault(r, []).append(it.key)
    for rule in rules().rules:
        assert rule.id in listed, rule.id
        # the rule's own citation names (the table/section of) a requirement it is listed under
        heads = {re.sub(r"第\d+项.*$|\d$", "", k).strip() for k in listed[rule.id]}
        assert any(h and h in rule.citation for h in heads), (rule.id, rule.citation, heads)


def test_docs_coverage_is_generated_and_current() -> None:
    assert (ROOT / "docs" / "coverage.md").read_text(encoding="utf-8") == coverage_markdown()
