"""Tests for geo.uscc (GB 32100-2015 check)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo.uscc import (
    USCC_CHARSET,
    USCC_WEIGHTS,
    make_uscc,
    normalise_uscc,
    uscc_check_char,
    validate_uscc,
)

# Published example code of GB 32100-2015 explanations (independent of this module).
KNOWN_VALID = "91350100M000100Y43"


def test_weights_are_powers_of_three_mod_31() -> None:
    assert list(USCC_WEIGHTS) == [pow(3, i, 31) for i in range(17)]
    assert len(USCC_CHARSET) == 31 and not set("IOSVZ") & set(USCC_CHARSET)


def test_known_code_validates() -> None:
    assert uscc_check_char(KNOWN_VALID[:17]) == KNOWN_VALID[17]
    assert validate_uscc(pd.Series([KNOWN_VALID])).tolist() == [""]


def test_every_wrong_check_char_is_detected() -> None:
    wrong = [KNOWN_VALID[:17] + c for c in USCC_CHARSET if c != KNOWN_VALID[17]]
    assert (validate_uscc(pd.Series(wrong)) == "uscc_check_digit").all()


@pytest.mark.parametrize(
    ("raw", "issue"),
    [
        (None, "uscc_missing"),
        ("   ", "uscc_missing"),
        (np.nan, "uscc_missing"),
        ("91350100M000100Y4", "uscc_length"),
        ("91350100M000100Y433", "uscc_length"),
        ("91350100M000100I43", "uscc_charset"),
        ("91350100M00010-Y43", "uscc_charset"),
        (" 91350100m000100y43 ", ""),
        ("９１３５０１００Ｍ０００１００Ｙ４３", ""),
    ],
)
def test_issue_codes(raw: object, issue: str) -> None:
    assert validate_uscc(pd.Series([raw], index=[7])).loc[7] == issue


def test_normalise_folds_full_width_and_case() -> None:
    out = normalise_uscc(pd.Series(["ｍａ５ｄ", None, " ab "]))
    assert out.tolist() == ["MA5D", "", "AB"]


def test_make_uscc_is_valid_and_distinct() -> None:
    codes = pd.Series([make_uscc(i * 7919, region="440514") for i in range(300)])
    assert (validate_uscc(codes) == "").all()
    assert codes.is_unique and codes.str.slice(2, 8).eq("440514").all()


def test_single_character_corruption_detected() -> None:
    code = make_uscc(123456)
    # replacing any one of the first 17 characters changes the weighted sum mod 31
    corrupted = [
        code[:i] + USCC_CHARSET[(USCC_CHARSET.index(code[i]) + 1) % 31] + code[i + 1:]
        for i in range(17)
    ]
    assert (validate_uscc(pd.Series(corrupted)) == "uscc_check_digit").all()


def test_check_char_rejects_bad_body() -> None:
    with pytest.raises(ValueError, match="17 characters"):
        uscc_check_char("123")
    with pytest.raises(ValueError):
        make_uscc(-1)


def test_preserves_index_and_empty_input() -> None:
    s = pd.Series([KNOWN_VALID, "x"], index=["a", "b"])
    assert validate_uscc(s).index.tolist() == ["a", "b"]
    assert validate_uscc(pd.Series([], dtype=object)).empty


def test_nfkc_skips_ascii_and_equals_pandas_normalize() -> None:
    """``geo._unique.nfkc`` (normalises only the non-ASCII values) is
    ``Series.str.normalize("NFKC")`` on every kind of value and dtype."""
    import pandas as pd

    from geo._unique import nfkc

    values = ["91440300MA5FXXXX0X", "９１４４０３００ＭＡ５ＦＸＸＸＸ０Ｘ", "113.25", "１１３．２５",
              "", " 印染 ", "ｶﾞ", "Ⅻ", "ﬁ", None]
    for dtype in ("str", object):
        s = pd.Series(values, dtype=dtype, index=range(10, 20))
        pd.testing.assert_series_equal(nfkc(s), s.str.normalize("NFKC"))
    ascii_only = pd.Series(["a", "b", None], dtype="str")
    pd.testing.assert_series_equal(nfkc(ascii_only), ascii_only.str.normalize("NFKC"))
    wide = pd.Series(["ａ", "ｂ"], dtype="str")
    pd.testing.assert_series_equal(nfkc(wide), wide.str.normalize("NFKC"))
