"""How counts and money are worded for a person (the terminal and report.html).

Files keep exact values (a price list's four decimals, every unit); what a person
reads is rounded to the currency's usual precision and counted with the right plural.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

# ISO 4217 minor units of the currencies that do not use two decimals (the standard's
# table, 2024); every other code has two.
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}


def minor_units(currency: str) -> int:
    """Decimal places a currency is usually written with (EUR 2, JPY 0, KWD 3)."""
    return _MINOR_UNITS.get(currency.upper(), 2)


def money(amount: Decimal | str, currency: str) -> str:
    """``EUR 1,234.50``: rounded half up to the currency's precision, for reading.

    An amount smaller than the currency's smallest unit (a price of EUR 0.0079) keeps its
    own digits, because rounding would show it as free or double its price.
    """
    value = Decimal(amount)
    places = minor_units(currency)
    step = Decimal(1).scaleb(-places)
    if value and abs(value) < step:
        return f"{currency} {value.normalize():f}"
    return f"{currency} {value.quantize(step, rounding=ROUND_HALF_UP):,}"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 message``, ``2 messages``, ``12,981 recipients`` (``many`` for irregular nouns)."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def iso(seconds: float | None) -> str | None:
    """A time as ISO 8601 UTC (``2026-12-01T08:00:00Z``), the one format of every report,
    JSON object and status line; None stays None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shown(path: Path) -> str:
    """A file's path for people: relative to the working folder when it is inside it
    (``reports/spring/dry-run.csv``, not ``campaigns/../reports/...``), else absolute."""
    real = path.resolve()
    try:
        return str(real.relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):  # elsewhere, or the working folder is gone
        return str(real)
