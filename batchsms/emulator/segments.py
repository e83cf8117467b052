"""The emulators' own SMS segment count: a referee must not share code with what it referees.

Written from GSM 03.38 and 3GPP TS 23.040 (not from ``batchsms.plan.segments``), and held
to the golden vectors of ``tests/fixtures/segments_golden.json``, made by the
sms-segments-calculator that ``SEGMENTS.md`` takes as the reference:

- GSM-7 when every character is in the default alphabet or its extension table (an
  extension character takes two septets); 160 septets in one segment, 153 per part;
- UCS-2 otherwise: UTF-16 code units, 70 in one segment, 67 per part;
- a user-perceived character (a base with its combining marks, an ESC pair, a surrogate
  pair, a ZWJ sequence, a flag) is never split between two parts.

Graphemes are approximated without a Unicode segmentation library (combining marks,
variation selectors, skin tones, ZWJ joins, keycaps, regional-indicator pairs), which
covers what SMS texts carry.
"""

from __future__ import annotations

import unicodedata

GSM7, UCS2 = "GSM-7", "UCS-2"
BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
EXTENSION = frozenset("\f^{}\\[~]|€")
_ZWJ = "\u200d"
_REGIONAL = range(0x1F1E6, 0x1F200)
_MODIFIERS = range(0x1F3FB, 0x1F400)


def _extends(char: str) -> bool:
    """Whether ``char`` belongs to the grapheme before it."""
    code = ord(char)
    return (unicodedata.category(char) in {"Mn", "Me", "Mc"} or char == _ZWJ
            or 0xFE00 <= code <= 0xFE0F or code in _MODIFIERS or 0xE0020 <= code <= 0xE007F)


def graphemes(text: str) -> list[str]:
    """``text`` cut into user-perceived characters (CR and LF stay apart, as the
    reference counts them)."""
    out: list[str] = []
    for char in text:
        if out and (_extends(char) or _pairs(out[-1], char)
                    or (out[-1].endswith(_ZWJ) and _pictographic(out[-1][0])
                        and _pictographic(char))):
            out[-1] += char
        else:
            out.append(char)
    return out


def _pictographic(char: str) -> bool:
    """An emoji a ZWJ may join to the one before (a family, a profession...)."""
    return ord(char) >= 0x1F000 or unicodedata.category(char) == "So"


def _pairs(before: str, char: str) -> bool:
    """A second regional indicator completes a flag."""
    return (len(before) == 1 and ord(before) in _REGIONAL and ord(char) in _REGIONAL)


def count(text: str) -> tuple[int, str]:
    """``(segments, encoding)`` of ``text``; the empty text is one GSM-7 segment."""
    units = graphemes(text)
    if all(g in BASIC or g in EXTENSION for g in units):
        return _parts([2 if g in EXTENSION else 1 for g in units], 160, 153), GSM7
    return _parts([len(g.encode("utf-16-le")) // 2 for g in units], 70, 67), UCS2


def _parts(sizes: list[int], single: int, per_part: int) -> int:
    if sum(sizes) <= single:
        return 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > per_part:
            parts, used = parts + 1, 0
        used += size
    return parts
