"""Registry reading: unreadable sources fail with an error naming the file and the cause.

Oracles: the bytes are built here (UTF-16 with a broken tail, Latin-1 text that is neither
UTF-8 nor GB18030, a corrupt XLSX, a missing path), so the expected failure is known
without running the code under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from geo.errors import ReferenceDataError, RegistryFormatError
from geo.ingest import issue_message, read_registry


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A path that does not exist is a RegistryFormatError naming it."""
    missing = tmp_path / "不存在.csv"
    with pytest.raises(RegistryFormatError, match="不存在.csv"):
        read_registry(missing)


def test_undecodable_csv_says_which_encodings_are_expected() -> None:
    """Bytes that are valid in neither UTF-8 nor GB18030 are refused, naming both."""
    data = "name,lon,lat\n".encode() + bytes([0x80, 0x20, 0xFF, 0x0A]) * 3
    with pytest.raises(RegistryFormatError, match="UTF-8.*GB18030"):
        read_registry(data, filename="r.csv")


def test_broken_utf16_falls_back_and_is_refused() -> None:
    """A UTF-16 BOM followed by an odd number of bytes is not silently read."""
    data = b"\xff\xfe" + "名称".encode("utf-16-le") + b"\x00\xd8\x41"
    with pytest.raises(RegistryFormatError):
        read_registry(io.BytesIO(data), filename="r.csv")


def test_corrupt_xlsx_names_the_file() -> None:
    """A ZIP header without a workbook is a RegistryFormatError naming the file."""
    data = b"PK\x03\x04" + b"\x00" * 200
    with pytest.raises(RegistryFormatError, match="bad.xlsx"):
        read_registry(data, filename="bad.xlsx")


def test_unknown_issue_code_is_a_reference_data_error() -> None:
    """issue_message refuses a code issues.toml does not define, naming it."""
    with pytest.raises(ReferenceDataError, match="no_such_code"):
        issue_message("no_such_code")
