"""BENCHMARKS.md blocks: each benchmark script replaces only its own block."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _blocks import blocks_of, write_block  # noqa: E402


def test_write_block_replaces_only_its_own_block(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    write_block(path, "map", "map v1")
    write_block(path, "scale", "scale v1")
    write_block(path, "map", "map v2")
    text = path.read_text("utf-8")
    assert "map v1" not in text and "map v2" in text and "scale v1" in text
    assert [b.splitlines()[1] for b in blocks_of(text)] == ["map v2", "scale v1"]


def test_blocks_of_ignores_unterminated_blocks() -> None:
    text = "<!-- begin:a -->\nx\n<!-- end:a -->\n<!-- begin:b -->\nno end"
    assert blocks_of(text) == ["<!-- begin:a -->\nx\n<!-- end:a -->"]
