"""Segment counts for a whole column of texts at once, equal row by row to the reference
`batchsms.plan.segments.count` (whose module states the rules).

`count_column` and `smart_replace_column` work on the column's UTF-8 bytes with numpy
and pyarrow, without a Python loop over rows, and agree with the reference `count` and
`smart_replace` row for row. Only "special" characters are looked at one by one: those
whose first UTF-8 byte is outside 0x20-0x5A and 0x61-0x7A. Every other character is one
GSM-7 septet or one UCS-2 unit and never joins a neighbour into a grapheme.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import regex

from batchsms.plan.charsets import GSM_BASIC, GSM_EXTENSION, SMART_ENCODING
from batchsms.plan.segments import _GRAPHEME, GSM7, UCS2, _describe, count

_BLOCK_ROWS = 1 << 17
_SCAN_BYTES = 1 << 19
_GSM_SINGLE, _GSM_PART, _UCS2_SINGLE, _UCS2_PART = 160, 153, 70, 67
_WIDEST_WALKED = 32
_SHOWN, _COMPARED, _HEAD = 5, 8, 16
_BASIC, _EXT, _OTHER, _ASTRAL, _JOIN, _JOIN_ASTRAL = range(6)
_JOINING = regex.compile(
    r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}\p{GCB=Prepend}"
    r"\p{GCB=Regional_Indicator}\p{GCB=L}\p{GCB=V}\p{GCB=T}\p{GCB=LV}\p{GCB=LVT}"
    r"\p{InCB=Linker}\p{InCB=Extend}]+"
)


def count_column(texts: pd.Series) -> pd.DataFrame:
    """`count` for every text of a column, computed column-wise.

    `texts` holds str values, no missing values, any index. Returns a DataFrame with
    the same index and columns `encoding` ("GSM-7"/"UCS-2"), `segments` and
    `characters` (int64), and `ucs2_chars`: `describe_chars` of the graphemes that
    forced UCS-2 ("" for GSM-7 rows). Equal to `count` row by row.
    """
    array = _utf8_array(texts)
    blocks = [_count_block(array.slice(s, _BLOCK_ROWS)) for s in _block_starts(array)]
    ucs2 = pa.array(np.concatenate([b.ucs2 for b in blocks]).astype(np.int8))
    names = pa.array([GSM7, UCS2], pa.large_string())
    encoding = pa.DictionaryArray.from_arrays(ucs2, names).cast(pa.large_string())
    ucs2_chars = pa.chunked_array([b.ucs2_chars for b in blocks], pa.large_string())
    index = texts.index
    return pd.DataFrame(
        {
            "encoding": pd.Series(encoding, dtype="str", index=index),
            "segments": pd.Series(np.concatenate([b.segments for b in blocks]), index=index),
            "characters": pd.Series(np.concatenate([b.characters for b in blocks]), index=index),
            "ucs2_chars": pd.Series(ucs2_chars, dtype="str", index=index),
        }
    )


def smart_replace_column(texts: pd.Series) -> pd.Series:
    """`smart_replace` for every text of a column (str values, no missing values).

    Returns a str Series with the same index and name.
    """
    array = _utf8_array(texts)
    blocks = [_smart_block(array.slice(s, _BLOCK_ROWS)) for s in _block_starts(array)]
    result = pa.chunked_array(blocks, pa.large_string())
    return pd.Series(result, dtype="str", index=texts.index, name=texts.name)


def _utf8_array(texts: pd.Series) -> pa.LargeStringArray:
    array = pa.array(texts, type=pa.large_string(), from_pandas=True)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _block_starts(array: pa.Array) -> range:
    return range(0, max(len(array), 1), _BLOCK_ROWS)


def _buffers(array: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    _, offsets, data = array.buffers()
    off = np.frombuffer(offsets, np.int64, len(array) + 1, 8 * array.offset)
    return (np.zeros(1, np.uint8) if data is None else np.frombuffer(data, np.uint8)), off


def _exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values) + 1, np.int64)
    np.cumsum(values, out=out[1:])
    return out


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """0, 1, ... within each of consecutive groups of the given sizes."""
    return np.arange(int(sizes.sum())) - np.repeat(_exclusive_cumsum(sizes)[:-1], sizes)


def _spans(first: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ranges first[i] ... first[i] + counts[i] - 1."""
    return np.repeat(first, counts) + _ranks(counts)


def _run_ends(starts: np.ndarray) -> np.ndarray:
    """Given which items start a run, which items end one."""
    ends = np.ones_like(starts)
    ends[:-1] = starts[1:]
    return ends


def _merge_order(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Permutation that sorts concatenate([a, b]) when a and b are each sorted."""
    slots = np.searchsorted(a, b) + np.arange(b.size)
    from_b = np.zeros(a.size + b.size, bool)
    from_b[slots] = True
    order = np.empty(a.size + b.size, np.int64)
    order[from_b] = a.size + np.arange(b.size)
    order[~from_b] = np.arange(a.size)
    return order


def _row_sums(values: np.ndarray, first: np.ndarray, ufunc: np.ufunc = np.add) -> np.ndarray:
    """Per-row reduction of small values given per special character."""
    padded = np.append(values.astype(np.uint8), np.uint8(0))
    sums = ufunc.reduceat(padded, first[:-1], dtype=np.int64)
    sums[first[:-1] == first[1:]] = 0
    return sums


def _per_row(row: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    return np.bincount(row, weights=values, minlength=n).astype(np.int64)


@functools.cache
def _classes() -> np.ndarray:
    """The class (_BASIC ... _JOIN_ASTRAL) of every code point, from `regex`'s tables."""
    cls = np.full(0x110000, _OTHER, np.uint8)
    cls[0x10000:] = _ASTRAL
    # Only planes 0-3 and 14 hold assigned characters outside private use (planes 4-13 are
    # unassigned, 15-16 private use: none can join), so only they are scanned: a third of
    # the work at every start.
    for first in (0, 0xE0000):
        last = 0x40000 if first == 0 else 0xF0000
        cps = np.arange(first, last, dtype=np.uint32)
        cps[(cps >= 0xD800) & (cps < 0xE000)] = 0
        for m in _JOINING.finditer(cps.tobytes().decode("utf-32-le")):
            cls[first + m.start() : first + m.end()] += _JOIN - _OTHER
    cls[[ord(c) for c in GSM_BASIC]] = _BASIC
    cls[[ord(c) for c in GSM_EXTENSION]] = _EXT
    return cls


@dataclass(frozen=True, slots=True)
class _Chars:
    """The special characters of a block of rows, in text order."""

    pos: np.ndarray  # byte position of the first byte
    size: np.ndarray  # UTF-8 bytes
    cp: np.ndarray
    first: np.ndarray  # first[r]: index of row r's first special character

    def rows_of(self, index: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.first, index, "right") - 1


def _special_chars(data: np.ndarray, off: np.ndarray) -> _Chars:
    pos = _scan(data, int(off[0]), int(off[-1]))
    lead = data[pos]
    size = 1 + (lead >= 0xC0).view(np.int8) + (lead >= 0xE0) + (lead >= 0xF0)
    cp = lead.astype(np.int32)
    multi = np.flatnonzero(lead >= 0xC0)
    cp[multi] = _decode_tail(data, pos[multi], size[multi], cp[multi])
    return _Chars(pos, size, cp, np.searchsorted(pos, off))


def _decode_tail(data: np.ndarray, pos: np.ndarray, size: np.ndarray, lead: np.ndarray):
    """Code points of multi-byte UTF-8 sequences, given their lead bytes."""
    second = (data[pos + 1] & 0x3F).astype(np.int32)
    cp = ((lead & 0x1F) << 6) | second
    three = np.flatnonzero(size >= 3)
    third = data[pos[three] + 2] & 0x3F
    cp[three] = ((lead[three] & 0x0F) << 12) | (second[three] << 6) | third
    four = np.flatnonzero(size[three] == 4)
    fourth = data[pos[three[four]] + 3] & 0x3F
    cp[three[four]] = ((lead[three[four]] & 0x07) << 18) | (cp[three[four]] & 0xFFF) << 6 | fourth
    return cp


def _scan(data: np.ndarray, begin: int, end: int) -> np.ndarray:
    """Positions of bytes outside 0x20-0x5A, 0x61-0x7A and 0x80-0xBF, cache-sized steps."""
    work = np.empty(min(_SCAN_BYTES, end - begin), np.uint8)
    mask, test = np.empty(work.size, bool), np.empty(work.size, bool)
    found = [np.zeros(0, np.int64)]
    for lo in range(begin, end, _SCAN_BYTES):
        n = min(_SCAN_BYTES, end - lo)
        w, m, t = work[:n], mask[:n], test[:n]
        np.subtract(data[lo : lo + n], np.uint8(0x20), out=w)
        np.greater(w, 0x3A, out=m)
        np.subtract(w, np.uint8(0x41), out=w)
        np.greater(w, 0x19, out=t)
        m &= t
        np.subtract(w, np.uint8(0x1F), out=w)
        np.greater(w, 0x3F, out=t)
        m &= t
        found.append(np.flatnonzero(m) + lo)
    return np.concatenate(found)


@dataclass(frozen=True, slots=True)
class _Clusters:
    """The graphemes of more than one code point of a block, in text order."""

    row: np.ndarray
    pos: np.ndarray
    end: np.ndarray
    code_points: np.ndarray
    units: np.ndarray
    text: list[str]


def _clusters(data: np.ndarray, off: np.ndarray, chars: _Chars, joining: np.ndarray) -> _Clusters:
    """Find multi-code-point graphemes with \\X, looking only around joining characters.

    A code point that can join a neighbour (Extend, ZWJ, SpacingMark, Prepend,
    Regional_Indicator, Hangul, Indic conjunct linkers) is always special. A run of
    them plus one character on each side is a window that starts and ends on grapheme
    boundaries, since two other characters never share a grapheme (CR LF aside, which
    the calculator splits anyway). All windows go through \\X at once, NUL-separated.
    """
    starts, ends, rows = _windows(data, off, chars, joining)
    lengths = ends - starts
    out_start = _exclusive_cumsum(lengths + 1)
    win = np.repeat(np.arange(starts.size), lengths + 1)
    within = np.arange(out_start[-1]) - out_start[win]
    buf = np.where(within < lengths[win], data[np.minimum(starts[win] + within, data.size - 1)], 0)
    buf = buf.astype(np.uint8)
    graphemes = _GRAPHEME.findall(buf.tobytes().decode("utf-8"))
    sizes = np.fromiter(map(len, graphemes), np.int64, len(graphemes))
    cp_byte = np.append(np.flatnonzero((buf & 0xC0) != 0x80), buf.size)
    units_before = _exclusive_cumsum(1 + (buf[cp_byte[:-1]] >= 0xF0))
    first_cp = _exclusive_cumsum(sizes)
    multi = np.flatnonzero(sizes > 1)
    begin, stop = first_cp[multi], first_cp[multi + 1]
    window = np.searchsorted(out_start, cp_byte[begin], "right") - 1
    pos = starts[window] + cp_byte[begin] - out_start[window]
    return _Clusters(
        row=rows[window],
        pos=pos,
        end=pos + cp_byte[stop] - cp_byte[begin],
        code_points=sizes[multi],
        units=units_before[stop] - units_before[begin],
        text=[graphemes[i] for i in multi],
    )


def _windows(
    data: np.ndarray, off: np.ndarray, chars: _Chars, joining: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos, size, row = chars.pos[joining], chars.size[joining], chars.rows_of(joining)
    run_start = np.ones(joining.size, bool)
    run_start[1:] = (pos[1:] != pos[:-1] + size[:-1]) | (row[1:] != row[:-1])
    first, last, rows = joining[run_start], joining[_run_ends(run_start)], row[run_start]
    top = max(chars.pos.size - 1, 0)
    starts = chars.pos[first]
    before = chars.pos[np.maximum(first - 1, 0)]
    prev = np.where(data[np.maximum(starts - 1, 0)] < 0x80, starts - 1, before)
    starts = np.where(starts > off[rows], prev, starts)
    ends = chars.pos[last] + chars.size[last]
    after = np.minimum(last + 1, top)
    following = np.where(data[np.minimum(ends, data.size - 1)] < 0x80, ends + 1,
                         chars.pos[after] + chars.size[after])
    ends = np.where(ends < off[rows + 1], following, ends)
    fresh = np.ones(starts.size, bool)
    fresh[1:] = starts[1:] >= ends[:-1]
    return starts[fresh], ends[_run_ends(fresh)], rows[fresh]


def _covered(pos: np.ndarray, clusters: _Clusters) -> np.ndarray:
    """Which special characters fall inside a multi-code-point grapheme."""
    if not clusters.pos.size:
        return np.zeros(pos.size, bool)
    edges = np.bincount(np.searchsorted(pos, clusters.pos), minlength=pos.size + 1)
    edges -= np.bincount(np.searchsorted(pos, clusters.end), minlength=pos.size + 1)
    return np.cumsum(edges[:-1]) > 0


@dataclass(frozen=True, slots=True)
class _Counted:
    ucs2: np.ndarray
    segments: np.ndarray
    characters: np.ndarray
    ucs2_chars: pa.Array
    shown: np.ndarray  # how many graphemes ucs2_chars names


def _count_block(array: pa.LargeStringArray) -> _Counted:
    """Count a block; blocks mostly in another script avoid looking at every character.

    There, rows without extension, astral or joining characters (found by RE2) are
    one unit or septet per code point, and only their first characters are described.
    """
    code_points = pc.utf8_length(array).to_numpy(zero_copy_only=False)
    if not _is_dense(array, code_points):
        return _count_sparse(array)
    is_hard = pc.match_substring_regex(array, _hard_pattern()).to_numpy(zero_copy_only=False)
    rest, plain = _count_sparse(array.filter(is_hard)), array.filter(~is_hard)
    length = code_points[~is_hard]
    ucs2 = pc.match_substring_regex(plain, _non_gsm_pattern()).to_numpy(zero_copy_only=False)
    gsm = _parts(length, _GSM_SINGLE, _GSM_PART)
    segments = np.where(ucs2, _parts(length, _UCS2_SINGLE, _UCS2_PART), gsm)
    head = _count_sparse(pc.utf8_slice_codeunits(plain, 0, _HEAD))
    redo = (head.shown < _SHOWN) & (length > _HEAD)
    chars = head.ucs2_chars
    if redo.any():
        replacement = _count_sparse(plain.filter(redo)).ucs2_chars
        chars = pc.replace_with_mask(chars, redo, replacement)
    order = _interleave(is_hard)
    return _Counted(
        ucs2=np.concatenate([rest.ucs2, ucs2])[order],
        segments=np.concatenate([rest.segments, segments])[order],
        characters=np.concatenate([rest.characters, length])[order],
        ucs2_chars=pa.concat_arrays([rest.ucs2_chars, chars]).take(pa.array(order)),
        shown=np.concatenate([rest.shown, head.shown])[order],
    )


def _is_dense(array: pa.LargeStringArray, code_points: np.ndarray) -> bool:
    _, off = _buffers(array)
    return off[-1] - off[0] > 1.25 * code_points.sum()


def _interleave(first: np.ndarray) -> np.ndarray:
    """Where each row is in concatenate([rows[first], rows[~first]])."""
    order = np.empty(first.size, np.int64)
    picked = np.flatnonzero(first)
    order[picked] = np.arange(picked.size)
    order[~first] = picked.size + np.arange(first.size - picked.size)
    return order


@functools.cache
def _hard_pattern() -> str:
    """RE2 class of the characters that cost two septets or units, or may join."""
    cls = _classes()
    return _re2_class(np.flatnonzero((cls == _EXT) | (cls >= _ASTRAL)))


@functools.cache
def _non_gsm_pattern() -> str:
    return _re2_class(np.flatnonzero(_classes() >= _OTHER))


def _re2_class(cps: np.ndarray) -> str:
    cps = cps[(cps < 0xD800) | (cps > 0xDFFF)]
    breaks = np.flatnonzero(np.diff(cps) != 1)
    lows, highs = np.append(cps[0], cps[breaks + 1]), np.append(cps[breaks], cps[-1])
    ranges = (rf"\x{{{a:x}}}-\x{{{b:x}}}" for a, b in zip(lows, highs, strict=True))
    return "[" + "".join(ranges) + "]"


def _count_sparse(array: pa.LargeStringArray) -> _Counted:
    data, off = _buffers(array)
    n = len(array)
    chars = _special_chars(data, off)
    cls = _classes()[chars.cp]
    ext, astral = cls == _EXT, (cls == _ASTRAL) | (cls == _JOIN_ASTRAL)
    ucs2 = _row_sums(cls >= _OTHER, chars.first, np.maximum) > 0
    code_points = np.diff(off) - _row_sums(chars.size - 1, chars.first)
    septets = code_points + _row_sums(ext, chars.first)
    units = code_points + _row_sums(astral, chars.first)
    clusters = _clusters(data, off, chars, np.flatnonzero(cls >= _JOIN))
    characters = np.where(ucs2, code_points, septets)
    characters -= _per_row(clusters.row, n, clusters.code_points - 1)
    covered = _covered(chars.pos, clusters)

    segments = np.where(ucs2, _parts(units, _UCS2_SINGLE, _UCS2_PART),
                        _parts(septets, _GSM_SINGLE, _GSM_PART))
    long_gsm = ~ucs2 & (septets > _GSM_SINGLE)
    pick = np.flatnonzero(ext)
    pick = pick[long_gsm[chars.rows_of(pick)]]
    delta = ext.astype(np.int64) - (chars.size - 1)
    items = _Wide(chars.rows_of(pick), chars.pos[pick], np.full(pick.size, 2))
    _walk_rows(segments, items, chars, off, delta, septets, _GSM_PART)

    long_ucs2 = ucs2 & (units > _UCS2_SINGLE)
    pick = np.flatnonzero(astral & ~covered)
    pick = pick[long_ucs2[chars.rows_of(pick)]]
    mine = long_ucs2[clusters.row]
    delta = astral.astype(np.int64) - (chars.size - 1)
    items = _Wide.merge(
        _Wide(chars.rows_of(pick), chars.pos[pick], np.full(pick.size, 2)),
        _Wide(clusters.row[mine], clusters.pos[mine], clusters.units[mine]),
    )
    too_wide = np.unique(items.row[items.width > _WIDEST_WALKED])
    for r in too_wide:
        segments[r] = count(array[int(r)].as_py()).segments
    _walk_rows(segments, items.take(~np.isin(items.row, too_wide)), chars, off, delta, units,
               _UCS2_PART)

    listed = np.flatnonzero((cls >= _OTHER) & ~covered)
    return _Counted(ucs2, segments, characters, *_describe_rows(n, chars, listed, clusters))


def _parts(lengths: np.ndarray, single: int, part: int) -> np.ndarray:
    return np.where(lengths <= single, 1, -(-lengths // part))


@dataclass(frozen=True, slots=True)
class _Wide:
    """Characters or graphemes of more than one septet or unit, sorted by row and pos."""

    row: np.ndarray
    pos: np.ndarray
    width: np.ndarray

    def take(self, index: np.ndarray) -> _Wide:
        return _Wide(self.row[index], self.pos[index], self.width[index])

    @staticmethod
    def merge(a: _Wide, b: _Wide) -> _Wide:
        order = _merge_order(a.pos, b.pos)
        pairs = zip((a.row, a.pos, a.width), (b.row, b.pos, b.width), strict=True)
        return _Wide(*(np.concatenate(pair)[order] for pair in pairs))


def _walk_rows(segments, items: _Wide, chars: _Chars, off, delta, lengths, part) -> None:
    """Recount, in place, the multi-part rows that hold wide items.

    Without wide items a row's parts are ceil(length / part); with them the walk
    decides. `delta` is each special character's cost minus its UTF-8 bytes.
    """
    rows = np.flatnonzero(np.bincount(items.row, minlength=lengths.size))
    rows = rows[segments[rows] > 1]
    if not rows.size:
        return
    items = items.take(np.isin(items.row, rows))
    counts = chars.first[rows + 1] - chars.first[rows]
    inside = _spans(chars.first[rows], counts)
    running = _exclusive_cumsum(delta[inside])
    row_start = _exclusive_cumsum(counts)[np.searchsorted(rows, items.row)]
    k = np.searchsorted(chars.pos[inside], items.pos)
    start = items.pos - off[items.row] + running[k] - running[row_start]
    segments[rows] = _walk(rows, lengths[rows], part, items.row, start, items.width)


def _walk(rows, totals, part, item_row, item_start, item_width) -> np.ndarray:
    """Parts used by greedy filling of `part`-sized parts with atomic wide items.

    All `rows` (sorted, with their `totals`) are walked together. An item that would
    straddle a part boundary starts the next part. Items are sorted by row, then
    start. For texts longer than one segment whose items are at most 32 units wide
    this equals _build_segments: the header pushed into segment 1 moves less than
    48 + 512 bits, so what moves and the next grapheme always fit in segment 2.
    """
    local = np.append(np.searchsorted(rows, item_row), -1)
    stride = int(totals.max()) + part + 1
    keys = np.append(local[:-1] * stride + item_start, np.iinfo(np.int64).max)
    reach = np.append(item_start + item_width, 0)
    item_start = np.append(item_start, 0)
    parts = np.zeros(rows.size, np.int64)
    start = np.zeros(rows.size, np.int64)
    active = np.arange(rows.size)
    while active.size:
        parts[active] += 1
        end = start[active] + part
        more = totals[active] > end
        active, end = active[more], end[more]
        j = np.searchsorted(keys, active * stride + end) - 1
        straddle = (local[j] == active) & (reach[j] > end)
        start[active] = np.where(straddle, item_start[j], end)
    return parts


@dataclass(frozen=True, slots=True)
class _Items:
    """Keyed items sorted by row, then position."""

    row: np.ndarray
    pos: np.ndarray
    key: np.ndarray

    def take(self, index: np.ndarray) -> _Items:
        return _Items(self.row[index], self.pos[index], self.key[index])

    def head(self, n: int, k: int) -> _Items:
        """Each row's first k items (of n rows)."""
        first = np.searchsorted(self.row, np.arange(n + 1))
        return self.take(_spans(first[:-1], np.minimum(np.diff(first), k)))

    @staticmethod
    def merge(a: _Items, b: _Items) -> _Items:
        order = _merge_order(_row_pos(a), _row_pos(b))
        pairs = zip((a.row, a.pos, a.key), (b.row, b.pos, b.key), strict=True)
        return _Items(*(np.concatenate(pair)[order] for pair in pairs))


def _row_pos(items: _Items) -> np.ndarray:
    return (items.row.astype(np.int64) << 40) + items.pos


def _describe_rows(
    n: int, chars: _Chars, listed: np.ndarray, clusters: _Clusters
) -> tuple[pa.Array, np.ndarray]:
    """describe_chars of each row's distinct non-GSM graphemes, in order of appearance.

    `listed` are the special characters that are non-GSM graphemes on their own; the
    clusters are the others. Only each row's first few graphemes are compared, unless
    they hold fewer than _SHOWN distinct ones. Also returns how many each row shows.
    """
    codes, uniques = pd.factorize(pd.Series(clusters.text, dtype=object))
    multis = _Items(clusters.row, clusters.pos, 0x110000 + codes.astype(np.int64))
    listed_first = np.searchsorted(listed, chars.first)
    total = np.diff(listed_first) + np.bincount(multis.row, minlength=n)

    def singles(rows: np.ndarray, limit: int | None) -> _Items:
        counts = listed_first[rows + 1] - listed_first[rows]
        counts = counts if limit is None else np.minimum(counts, limit)
        index = listed[_spans(listed_first[rows], counts)]
        return _Items(np.repeat(rows, counts), chars.pos[index], chars.cp[index])

    # A row with one non-GSM grapheme shows it; only rows with several compare them.
    one, several = total == 1, total > 1
    heads = _Items.merge(singles(np.flatnonzero(several), _COMPARED),
                         multis.take(several[multis.row]).head(n, _COMPARED))
    shown, done = _distinct_heads(heads.head(n, _COMPARED), total)
    slow = np.flatnonzero(~done)
    rest = _Items.merge(singles(slow, None), multis.take(~done[multis.row]))
    repeated = pd.Series((rest.row.astype(np.int64) << 32) + rest.key).duplicated()
    alone = _Items.merge(singles(np.flatnonzero(one), None), multis.take(one[multis.row]))
    shown = _Items.merge(_Items.merge(shown, alone),
                         rest.take(~repeated.to_numpy()).head(n, _SHOWN))
    index, distinct = pd.factorize(shown.key)
    labels = [_describe(chr(k) if k < 0x110000 else uniques[k - 0x110000]) for k in distinct]
    values = pa.array(labels, pa.large_string()).take(pa.array(index))
    shown_per_row = np.bincount(shown.row, minlength=n)
    lists = pa.LargeListArray.from_arrays(pa.array(_exclusive_cumsum(shown_per_row)), values)
    return pc.binary_join(lists, pa.scalar(" ", pa.large_string())), shown_per_row


def _distinct_heads(items: _Items, total: np.ndarray) -> tuple[_Items, np.ndarray]:
    """Each row's first distinct keys among its first items, and the rows that are done.

    `items` holds at most _COMPARED items per row. A row is done when it shows _SHOWN
    distinct keys or when all its items were compared.
    """
    new_row = np.ones(items.row.size, bool)
    new_row[1:] = items.row[1:] != items.row[:-1]
    group_start = np.flatnonzero(new_row)
    rows, local = items.row[group_start], np.cumsum(new_row) - 1
    column = np.arange(items.row.size) - group_start[local]
    keys = np.full((rows.size, _COMPARED), -1, np.int64)
    keys[local, column] = items.key
    where = np.zeros(keys.shape, np.int64)
    where[local, column] = items.pos
    fresh = keys >= 0
    for j in range(1, _COMPARED):
        fresh[:, j] &= ~(keys[:, :j] == keys[:, j : j + 1]).any(axis=1)
    rank = np.cumsum(fresh, axis=1)
    done = np.ones(total.size, bool)
    done[rows] = (rank[:, -1] >= _SHOWN) | (total[rows] <= _COMPARED)
    keep = fresh & (rank <= _SHOWN) & done[rows][:, None]
    return _Items(np.repeat(rows, keep.sum(axis=1)), where[keep], keys[keep]), done


@functools.cache
def _smart_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index of each code point's replacement (-1: none), their lengths, starts and bytes."""
    pairs = sorted((ord(k), v.encode()) for k, v in SMART_ENCODING.items())
    index = np.full(0x110000, -1, np.int16)
    index[[cp for cp, _ in pairs]] = np.arange(len(pairs))
    lengths = np.array([len(v) for _, v in pairs])
    pool = np.frombuffer(b"".join(v for _, v in pairs), np.uint8)
    return index, lengths, _exclusive_cumsum(lengths)[:-1], pool


def _smart_block(array: pa.LargeStringArray) -> pa.LargeStringArray:
    """Smart Encoding for a block; mostly non-ASCII blocks first find the rows to change."""
    if not _is_dense(array, pc.utf8_length(array).to_numpy(zero_copy_only=False)):
        return _splice_smart(array)
    hit = pc.match_substring_regex(array, _smart_pattern()).to_numpy(zero_copy_only=False)
    changed = _splice_smart(array.filter(hit))
    return pa.concat_arrays([changed, array.filter(~hit)]).take(pa.array(_interleave(hit)))


@functools.cache
def _smart_pattern() -> str:
    return _re2_class(np.array(sorted(ord(c) for c in SMART_ENCODING)))


def _splice_smart(array: pa.LargeStringArray) -> pa.LargeStringArray:
    """Splice the Smart Encoding replacements into the block's UTF-8 bytes."""
    data, off = _buffers(array)
    chars = _special_chars(data, off)
    index, lengths, starts, pool = _smart_table()
    k = index[chars.cp]
    hit = np.flatnonzero(k >= 0)
    if not hit.size:
        return array
    k, pos, size = k[hit], chars.pos[hit] - off[0], chars.size[hit].astype(np.int64)
    text = data[off[0] : off[-1]]
    keep = np.ones(text.size, bool)
    keep[_spans(pos, size)] = False
    values = pool[_spans(starts[k], lengths[k])]
    at = np.repeat(pos - _exclusive_cumsum(size)[:-1], lengths[k])
    spliced = pa.py_buffer(np.insert(text[keep], at, values))
    growth = _per_row(chars.rows_of(hit), len(array), lengths[k] - size)
    new_off = pa.py_buffer((off - off[0]) + _exclusive_cumsum(growth))
    return pa.LargeStringArray.from_buffers(len(array), new_off, spliced)
