"""geo.files.atomic_target: files get the user's umask, failures leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _export_fixtures import enforcement_frame, rejected_frame

from geo.errors import ExportError
from geo.export import export_all
from geo.files import atomic_target


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_every_output_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        paths = export_all(enforcement_frame(), rejected_frame(), tmp_path / "out")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in paths.values()}
    for name, got in modes.items():
        assert got & ~mode == 0, (name, oct(got))  # never more than the umask allows
        # readable as the umask says (SQLite creates GeoPackages 0644 & ~umask, never g+w)
        assert got & 0o644 == mode & 0o644, (name, oct(got))


def test_target_that_is_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(ExportError, match="is a folder"), atomic_target(tmp_path / "x.csv"):
        pass


def test_failure_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_target(tmp_path / "a.txt") as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
