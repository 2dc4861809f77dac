"""Named blocks of BENCHMARKS.md that each benchmark script owns.

Every script writes its table between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->``;
the classification report (``run.py``) rewrites the rest of the file and keeps the blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["write_block", "blocks_of"]

_BLOCK = re.compile(r"<!-- begin:([\w-]+) -->.*?<!-- end:\1 -->", re.S)


def write_block(path: Path, name: str, body: str) -> None:
    """Replace (or append) block ``name`` of ``path`` with ``body`` (markers added here)."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def blocks_of(text: str) -> list[str]:
    """The named blocks of a BENCHMARKS.md text, markers included, in file order."""
    return [m.group(0) for m in _BLOCK.finditer(text)]
