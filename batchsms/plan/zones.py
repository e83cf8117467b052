"""Each number's IANA time zones, as ``phonenumbers.timezone`` gives them, for a whole column.

phonenumbers maps a geographic number (every +1 number, and mobile numbers in the
countries where mobile numbers have area codes: AR, BR, CN, ID, MX) to zones by its longest
known prefix, and any other number to the zones of its whole country. Here the same
tables are applied to whole columns: the numbers as integers, one sorted-array search per
prefix length, instead of a parse per row. Numbers of countries that have a single set
of zones skip even that. One difference is deliberate: a fixed-line-or-mobile number
outside +1 gets its country's zones (a superset of its prefix's), which only makes the
"every zone" rule stricter.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberType
from phonenumbers.timezone import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

SEPARATOR = "|"  # between the zones of a number that has several
_POWERS = 10 ** np.arange(19, dtype=np.int64)
_KNOWN_CODES = np.isin(np.arange(1000), list(COUNTRY_CODE_TO_REGION_CODE))  # by calling code


def number_keys(e164: pd.Series) -> np.ndarray:
    """E.164 numbers as int64 keys (-1 where there is no number): cheap to sort and compare.

    An E.164 number's digits never start with 0, so the key also gives their count."""
    digits = pc.utf8_slice_codeunits(pa.array(e164, pa.large_string()), 1)
    keys = pc.cast(pc.if_else(pc.equal(digits, ""), None, digits), pa.int64())
    return pc.fill_null(keys, -1).to_numpy()


def zones_column(e164: pd.Series, keys: np.ndarray | None = None) -> pd.Series:
    """``"America/New_York"`` or ``"Australia/Perth|Australia/Sydney|..."`` for each number;
    NA where there is no number or phonenumbers knows no zone for it. ``keys``: the
    numbers' :func:`number_keys`, when the caller has them already."""
    tables = _tables()
    numbers = np.maximum(number_keys(e164) if keys is None else keys, 0)
    length = np.searchsorted(_POWERS, numbers, side="right")  # digits (0 for 0)
    code = _calling_codes(numbers, length)
    found = tables.country[code]
    by_prefix = tables.by_prefix[code]
    if by_prefix.any():
        hit = _longest_prefix(numbers[by_prefix], length[by_prefix], tables)
        found[by_prefix] = np.where(hit >= 0, hit, found[by_prefix])
    # Arrow's take from the few distinct texts: a numpy object array costs ten times more.
    texts = tables.arrow_texts.take(pa.array(found, mask=found < 0))
    return pd.Series(pd.array(texts, dtype="string"), index=e164.index)


def _head(numbers: np.ndarray, length: np.ndarray, digits: int) -> np.ndarray:
    """The first ``digits`` digits of each number (-1 where it is shorter)."""
    short = length < digits
    return np.where(short, -1, numbers // _POWERS[np.maximum(length - digits, 0)])


def _calling_codes(numbers: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each number's country calling code (0 where none; calling codes are prefix-free)."""
    code = np.zeros(len(numbers), dtype=np.int64)
    for digits in (1, 2, 3):
        head = _head(numbers, length, digits)
        hit = (code == 0) & _KNOWN_CODES[np.maximum(head, 0)]
        code[hit] = head[hit]
    return code


class _Tables:
    """phonenumbers' zone data as arrays: zone texts, per prefix length, per calling code."""

    def __init__(self) -> None:
        texts = sorted({t for t in map(_zones_text, TIMEZONE_DATA.values()) if t})
        self.arrow_texts = pa.array(texts, pa.large_string())
        number = {t: i for i, t in enumerate(texts)}
        self.prefixes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for digits in range(1, TIMEZONE_LONGEST_PREFIX + 1):
            pairs = sorted((int(k), number.get(_zones_text(v) or "", -1))
                           for k, v in TIMEZONE_DATA.items() if len(k) == digits)
            keys = np.array([k for k, _ in pairs], dtype=np.int64)
            self.prefixes[digits] = (keys, np.array([v for _, v in pairs], dtype=np.int64))
        self.country = np.full(1000, -1, dtype=np.int64)
        self.by_prefix = np.zeros(1000, dtype=bool)
        variety: dict[int, set[tuple[str, ...]]] = {}
        for key, zones in TIMEZONE_DATA.items():
            code = next((int(key[:n]) for n in (1, 2, 3)
                         if int(key[:n]) in COUNTRY_CODE_TO_REGION_CODE), None)
            if code is not None:
                variety.setdefault(code, set()).add(zones)
        for code in COUNTRY_CODE_TO_REGION_CODE:
            text = _country_zones(code)
            self.country[code] = number[text] if text else -1
            self.by_prefix[code] = _geographic(code) and len(variety.get(code, ())) > 1


@cache
def _tables() -> _Tables:
    return _Tables()


def _geographic(code: int) -> bool:
    """Whether this country's sendable numbers take their zones from their own prefix
    (when its prefixes have different zones at all)."""
    return code == 1 or phonenumbers.is_number_type_geographical(PhoneNumberType.MOBILE, code)


def _country_zones(code: int) -> str | None:
    """The zones phonenumbers gives a number that has no zones of its own prefix."""
    text = str(code)
    for length in range(len(text), 0, -1):
        if text[:length] in TIMEZONE_DATA:
            return _zones_text(TIMEZONE_DATA[text[:length]])
    return None


def _zones_text(zones: tuple[str, ...] | None) -> str | None:
    known = [z for z in zones or () if z != "Etc/Unknown"]
    return SEPARATOR.join(known) or None


def _longest_prefix(numbers: np.ndarray, length: np.ndarray, tables: _Tables) -> np.ndarray:
    found = np.full(len(numbers), -1, dtype=np.int64)
    for digits in range(TIMEZONE_LONGEST_PREFIX, 0, -1):
        keys, values = tables.prefixes[digits]
        todo = found < 0
        if not todo.any() or not len(keys):
            continue
        head = _head(numbers[todo], length[todo], digits)
        at = np.minimum(np.searchsorted(keys, head), len(keys) - 1)
        hit = keys[at] == head
        found[np.flatnonzero(todo)[hit]] = values[at[hit]]
    return found
