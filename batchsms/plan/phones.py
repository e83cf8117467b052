"""Phone numbers as written in a contact sheet, turned into E.164, a country and a reason.

Every cell ends up with ``e164`` (``"+4520123456"``), ``country`` (the ISO 3166 region of the
number as ``phonenumbers.region_code_for_number`` gives it; ``"001"`` for non-geographic
numbers such as +800) and ``reason``: none when the number can receive an SMS, otherwise a
short sentence. ``e164`` and ``country`` are filled for every valid number, sendable or not.

Cleaning
  Spaces (also no-break, thin and zero-width ones), dots, dashes, slashes and brackets are
  dropped. A leading ``+`` or ``00`` means a country calling code follows. A ``tel:`` prefix
  is allowed. Anything else (letters, commas, ``#``, ``ext``...) makes the cell "not a phone
  number"; a cell with nothing left (empty, ``-``) is "no phone number".
Spreadsheet artefacts
  Excel's ways of keeping a number as text are undone first: ``'+4520123459`` (a leading
  apostrophe) and ``="+4520123460"`` (a text formula) read as ``+4520123459`` and
  ``+4520123460``. ``4520123456.0`` (a number exported as a float) is read as
  ``4520123456``. Scientific notation is read only when the mantissa holds every digit (at
  least exponent + 1 digits, any beyond those zero): ``4.520123456E+09`` is ``4520123456``,
  while ``4.5123E+09`` is "digits lost to scientific notation (4.5123E+09): format the phone
  column as text and export again".
Numbers without ``+`` or ``00``
  They are national numbers of the row's region: the country column when it has a value
  (case-insensitive; a value that is no ISO code gives "unknown country 'Denmark' in the
  country column: use a two-letter ISO code"), else ``default_region``. The country column is
  not consulted for numbers with ``+`` or ``00``. A national number is read exactly as
  ``phonenumbers.parse(digits, region)`` reads it: it strips the national prefix
  (``06 12 34 56 78`` for FR), and the region's own calling code when that makes the number
  fit (``4520123456`` for DK). When that reading is not a valid number but the digits read as
  an international number are, the international reading wins: the "+" was lost
  (``33612345678`` for DK is French). With no region at all, digits are read as international.
Validity and SMS
  ``phonenumbers.is_valid_number`` decides validity. An invalid number's reason names what was
  tried: "not a valid number for DK", "not a valid number for +45", "not a valid number:
  unknown country code", "not a valid number (no country code and no default_region)".
  ``phonenumbers.number_type`` decides whether an SMS can arrive. Sendable: mobile,
  fixed-line-or-mobile (every +1 number, where the two cannot be told apart), VoIP and
  personal numbers. Not sendable: fixed line ("fixed line: cannot receive SMS"), pager (paging
  networks are not reached by SMS gateways), toll-free, premium-rate, shared-cost, UAN and
  voicemail numbers ("toll-free number: cannot receive SMS", ...). A valid number always has a
  known type, since phonenumbers defines validity as matching one, so "unknown but valid" does
  not occur.

``normalize_one`` is the reference: one number at a time, directly on phonenumbers.
``batchsms.plan.phone_columns.normalize`` gives the same answer for a whole column. It
evaluates phonenumbers' own metadata patterns with RE2 over columns (pyarrow.compute) and
hands the rows it cannot decide exactly (``tel:``, scientific notation, odd lengths, another
country's dialling prefix such as 011 for US, national prefixes whose transform rule
applies) to ``normalize_one``. The column module imports this one, never the reverse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd
import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberFormat
from phonenumbers import PhoneNumberType as Kind

EMPTY = "no phone number"
JUNK = "not a phone number"
NO_REGION = "not a valid number (no country code and no default_region)"
UNKNOWN_CODE = "not a valid number: unknown country code"
LOST_DIGITS = ("digits lost to scientific notation ({}): format the phone column as text "
               "and export again")
UNKNOWN_COUNTRY = "unknown country {!r} in the country column: use a two-letter ISO code"
REASONS_BY_KIND = {
    Kind.FIXED_LINE: "fixed line: cannot receive SMS",
    Kind.PAGER: "pager number: cannot receive SMS",
    Kind.TOLL_FREE: "toll-free number: cannot receive SMS",
    Kind.PREMIUM_RATE: "premium-rate number: cannot receive SMS",
    Kind.SHARED_COST: "shared-cost number: cannot receive SMS",
    Kind.UAN: "UAN number: cannot receive SMS",
    Kind.VOICEMAIL: "voicemail number: cannot receive SMS",
}

_SPACES = (" \t\n\r\f\v\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
           "\u2009\u200a\u200b\u2028\u2029\u202f\u205f\u3000\ufeff")
_SEPARATORS = _SPACES + ".-/()[]\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_DROP = str.maketrans("", "", _SEPARATORS)
_FLOAT = re.compile(r"[0-9]+\.0")
# Excel's text escapes, undone before anything else, in the column path too (the same
# patterns run there under RE2, which reads these classes as Python's re does).
TEXT_ESCAPES = ((f"^[{_SPACES}]*'", ""), (f'^[{_SPACES}]*="([^"]*)"[{_SPACES}]*$', r"\1"))
_SCIENTIFIC = re.compile(r"([0-9])(?:[.,]([0-9]+))?[eE]\+?([0-9]{1,3})")


@dataclass(frozen=True, slots=True)
class Normalized:
    """One number's outcome; `reason` is None exactly when the number can receive an SMS."""

    e164: str | None
    country: str | None
    reason: str | None


def normalize_one(raw: str, default_region: str | None = None,
                  region: str | None = None) -> Normalized:
    """Normalise one number as written in a sheet; `region` is the row's country column value.

    The reference for ``phone_columns.normalize``, built directly on phonenumbers; the module
    docstring states the rules. Raises ValueError when `default_region` is not an ISO code.
    """
    default = _region_code(default_region)
    cleaned = _clean(raw)
    if isinstance(cleaned, Normalized):
        return cleaned
    international, digits = cleaned
    if international:
        return _read("+" + digits) or _failed(_international_failure(digits))
    if _is_missing(region) or not str(region).strip():
        tried = default
    elif str(region).strip().upper() in phonenumbers.SUPPORTED_REGIONS:
        tried = str(region).strip().upper()
    else:
        return _failed(UNKNOWN_COUNTRY.format(str(region).strip()))
    if tried is None:
        return _read("+" + digits) or _failed(NO_REGION)
    return (_read(digits, tried) or _read("+" + digits)
            or _failed(f"not a valid number for {tried}"))


def _failed(reason: str) -> Normalized:
    return Normalized(None, None, reason)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _region_code(region: str | None) -> str | None:
    if region is None:
        return None
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"default_region {region!r} is not an ISO 3166 code phonenumbers knows")
    return code


def _clean(raw: str | None) -> tuple[bool, str] | Normalized:
    if _is_missing(raw):
        return _failed(EMPTY)
    for pattern, replacement in TEXT_ESCAPES:
        raw = re.sub(pattern, replacement, raw)
    text = raw.strip(_SPACES)
    if _FLOAT.fullmatch(text):
        return False, text[:-2]
    scientific = _SCIENTIFIC.fullmatch(text)
    if scientific:
        return _unscientific(text, scientific)
    if text[:4].lower() == "tel:":
        text = text[4:]
    text = text.translate(_DROP)
    if not text:
        return _failed(EMPTY)
    international = text.startswith(("+", "00"))
    digits = text[1:] if text[0] == "+" else text[2:] if international else text
    if not (digits.isascii() and digits.isdigit()):
        return _failed(JUNK)
    return international, digits


def _unscientific(text: str, match: re.Match[str]) -> tuple[bool, str] | Normalized:
    mantissa = match[1] + (match[2] or "")
    width = int(match[3]) + 1
    if len(mantissa) < width:
        return _failed(LOST_DIGITS.format(text))
    if mantissa[width:].strip("0"):
        return _failed(JUNK)
    return False, mantissa[:width]


def _read(text: str, region: str | None = None) -> Normalized | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return Normalized(phonenumbers.format_number(number, PhoneNumberFormat.E164),
                      phonenumbers.region_code_for_number(number),
                      REASONS_BY_KIND.get(phonenumbers.number_type(number)))


def _calling_code(digits: str) -> tuple[int, int]:
    """The country calling code digits start with, and its width, as phonenumbers finds it."""
    if digits.startswith("0"):
        return 0, 0
    for width in range(1, min(3, len(digits)) + 1):
        if int(digits[:width]) in COUNTRY_CODE_TO_REGION_CODE:
            return int(digits[:width]), width
    return 0, 0


def _international_failure(digits: str) -> str:
    code, _ = _calling_code(digits)
    return f"not a valid number for +{code}" if code else UNKNOWN_CODE
