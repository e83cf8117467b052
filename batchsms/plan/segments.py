"""SMS segment counts that agree exactly with Twilio's message-segment-calculator.

SEGMENTS.md describes the reference algorithm. `count` ports it for one text and is
the reference; `batchsms.plan.segment_columns.count_column` gives the same numbers for a
whole column of texts without a Python loop over rows (it imports this module, never the
reverse).

Rules in short: a text is UCS-2 if any grapheme is not a single GSM 03.38 character.
A segment holds 1120 bits; concatenated parts carry a 48-bit header, so one part
holds 153 septets (GSM-7) or 67 UTF-16 units (UCS-2) against 160 and 70 for a single
segment. Graphemes are atomic (an extension character's ESC pair, a surrogate pair, a
flag or a ZWJ family never straddles two parts), CRLF counts as two characters, and
the empty text is one GSM-7 segment. Graphemes come from the `regex` module's \\X.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import regex

from batchsms.plan.charsets import GSM_BASIC, GSM_EXTENSION, SMART_ENCODING

GSM7 = "GSM-7"
UCS2 = "UCS-2"
SEGMENT_BITS = 1120
HEADER_BITS = 48

_GRAPHEME = regex.compile(r"\X")
_SEPTETS = {**dict.fromkeys(GSM_BASIC, 1), **dict.fromkeys(GSM_EXTENSION, 2)}
_SMART = str.maketrans(SMART_ENCODING)
_INVISIBLE = {"Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cn", "Cs", "Mn", "Me", "Mc"}


@dataclass(frozen=True, slots=True)
class SegmentCount:
    """How the calculator encodes and splits one text.

    `characters` is the calculator's numberOfCharacters: septets for GSM-7 (an
    extension character counts 2), graphemes for UCS-2. `non_gsm` holds the distinct
    graphemes that forced UCS-2, in order of first appearance (empty for GSM-7).
    """

    encoding: str
    segments: int
    characters: int
    non_gsm: tuple[str, ...]


def smart_replace(text: str) -> str:
    """Apply Twilio's Smart Encoding look-alike map, code point by code point."""
    return text.translate(_SMART)


def count(text: str, smart: bool = False) -> SegmentCount:
    """Encoding, segments and characters of `text`, exactly as the calculator reports.

    With `smart`, Smart Encoding is applied first (see `smart_replace`).
    """
    if smart:
        text = smart_replace(text)
    graphemes = _graphemes(text)
    non_gsm = tuple(dict.fromkeys(g for g in graphemes if g not in _SEPTETS))
    if non_gsm:
        bits = [16 * _utf16_units(g) for g in graphemes]
        return SegmentCount(UCS2, _build_segments(bits), len(graphemes), non_gsm)
    septets = [_SEPTETS[g] for g in graphemes]
    return SegmentCount(GSM7, _build_segments([7 * s for s in septets]), sum(septets), ())


def describe_chars(chars: Iterable[str], limit: int = 5) -> str:
    """The first `limit` characters, space-separated, for a human reading a report.

    A character that would not show (whitespace, control, format or a lone combining
    mark) is written as U+XXXX, joined with "+" when it is several code points.
    """
    return " ".join(_describe(g) for g in itertools.islice(chars, limit))


def _describe(grapheme: str) -> str:
    categories = [unicodedata.category(c) for c in grapheme]
    hidden = categories[0] in _INVISIBLE or any(c[0] in "ZC" and c != "Cf" for c in categories)
    if hidden:
        return "+".join(f"U+{ord(c):04X}" for c in grapheme)
    return grapheme


def _graphemes(text: str) -> list[str]:
    out: list[str] = []
    for g in _GRAPHEME.findall(text):
        if g == "\r\n":
            out += ("\r", "\n")
        else:
            out.append(g)
    return out


def _utf16_units(grapheme: str) -> int:
    return len(grapheme.encode("utf-16-le", "surrogatepass")) >> 1


class _Segment:
    __slots__ = ("bits", "header", "used")

    def __init__(self, header: bool) -> None:
        self.header = header
        self.bits: list[int] = []
        self.used = HEADER_BITS if header else 0

    def free(self) -> int:
        return SEGMENT_BITS - self.used

    def push(self, bits: int) -> None:
        self.bits.append(bits)
        self.used += bits

    def add_header(self) -> list[int]:
        self.header = True
        self.used += HEADER_BITS
        moved: list[int] = []
        while self.free() < 0:
            moved.insert(0, self.bits.pop())
            self.used -= moved[0]
        return moved


def _build_segments(bits: list[int]) -> int:
    """Port of SegmentedMessage._buildSegments: how many segments the graphemes fill."""
    segments = [_Segment(header=False)]
    current = segments[0]
    for size in bits:
        if current.free() < size:
            previous, current = current, _Segment(header=True)
            segments.append(current)
            if not previous.header:
                for moved in previous.add_header():
                    current.push(moved)
        current.push(size)
    return len(segments)
