"""How a CSV sheet's bytes become text: its encoding, decided before any row is read.

Unless ``contacts.encoding`` names one: a UTF-16 byte-order mark means UTF-16, and so does
the zero-byte pattern of UTF-16 text without one (every other byte zero); any other zero
byte means a binary file, refused. Otherwise the whole file is scanned: it is UTF-8 (with
or without BOM) if every byte sequence is valid UTF-8. A file that is mostly UTF-8 but
has a few bytes that are not (a row pasted from a Windows-1252 file) is read as UTF-8 with
those bytes read as Windows-1252, and a :class:`BatchsmsWarning` names the first row that
holds one. A file with no UTF-8 sequence at all is Windows-1252 if it has none of the five
bytes cp1252 leaves undefined, else Latin-1. Deciding from the whole file means a stray byte
in row 9,000,000 never leaves earlier chunks decoded differently from later ones.

A named encoding must be a text encoding (not ``rot13`` or ``zlib``), must decode the file,
and UTF-16/32 must look like it (zero bytes).

The scan also counts double quotes: an odd count is the sign of a quote that never closes,
which the contacts reader then looks for (an unclosed quote would swallow every row after).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from batchsms.errors import BatchsmsWarning, CampaignError, located
from batchsms.plan.workbook import OLE_MAGIC

MIXED = "batchsms_mixed_utf8"  # UTF-8, with bytes that are not UTF-8 read as cp1252
_SCAN = 1 << 24
_HEAD = 1 << 20
_PEEK = 1 << 16
_CP1252_HOLES = re.compile(b"[\x81\x8d\x8f\x90\x9d]")
_UTF8_SEQUENCE = re.compile(b"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|"
                            b"[\xf0-\xf4][\x80-\xbf]{3}")


@dataclass(frozen=True)
class Encoding:
    """The decision: the codec name, and whether the file's double quotes do not pair up."""

    name: str
    odd_quotes: bool = False


@dataclass(frozen=True)
class _Where:
    path: Path
    key: str
    source: Path | None

    def error(self, what: str, fix: str, own_file: bool = True) -> CampaignError:
        if own_file:
            return CampaignError(located(self.path, None, what, fix.format(key=self.key)))
        return CampaignError(located(self.source or self.path, "contacts.encoding", what, fix))


def detect(path: Path, key: str, source: Path | None, explicit: str | None,
           whole_file: bool) -> Encoding:
    """Decide ``path``'s encoding (see the module docstring); raise CampaignError if it
    cannot be read as text. With ``whole_file`` False only the first megabyte is read."""
    where = _Where(path, key, source)
    limit = None if whole_file else _HEAD
    with path.open("rb") as f:
        head = f.read(_PEEK)
        _refuse_non_text(where, head)
        if explicit:
            return Encoding(_checked(where, f, head, explicit, limit))
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return Encoding("utf-16")
        if b"\x00" in head:
            return Encoding(_utf16_without_bom(where, head))
        return _scan(where, f, limit)


def _refuse_non_text(where: _Where, head: bytes) -> None:
    if head.startswith(b"PK\x03\x04"):
        raise where.error("this is an Excel workbook, not a CSV file",
                          "Rename it to .xlsx and update {key}")
    if head.startswith(OLE_MAGIC):
        raise where.error("this is an encrypted Excel workbook or an old .xls file, not a CSV "
                          "file", "Remove the password and save it as .xlsx, or export CSV; {key} "
                          "names it")


def _utf16_without_bom(where: _Where, head: bytes) -> str:
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.3 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.3 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    raise where.error("this file holds binary data (zero bytes), not CSV text",
                      "Export the sheet as CSV (UTF-8) from the spreadsheet app; {key} names it")


def _checked(where: _Where, f: io.BufferedReader, head: bytes, explicit: str,
             limit: int | None) -> str:
    try:
        info = codecs.lookup(explicit)
    except LookupError:
        raise where.error(f"unknown encoding {explicit!r}", "Use e.g. utf-8, cp1252 or "
                          "latin-1, or remove the key to let batchsms detect it",
                          own_file=False) from None
    if not getattr(info, "_is_text_encoding", True):
        raise where.error(f"{explicit!r} is not a text encoding", "Use e.g. utf-8, cp1252 or "
                          "latin-1, or remove contacts.encoding", own_file=False)
    name = "utf-8-sig" if info.name == "utf-8" else info.name
    wide = name.startswith(("utf-16", "utf-32"))
    if (wide and b"\x00" not in head) or (not wide and b"\x00" in head) or \
            not _decodes(f, name, limit):
        raise where.error(f"{where.path.name} is not valid {explicit}", "Remove "
                          "contacts.encoding to let batchsms detect the encoding, or name the "
                          "right one", own_file=False)
    return name


def _scan(where: _Where, f: io.BufferedReader, limit: int | None) -> Encoding:
    if limit is None and (quotes := _utf8_quotes(f)) is not None:
        return Encoding("utf-8-sig", quotes % 2 == 1)
    decoder = codecs.getincrementaldecoder("utf-8")()
    quotes = offset = 0
    bad: int | None = None
    for block in _blocks(f, limit):
        quotes += block.count(b'"')
        if bad is None and (decoder.getstate()[0] or not block.isascii()):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
        offset += len(block)
    if bad is None:
        try:
            decoder.decode(b"", final=limit is None)
        except UnicodeDecodeError:
            bad = offset - 1
    odd = quotes % 2 == 1 and limit is None
    if bad is None:
        return Encoding("utf-8-sig", odd)
    if _mostly_utf8(f, limit):
        if limit is None:
            _warn_mixed(where, f, bad)
        return Encoding(MIXED, odd)
    return Encoding("latin-1" if _has_cp1252_holes(f, limit) else "cp1252", odd)


def _utf8_quotes(f: io.BufferedReader) -> int | None:
    """The whole file's double quotes if it is valid UTF-8, else None (then the decoder
    finds where it is not). Arrow validates without building the text Python's decoder
    builds: a quarter of the time on a million rows, before the first row can be read."""
    import numpy as np
    import pyarrow as pa

    quotes = 0
    carry = b""  # a character cut at the end of the previous block
    for block in _blocks(f, None):
        quotes += block.count(b'"')
        if carry or not block.isascii():
            data = carry + block
            cut = _complete(data)
            carry = data[cut:]
            whole = pa.LargeStringArray.from_buffers(
                1, pa.py_buffer(np.array([0, cut], np.int64)), pa.py_buffer(data))
            try:
                whole.validate(full=True)
            except pa.ArrowInvalid:
                return None
    return None if carry else quotes


def _complete(data: bytes) -> int:
    """Where the last whole UTF-8 sequence of ``data`` ends (a cut one is left after it)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


def _mostly_utf8(f: io.BufferedReader, limit: int | None) -> bool:
    """More valid multi-byte UTF-8 sequences than stray bytes: a UTF-8 file with a few
    pasted cp1252 bytes, not a cp1252 file."""
    good = stray = 0
    for block in _blocks(f, limit):
        if block.isascii():
            continue
        found = _UTF8_SEQUENCE.findall(block)
        good += len(found)
        stray += sum(byte >= 0x80 for byte in block) - sum(len(s) for s in found)
    return good > 0 and good >= stray


def _warn_mixed(where: _Where, f: io.BufferedReader, bad: int) -> None:
    f.seek(0)
    before = f.read(bad)
    if b'"' in before:  # quoted values may span lines: count records, not lines
        text = before.decode("utf-8", errors="replace")
        row = sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) or 1
        row += text.endswith(("\n", "\r"))
    else:
        row = before.count(b"\n") + 1
    warnings.warn(BatchsmsWarning(
        f"{where.path}: row {row}: this row is not valid UTF-8 like the rest of the file (a "
        "Windows-1252 character?); batchsms reads such bytes as Windows-1252. Check the row, "
        "and save the file as UTF-8 to be sure"), stacklevel=2)


def _decodes(f: io.BufferedReader, encoding: str, limit: int | None) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for block in _blocks(f, limit):
            if decoder.getstate()[0] or not block.isascii():
                decoder.decode(block)
        decoder.decode(b"", final=limit is None)
    except UnicodeDecodeError:
        return False
    return True


def _has_cp1252_holes(f: io.BufferedReader, limit: int | None) -> bool:
    return any(_CP1252_HOLES.search(block) for block in _blocks(f, limit))


def _blocks(f: io.BufferedReader, limit: int | None) -> Iterator[bytes]:
    f.seek(0)
    if limit is not None:
        yield f.read(limit)
        return
    while block := f.read(_SCAN):
        yield block


# -- the mixed codec: UTF-8, with a byte that is not UTF-8 read as Windows-1252 ----------


def _as_cp1252(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start:exc.end]
    return bad.decode("cp1252", errors="replace"), exc.end


codecs.register_error("batchsms_cp1252", _as_cp1252)


class _MixedDecoder(codecs.IncrementalDecoder):
    def __init__(self, errors: str = "strict") -> None:
        super().__init__(errors)
        self._utf8 = codecs.getincrementaldecoder("utf-8")("batchsms_cp1252")

    def decode(self, input: bytes, final: bool = False) -> str:
        return self._utf8.decode(input, final)

    def reset(self) -> None:
        self._utf8.reset()

    def getstate(self) -> tuple[bytes, int]:
        return self._utf8.getstate()

    def setstate(self, state: tuple[bytes, int]) -> None:
        self._utf8.setstate(state)


def _search(name: str) -> codecs.CodecInfo | None:
    if name.replace("-", "_") != MIXED:
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(
        utf8.encode, lambda data, errors="strict": (_MixedDecoder().decode(data, True),
                                                    len(data)),
        incrementalencoder=utf8.incrementalencoder, incrementaldecoder=_MixedDecoder,
        streamreader=utf8.streamreader, streamwriter=utf8.streamwriter, name=MIXED)


codecs.register(_search)
