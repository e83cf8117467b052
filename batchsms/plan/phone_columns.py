"""Phone numbers for a whole column at once: `normalize`, equal row by row to
`batchsms.plan.phones.normalize_one` (the reference, whose module states the rules).

phonenumbers' own metadata patterns are evaluated with RE2 over columns (pyarrow.compute);
the rows that cannot be decided exactly (``tel:``, scientific notation, odd lengths,
another country's dialling prefix such as 011 for US, national prefixes whose transform
rule applies) go to the reference `normalize_one`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers import PhoneNumberType as Kind

from batchsms.plan.phones import (
    _SEPARATORS,
    _SPACES,
    EMPTY,
    JUNK,
    NO_REGION,
    REASONS_BY_KIND,
    TEXT_ESCAPES,
    UNKNOWN_CODE,
    UNKNOWN_COUNTRY,
    _calling_code,
    _region_code,
    normalize_one,
)

_LUT = 256
_MAX_NSN = 17
_SLICE = 1 << 16
_REGIONS = ("", *sorted(phonenumbers.SUPPORTED_REGIONS), "001")
_REGION_INDEX = {region: index for index, region in enumerate(_REGIONS)}
_SPECIAL_KINDS = (("premium_rate", Kind.PREMIUM_RATE), ("toll_free", Kind.TOLL_FREE),
                  ("shared_cost", Kind.SHARED_COST), ("voip", Kind.VOIP),
                  ("personal_number", Kind.PERSONAL_NUMBER), ("pager", Kind.PAGER),
                  ("uan", Kind.UAN), ("voicemail", Kind.VOICEMAIL))
_SEPARATOR_CLASS = "[" + "".join(f"\\x{{{ord(char):x}}}" for char in _SEPARATORS) + "]"
_KEPT_BYTES = ~np.isin(np.arange(256), [ord(char) for char in _SEPARATORS if char < "\x80"])
_PREFIX_CODES = np.array([_calling_code(f"{number:0{width}d}")
                          for width in (1, 2, 3) for number in range(10**width)], np.int32)
_PREFIX_BASE = np.array([0, 0, 10, 110])
_LITERALS = re.compile(r"[0-9]+(?:\|[0-9]+)*")
_CAPTURE = re.compile(r"\((?!\?)")
_EMPTY, _JUNK, _SLOW, _INTERNATIONAL, _NATIONAL = range(5)
_ESCAPE_MARKS = ("'", '="')  # a text each of TEXT_ESCAPES needs to match


@dataclass(frozen=True)
class _Desc:
    pattern: str
    lengths: np.ndarray | None


@dataclass(frozen=True)
class _Prefix:
    """A pattern phonenumbers matches at the start of a number (national or IDD prefix).

    `extract` is its pattern for pc.extract_regex: group `head` spans the match and, when a
    transform rule applies, group `last` is the group whose taking part triggers the rule.
    None when RE2 cannot tell that; then every number the pattern matches goes the slow way.
    """

    pattern: str
    literals: tuple[str, ...] | None
    extract: str | None

    @classmethod
    def of(cls, pattern: str | None, transform: bool = False) -> _Prefix | None:
        if not pattern:
            return None
        literals = tuple(pattern.split("|")) if _LITERALS.fullmatch(pattern) else None
        return cls(pattern, None if transform else literals, _extractable(pattern, transform))


def _extractable(pattern: str, transform: bool) -> str | None:
    if "\\(" in pattern or re.search(r"\[[^\]]*\(", pattern):
        return None
    if not transform:
        return f"^(?P<head>{_CAPTURE.sub('(?:', pattern)})"
    opens = [match.start() for match in _CAPTURE.finditer(pattern)]
    if not opens:
        return None
    last, depth = opens[-1], 0
    for close in range(last, len(pattern)):
        depth += {"(": 1, ")": -1}.get(pattern[close], 0)
        if not depth:
            break
    if re.fullmatch(pattern[last + 1:close], ""):
        return None
    return f"^(?P<head>{_CAPTURE.sub('(?:', pattern[:last])}(?P<last>{pattern[last + 1:]})"


@dataclass(frozen=True)
class _Plan:
    """One PhoneMetadata, ready for RE2: anchored patterns and length lookup tables."""

    code: int
    general: _Desc
    special: tuple[tuple[int, _Desc], ...]
    special_any: _Desc | None
    fixed: _Desc | None
    mobile: _Desc | None
    same_fixed_mobile: bool
    leading: _Desc | None
    idd: _Prefix | None
    prefix: _Prefix | None
    too_long: np.ndarray
    strip_ok: np.ndarray


def _lut(lengths: tuple[int, ...]) -> np.ndarray:
    table = np.zeros(_LUT, bool)
    table[[length for length in lengths if 0 <= length < _LUT]] = True
    return table


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = _lut(desc.possible_length) if desc.possible_length else None
    return _Desc(f"^(?:{desc.national_number_pattern})$", lengths)


@cache
def _plan(region: str, code: int) -> _Plan:
    meta = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    general = meta.general_desc
    longest = max(general.possible_length)
    too_long = ~_lut(general.possible_length_local_only) & (np.arange(_LUT) > longest)
    special = tuple((kind, desc) for name, kind in _SPECIAL_KINDS
                    if (desc := _desc(getattr(meta, name))))
    union = "|".join(desc.pattern for _, desc in special)
    return _Plan(
        code=code, general=_desc(general), special=special,
        special_any=_Desc(union, None) if union else None,
        fixed=_desc(meta.fixed_line), mobile=_desc(meta.mobile),
        same_fixed_mobile=bool(meta.same_mobile_and_fixed_line_pattern),
        leading=(None if meta.leading_digits is None
                 else _Desc(f"^(?:{meta.leading_digits})", None)),
        idd=_Prefix.of(meta.international_prefix),
        prefix=_Prefix.of(meta.national_prefix_for_parsing,
                          bool(meta.national_prefix_transform_rule)),
        too_long=too_long, strip_ok=too_long | _lut(general.possible_length))


def _main_plan(code: int) -> _Plan:
    return _plan(COUNTRY_CODE_TO_REGION_CODE[code][0], code)


def _np(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def _parts(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (from 0) and UTF-8 bytes of a string array without nulls."""
    if not len(strings):
        return np.zeros(1, np.int32), np.zeros(0, np.uint8)
    _, offsets, data = strings.buffers()
    offsets = np.frombuffer(offsets, np.int32)[strings.offset:strings.offset + len(strings) + 1]
    data = np.zeros(0, np.uint8) if data is None else np.frombuffer(data, np.uint8)
    return offsets - offsets[0], data[offsets[0]:offsets[-1]]


def _kept(strings: pa.Array, keep: np.ndarray, counts: np.ndarray | None = None) -> pa.Array:
    """The strings with only the bytes where `keep` (a mask over all their bytes) is true.

    `counts`, when known, holds how many bytes each string keeps.
    """
    offsets, data = _parts(strings)
    if counts is None:
        filled = int(np.searchsorted(offsets[:-1], len(data)))
        counts = np.zeros(len(strings), np.int64)
        counts[:filled] = np.add.reduceat(keep.view(np.uint8), offsets[:filled], dtype=np.int32)
        counts[offsets[1:] == offsets[:-1]] = 0
    new_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.StringArray.from_buffers(len(strings), pa.py_buffer(new_offsets),
                                       pa.py_buffer(np.ascontiguousarray(data[keep])))


def _behead(strings: pa.Array, heads: np.ndarray) -> pa.Array:
    """Each string without its first heads[i] bytes."""
    rows = np.flatnonzero(heads)
    if not rows.size:
        return strings
    offsets, data = _parts(strings)
    keep = np.ones(len(data), bool)
    for head in range(int(heads.max())):
        keep[offsets[rows[heads[rows] > head]] + head] = False
    return _kept(strings, keep, np.diff(offsets) - heads)


def _lengths(strings: pa.Array) -> np.ndarray:
    return np.minimum(np.diff(_parts(strings)[0]), _LUT - 1)


def _match(strings: pa.Array, rows: np.ndarray | None, pattern: str) -> np.ndarray:
    """Whether `pattern` matches each of the strings at `rows` (None: all of them)."""
    subset = strings if rows is None or rows.size == len(strings) else strings.take(rows)
    return _np(pc.match_substring_regex(subset, pattern))


def _hits(strings: pa.Array, lengths: np.ndarray, desc: _Desc | None,
          mask: np.ndarray) -> np.ndarray:
    if desc is None or not mask.any():
        return np.zeros_like(mask)
    hit = mask & desc.lengths[lengths] if desc.lengths is not None else mask.copy()
    rows = np.flatnonzero(hit)
    if rows.size:
        hit[rows] = _match(strings, rows, desc.pattern)
    return hit


def _heads(prefix: _Prefix | None, numbers: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """How many leading digits `prefix` matches (as Python's re.match would) in each number,
    and the numbers only phonenumbers itself can handle (see `_Prefix`)."""
    heads = np.zeros(len(numbers), np.int32)
    slow = np.zeros(len(numbers), bool)
    if prefix is None or not len(numbers):
        return heads, slow
    if prefix.literals:
        for literal in prefix.literals:
            heads[(heads == 0) & _np(pc.starts_with(numbers, literal))] = len(literal)
        return heads, slow
    matched = _match(numbers, None, f"^(?:{prefix.pattern})")
    rows = np.flatnonzero(matched)
    if prefix.extract is None or not rows.size:
        return heads, matched
    found = pc.extract_regex(numbers.take(rows), prefix.extract)
    heads[rows] = np.diff(_parts(pc.struct_field(found, [0]))[0])
    if found.type.num_fields > 1:
        slow[rows] = np.diff(_parts(pc.struct_field(found, [1]))[0]) > 0
    return heads, slow


def _strip(plan: _Plan, numbers: pa.Array, gated: bool) -> tuple[pa.Array, np.ndarray]:
    """`_maybe_strip_national_prefix_carrier_code` (and, gated, parse's length check on it).

    Returns the numbers and the rows only phonenumbers itself can strip (transform rules).
    """
    heads, slow = _heads(plan.prefix, numbers)
    heads[slow] = 0
    rows = np.flatnonzero(heads)
    viable = rows[_match(numbers, rows, plan.general.pattern)] if rows.size else rows
    if viable.size:
        after = _behead(numbers.take(viable), heads[viable])
        heads[viable[~_match(after, None, plan.general.pattern)]] = 0
    if gated:
        heads[~plan.strip_ok[_lengths(numbers) - heads]] = 0
    return _behead(numbers, heads), slow


def _kinds(plan: _Plan, nsn: pa.Array, lengths: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """phonenumbers' `_number_type_helper` for the rows in `mask`; UNKNOWN elsewhere."""
    kinds = np.full(len(nsn), Kind.UNKNOWN, np.int8)
    todo = _hits(nsn, lengths, plan.general, mask)
    candidates = _hits(nsn, lengths, plan.special_any, todo)
    for kind, desc in plan.special:
        hit = _hits(nsn, lengths, desc, candidates)
        kinds[hit] = kind
        candidates &= ~hit
        todo &= ~hit
    fixed = _hits(nsn, lengths, plan.fixed, todo)
    if plan.same_fixed_mobile:
        kinds[fixed] = Kind.FIXED_LINE_OR_MOBILE
        return kinds
    mobile = _hits(nsn, lengths, plan.mobile, todo)
    kinds[mobile] = Kind.MOBILE
    kinds[fixed] = np.where(mobile[fixed], Kind.FIXED_LINE_OR_MOBILE, Kind.FIXED_LINE)
    return kinds


def _validate(code: int, nsn: pa.Array, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kind (UNKNOWN when invalid) and region index, as `region_code_for_number` picks it."""
    regions = COUNTRY_CODE_TO_REGION_CODE[code]
    lengths = _lengths(nsn)
    kinds = np.full(len(nsn), Kind.UNKNOWN, np.int8)
    country = np.zeros(len(nsn), np.int16)
    todo = mask.copy()
    for region in regions:
        plan = _plan(region, code)
        if len(regions) > 1 and plan.leading:
            hit = _hits(nsn, lengths, plan.leading, todo)
            kinds[hit] = _kinds(plan, nsn, lengths, hit)[hit]
        else:
            found = _kinds(plan, nsn, lengths, todo)
            hit = found != Kind.UNKNOWN
            kinds[hit] = found[hit]
        country[hit] = _REGION_INDEX[region]
        todo &= ~hit
        if not todo.any():
            break
    return kinds, country


def _groups(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Each distinct key with the (ascending) positions holding it."""
    small = not len(keys) or (keys.min() > -(2**15) and keys.max() < 2**15)
    order = np.argsort(keys.astype(np.int16) if small else keys, kind="stable")
    ordered = keys[order]
    for group in np.split(order, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1):
        if group.size:
            yield int(keys[group[0]]), group


def _calling_codes(digits: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Country calling code (0: none) and its width for each digit string, as `_calling_code`."""
    offsets, data = _parts(digits)
    width = np.minimum(np.diff(offsets), 3)
    number = np.zeros(len(digits), np.int64)
    for position in range(3):
        has = width > position
        number[has] = number[has] * 10 + data[offsets[:-1][has] + position] - ord("0")
    return _PREFIX_CODES[_PREFIX_BASE[width] + number].T


def _classify(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Clean a column as `_clean` does; returns the digits and each row's kind (_EMPTY...)."""
    if len(text) <= _SLICE:
        return _classify_slice(text)
    parts = [_classify_slice(text.slice(start, _SLICE)) for start in range(0, len(text), _SLICE)]
    return (pa.concat_arrays([digits for digits, _ in parts]),
            np.concatenate([kind for _, kind in parts]))


def _classify_slice(text: pa.Array) -> tuple[pa.Array, np.ndarray]:
    trimmed = pc.utf8_trim(text.fill_null(""), _SPACES)
    floaty = np.flatnonzero(_np(pc.ends_with(trimmed, ".0")))
    floaty = floaty[_match(trimmed, floaty, r"^[0-9]+\.0$")] if floaty.size else floaty
    wide = np.flatnonzero(~_np(pc.string_is_ascii(trimmed)))
    narrow = trimmed
    if wide.size:
        index = np.arange(len(trimmed))
        index[wide] = len(trimmed) + np.arange(wide.size)
        cleaned = pc.replace_substring_regex(trimmed.take(wide), _SEPARATOR_CLASS, "")
        narrow = pa.concat_arrays([trimmed, cleaned]).take(index)
    offsets, data = _parts(narrow)
    keep = _KEPT_BYTES[data]
    keep[offsets[floaty + 1] - 1] = False
    keep[offsets[floaty + 1] - 2] = False
    cleaned = _kept(narrow, keep)
    offsets, data = _parts(cleaned)
    lengths = np.diff(offsets)
    first, second = (np.zeros(len(text), np.uint8) for _ in range(2))
    first[lengths > 0] = data[offsets[:-1][lengths > 0]]
    second[lengths > 1] = data[offsets[:-1][lengths > 1] + 1]
    zeros = (first == ord("0")) & (second == ord("0"))
    heads = np.where(first == ord("+"), 1, np.where(zeros, 2, 0))
    digits = _behead(cleaned, heads)
    count = np.diff(_parts(digits)[0])
    kind = np.where(heads > 0, _INTERNATIONAL, _NATIONAL).astype(np.int8)
    junk = ~_np(pc.ascii_is_decimal(digits))
    kind[junk] = _JUNK
    odd = np.flatnonzero(junk)
    kind[odd[_match(trimmed, odd, "(?i)tel:|e")] if odd.size else odd] = _SLOW
    kind[~junk & ((count < 3) | (count > 200))] = _SLOW
    kind[lengths == 0] = _EMPTY
    return digits, kind


class _Batch:
    """One `normalize` call: outcomes are written, row by row, into arrays."""

    def __init__(self, text: pa.Array, regions: pa.Array | None, default: str | None) -> None:
        self.text, self.regions, self.default = text, regions, default
        self.reasons: dict[str | None, int] = {None: 0}
        self.reason = np.zeros(len(text), np.int32)
        self.country = np.zeros(len(text), np.int16)
        self.e164: list[tuple[np.ndarray, pa.Array]] = []
        self.slow: list[np.ndarray] = []

    def run(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        digits, kind = _classify(self.text)
        self.mark(np.flatnonzero(kind == _EMPTY), EMPTY)
        self.mark(np.flatnonzero(kind == _JUNK), JUNK)
        self.slow.append(np.flatnonzero(kind == _SLOW))
        rows = np.flatnonzero(kind == _INTERNATIONAL)
        self.international(rows, digits.take(rows), None)
        region = self.row_regions()
        national = kind == _NATIONAL
        rows = np.flatnonzero(national)
        for code, group in _groups(region[rows]):
            self.national(code, rows[group], digits.take(rows[group]))
        self.run_slow()
        return self.outcome()

    def mark(self, rows: np.ndarray, reason: str | None) -> None:
        self.reason[rows] = self.reasons.setdefault(reason, len(self.reasons))

    def row_regions(self) -> np.ndarray:
        """Region index per row (0: none); a negative value -k is the reason with index k."""
        default = _REGION_INDEX[self.default] if self.default else 0
        if self.regions is None:
            return np.full(len(self.text), default, np.int32)
        encoded = pc.dictionary_encode(self.regions)
        table = [self.region_of(value, default) for value in encoded.dictionary.to_pylist()]
        return np.array([*table, default], np.int32)[_np(encoded.indices.fill_null(len(table)))]

    def region_of(self, value: str, default: int) -> int:
        if not value.strip():
            return default
        if value.strip().upper() in phonenumbers.SUPPORTED_REGIONS:
            return _REGION_INDEX[value.strip().upper()]
        return -self.reasons.setdefault(UNKNOWN_COUNTRY.format(value.strip()), len(self.reasons))

    def national(self, region: int, rows: np.ndarray, digits: pa.Array) -> None:
        if region < 0:
            self.reason[rows] = -region
            return
        if region == 0:
            self.international(rows, digits, NO_REGION)
            return
        name = _REGIONS[region]
        failed = self.read_national(_plan(name, phonenumbers.country_code_for_region(name)),
                                    rows, digits)
        self.international(rows[failed], digits.filter(failed), f"not a valid number for {name}")

    def read_national(self, plan: _Plan, rows: np.ndarray, digits: pa.Array) -> np.ndarray:
        """`phonenumbers.parse(digits, region)` and validation; returns the invalid rows."""
        heads, slow = _heads(plan.idd, digits)
        slow |= heads > 0
        starts = _np(pc.starts_with(digits, str(plan.code))) & ~slow
        moved = np.zeros(len(rows), bool)
        failed = np.zeros(len(rows), bool)
        if starts.any():
            hit = np.flatnonzero(starts)
            whole = digits.take(hit)
            rest, stuck = _strip(plan, pc.utf8_slice_codeunits(whole, len(str(plan.code))), False)
            shorter = ~_match(whole, None, plan.general.pattern) & _match(
                rest, None, plan.general.pattern)
            take = (shorter | plan.too_long[_lengths(whole)]) & ~stuck
            slow[hit[stuck]] = True
            moved[hit[take]] = True
            failed[hit[take]] = self.finish(rows[hit[take]], _main_plan(plan.code),
                                            rest.filter(take))
        stay = ~slow & ~moved
        failed[stay] = self.finish(rows[stay], plan, digits.filter(stay))
        self.slow.append(rows[slow])
        return failed

    def international(self, rows: np.ndarray, digits: pa.Array, failure: str | None) -> None:
        """`phonenumbers.parse("+" + digits)` and validation; `failure` names invalid rows."""
        code, width = _calling_codes(digits)
        failed = (code == 0) | (_lengths(digits) <= 2)
        live = np.flatnonzero(~failed)
        for each, group in _groups(code[live]):
            hit = live[group]
            rest = pc.utf8_slice_codeunits(digits.take(hit), int(width[hit[0]]))
            failed[hit] = self.finish(rows[hit], _main_plan(each), rest)
        if failure is not None:
            self.mark(rows[failed], failure)
            return
        failed = np.flatnonzero(failed)
        for each, group in _groups(code[failed]):
            reason = f"not a valid number for +{each}" if each else UNKNOWN_CODE
            self.mark(rows[failed[group]], reason)

    def finish(self, rows: np.ndarray, plan: _Plan, numbers: pa.Array) -> np.ndarray:
        """Strip the national prefix as parse does, validate, record; returns the invalid rows."""
        nsn, slow = _strip(plan, numbers, True)
        live = ~slow & (_lengths(numbers) >= 2) & (_lengths(nsn) <= _MAX_NSN)
        kinds, country = _validate(plan.code, nsn, live)
        valid = kinds != Kind.UNKNOWN
        self.slow.append(rows[slow])
        if valid.any():
            self.country[rows[valid]] = country[valid]
            for kind in np.unique(kinds[valid]):
                self.mark(rows[kinds == kind], REASONS_BY_KIND.get(int(kind)))
            e164 = pc.binary_join_element_wise(f"+{plan.code}", nsn.filter(valid), "")
            self.e164.append((rows[valid], e164))
        return ~valid & ~slow

    def run_slow(self) -> None:
        rows = np.concatenate(self.slow)
        regions = [None] * len(rows) if self.regions is None else self.regions.take(rows)
        for row, raw, region in zip(rows, self.text.take(rows).to_pylist(), regions, strict=True):
            found = normalize_one(raw, self.default, None if region is None else region.as_py())
            self.mark(np.array([row]), found.reason)
            self.country[row] = _REGION_INDEX[found.country] if found.country else 0
            if found.e164:
                self.e164.append((np.array([row]), pa.array([found.e164])))

    def outcome(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        rows = np.concatenate([rows for rows, _ in self.e164] or [np.zeros(0, np.int64)])
        values = pa.concat_arrays([values for _, values in self.e164]
                                  + [pa.nulls(1, pa.string())])
        where = np.full(len(self.text), len(values) - 1)
        where[rows] = np.arange(len(rows))
        country = pa.array([None, *_REGIONS[1:]], pa.string()).take(self.country)
        reason = pa.array(list(self.reasons), pa.string()).take(self.reason)
        return values.take(where), country, reason


def _strings(series: pd.Series) -> pa.Array:
    return pa.chunked_array([pa.array(series.astype("str"), pa.string())]).combine_chunks()


def _unescape(cells: pa.Array) -> pa.Array:
    """`phones.TEXT_ESCAPES` on a column, as `phones._clean` does on one cell.

    Each escape's pattern holds its mark literally; a column where no cell holds the mark
    (nearly every sheet) skips the regex replace, which costs ten times the search."""
    for (pattern, replacement), mark in zip(TEXT_ESCAPES, _ESCAPE_MARKS, strict=True):
        if _may_hold(cells, mark):
            cells = pc.replace_substring_regex(cells, pattern, replacement)
    return cells


def _may_hold(cells: pa.Array, mark: str) -> bool:
    """Whether a cell may hold ``mark``: one search of the column's whole data buffer
    (bytes outside the cells, if any, can only cost a needless replace)."""
    data = cells.buffers()[2]
    return data is not None and data.to_pybytes().find(mark.encode()) >= 0


def normalize(raw: pd.Series, default_region: str | None = None,
              regions: pd.Series | None = None) -> pd.DataFrame:
    """Normalise a column of numbers as written in a sheet: columns e164, country, reason.

    `regions` holds each row's country column value (same index as `raw`). Row for row the
    result equals `normalize_one`; the work is done on columns. Raises ValueError when
    `default_region` is not an ISO code.
    """
    default = _region_code(default_region)
    if regions is not None and not regions.index.equals(raw.index):
        raise ValueError("regions must have the same index as the phone numbers")
    columns = _Batch(_unescape(_strings(raw)), None if regions is None else _strings(regions),
                     default).run()
    return pd.DataFrame({name: pd.Series(column.to_pandas().array, index=raw.index)
                         for name, column in zip(("e164", "country", "reason"), columns,
                                                 strict=True)})
