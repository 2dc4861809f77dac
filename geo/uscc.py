"""Unified social credit code (统一社会信用代码) check, GB 32100-2015.

A code has 18 characters from the 31-character set ``0-9 A-H J-N P-R T-U W-Y`` (no I, O,
S, V, Z). Character 18 is a check character: with character values ``v_i`` (their index in
the set) and weights ``3^(i) mod 31`` (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24,
10, 30, 28), check = ``31 - (sum(v_i * w_i) mod 31)``, where 31 becomes 0.

:func:`validate_uscc` works on a whole :class:`pandas.Series` at once (numpy over a
``(n, 18)`` byte matrix); the scalar helpers serve tests and synthetic data.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import pandas as pd

from geo._unique import nfkc

__all__ = [
    "USCC_CHARSET",
    "USCC_WEIGHTS",
    "USCC_ISSUES",
    "normalise_uscc",
    "validate_uscc",
    "uscc_check_char",
    "make_uscc",
]

logger = logging.getLogger(__name__)

#: The 31 characters a code may use, in value order.
USCC_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
#: Weights of characters 1-17.
USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
#: Issue codes :func:`validate_uscc` can return (messages in ``layers/data/issues.toml``).
USCC_ISSUES: Final = ("uscc_missing", "uscc_length", "uscc_charset", "uscc_check_digit")

_LENGTH: Final = 18
_CHARSET_RE: Final = f"[{USCC_CHARSET}]{{{_LENGTH}}}"
# ASCII byte -> character value (-1 = not in the set).
_VALUE_TABLE: Final = np.full(256, -1, dtype=np.int64)
_VALUE_TABLE[np.frombuffer(USCC_CHARSET.encode("ascii"), dtype=np.uint8)] = np.arange(31)
_WEIGHTS_ARR: Final = np.asarray(USCC_WEIGHTS, dtype=np.int64)


def normalise_uscc(codes: pd.Series) -> pd.Series:
    """Strip, upper-case and fold full-width characters (NFKC) of each code.

    Missing values become empty strings.
    """
    text = codes.astype(object).where(codes.notna(), "").astype(str)
    return nfkc(text).str.strip().str.upper().astype(object)


def validate_uscc(codes: pd.Series) -> pd.Series:
    """Check unified social credit codes, vectorised.

    Parameters
    ----------
    codes
        Raw registry values (any dtype; normalised with :func:`normalise_uscc` first).

    Returns
    -------
    pandas.Series
        Same index; ``''`` for a valid code, else one of :data:`USCC_ISSUES`.
    """
    norm = normalise_uscc(codes)
    issue = pd.Series("", index=codes.index, dtype=object)
    missing = norm.eq("")
    bad_length = ~missing & norm.str.len().ne(_LENGTH)
    bad_charset = ~missing & ~bad_length & ~norm.str.fullmatch(_CHARSET_RE).astype(bool)
    well_formed = ~(missing | bad_length | bad_charset)
    if well_formed.any():
        raw = "".join(norm[well_formed].tolist()).encode("ascii")
        values = _VALUE_TABLE[np.frombuffer(raw, dtype=np.uint8).reshape(-1, _LENGTH)]
        expected = (31 - (values[:, :17] @ _WEIGHTS_ARR) % 31) % 31
        bad_check = pd.Series(False, index=codes.index)
        bad_check[well_formed] = expected != values[:, 17]
    else:
        bad_check = pd.Series(False, index=codes.index)
    issue[missing] = "uscc_missing"
    issue[bad_length] = "uscc_length"
    issue[bad_charset] = "uscc_charset"
    issue[bad_check] = "uscc_check_digit"
    return issue


def uscc_check_char(first17: str) -> str:
    """Return the check character for the first 17 characters of a code.

    Raises
    ------
    ValueError
        If ``first17`` is not 17 characters from :data:`USCC_CHARSET`.
    """
    body = first17.strip().upper()
    if len(body) != 17 or any(ch not in USCC_CHARSET for ch in body):
        raise ValueError(
            f"USCC body '{first17}' must be 17 characters from {USCC_CHARSET} (GB 32100-2015)."
        )
    total = sum(USCC_CHARSET.index(ch) * w for ch, w in zip(body, USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def make_uscc(serial: int, *, prefix: str = "91", region: str = "440300") -> str:
    """Build a valid synthetic code for tests and synthetic registries.

    Parameters
    ----------
    serial
        Non-negative integer encoded in base 31 as the 9-character organisation part.
    prefix
        Registration authority + organisation type (2 characters; ``91`` = enterprise).
    region
        6-digit administrative division code.

    Returns
    -------
    str
        An 18-character code whose check character is correct.
    """
    if serial < 0 or serial >= 31**9:
        raise ValueError(f"serial must be in [0, 31**9), got {serial}")
    digits = []
    rest = serial
    for _ in range(9):
        rest, d = divmod(rest, 31)
        digits.append(USCC_CHARSET[d])
    first17 = f"{prefix}{region}{''.join(reversed(digits))}"
    return first17 + uscc_check_char(first17)
