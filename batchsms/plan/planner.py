"""The plan: one row per sheet row, saying what would be sent to whom and what it costs.

campaign → contacts → phones → suppression/duplicates → render → segments → pricing →
provider limits. Everything works on whole columns of a chunk of the sheet; the sheet
is streamed chunk by chunk, so memory stays bounded however long it is. The dry run,
``check`` and ``send`` all build the plan with this same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from batchsms.errors import CampaignError, located
from batchsms.plan import contacts, phone_columns, segment_columns
from batchsms.plan.campaign import Campaign
from batchsms.plan.prefetch import prefetch
from batchsms.plan.pricing import PriceTable
from batchsms.plan.render import Template, load_template, render_frame
from batchsms.plan.schedule import Scheduler
from batchsms.plan.zones import number_keys, zones_column
from batchsms.providers.rules import ProviderRules

OK = "ok"
OPT_OUT_SEPARATOR = "\n"  # between the template's text and send.opt_out
SKIPPED = "skipped"

# Why a row is skipped: the stable code (reports, --json) and its title for people.
REASON_TITLES = {
    "malformed_row": "row does not fit the header",
    "no_phone": "no phone number",
    "invalid_number": "invalid phone number",
    "not_mobile": "cannot receive SMS",
    "bad_country": "bad country code",
    "lost_digits": "digits lost to scientific notation",
    "suppressed": "suppressed",
    "duplicate": "duplicate number",
    "missing_value": "empty cell used by the template",
    "template_error": "template error",
    "empty_text": "empty text",
    "country_not_supported": "country not served by the provider",
    "too_long": "text too long",
    "too_many_segments": "too many segments",
    "bad_timezone": "invalid time zone",
    "no_timezone": "no time zone known",
    "bad_send_at": "unreadable send time",
    "no_window": "window never open in all its zones",
    "too_late": "send time missed by more than send.max_late",
}

# Arrow's default allocator (mimalloc) hands the large, short-lived buffers of each chunk
# back to the system and faults them in again on the next chunk: measured on a million
# rows, the system allocator halves the dry run's system time (1.2 s -> 0.6 s) and
# renders texts in half the time, at the same peak memory.
pa.set_memory_pool(pa.system_memory_pool())

PLAN_COLUMNS = ["phone", "e164", "country", "status", "reason_code", "reason", "encoding",
                "segments", "characters", "cost", "ucs2_chars", "smart_saved", "text",
                "timezone", "send_at", "window_opens", "opt_out_segments"]


@dataclass(frozen=True)
class PlanChunk:
    """A slice of the plan (index: sheet row number) and the sheet rows it came from."""

    plan: pd.DataFrame
    sheet: pd.DataFrame


class FirstSeen:
    """Remembers the first sheet row of each phone number across chunks.

    The numbers seen are kept as a few sorted runs of (key, row), each at least twice as
    long as the next, like a binary counter: a chunk adds one run and merges equal-sized
    ones, so remembering n numbers costs n log n over the whole sheet (one sorted array
    merged with every chunk would cost n squared over chunk size) and a lookup searches
    log n runs.
    """

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def first_rows(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each (key, row): the earlier row with the same key, or -1; then remember them.

        `rows` are distinct and later than every row remembered before.
        """
        order = np.argsort(keys)  # one sort serves grouping, lookup and remembering
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(keys) else \
            np.zeros(0, np.int64)
        distinct = ordered[starts]
        first = np.minimum.reduceat(rows[order], starts) if len(keys) else distinct
        seen = np.zeros(len(distinct), dtype=bool)
        before = first.astype(np.int64)
        for run_keys, run_rows in self.runs:
            pos = np.minimum(np.searchsorted(run_keys, distinct), len(run_keys) - 1)
            hit = run_keys[pos] == distinct
            before[hit] = run_rows[pos[hit]]
            seen |= hit
        earlier = np.empty(len(keys), np.int64)
        earlier[order] = np.repeat(before, np.diff(np.r_[starts, len(keys)]))
        earlier[earlier == rows] = -1  # the first row of a key not seen before
        self._remember(distinct[~seen], first[~seen])
        return earlier

    def _remember(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """Add new (distinct, unseen, sorted) keys as a run; merge runs no longer than it.
        Rows are kept as int32 while they fit (a quarter less memory on long sheets)."""
        if not len(keys):
            return
        if rows.max() < 2**31 and all(r.dtype == np.int32 for _, r in self.runs):
            rows = rows.astype(np.int32)
        else:
            rows = rows.astype(np.int64)
            self.runs = [(k, r.astype(np.int64)) for k, r in self.runs]
        while self.runs and len(self.runs[-1][0]) <= 2 * len(keys):
            old_keys, old_rows = self.runs.pop()
            keys, rows = _merged(old_keys, old_rows, keys, rows)
        self.runs.append((keys, rows))


def _merged(a_keys: np.ndarray, a_rows: np.ndarray, b_keys: np.ndarray, b_rows: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of distinct keys (and their rows) as one: a linear merge, the
    positions computed once for both arrays."""
    total = len(a_keys) + len(b_keys)
    placed = np.searchsorted(a_keys, b_keys) + np.arange(len(b_keys))
    kept = np.ones(total, dtype=bool)
    kept[placed] = False
    keys = np.empty(total, dtype=np.int64)
    rows = np.empty(total, dtype=np.result_type(a_rows, b_rows))
    keys[placed], keys[kept] = b_keys, a_keys
    rows[placed], rows[kept] = b_rows, a_rows
    return keys, rows


class Planner:
    """Builds the plan of one campaign, chunk by chunk."""

    def __init__(self, campaign: Campaign, chunk_rows: int = 250_000,
                 now: float | None = None) -> None:
        self.campaign = campaign
        self.now = time.time() if now is None else now  # one instant for every row
        self.chunk_rows = chunk_rows
        self.rules: ProviderRules = campaign.provider.rules
        self.prices = PriceTable.from_config(campaign.pricing)
        self.template: Template = load_template(campaign.template.path,
                                                campaign.template.text, campaign.source)
        columns = contacts.read_columns(campaign.contacts, campaign.source)
        self.template.check_columns(columns, campaign.contacts.path.name)
        self._check_schedule_columns(columns)
        self.scheduler = Scheduler(campaign, self.now)
        self.suppressed = self._suppressed_keys()

    def _check_schedule_columns(self, columns: list[str]) -> None:
        cfg = self.campaign.contacts
        problems = [
            located(self.campaign.source, f"contacts.{key}", f"{cfg.path.name} has no column "
                    f"{name!r}", f"Use one of: {', '.join(columns)}")
            for key, name in (("timezone_column", cfg.timezone_column),
                              ("send_at_column", cfg.send_at_column))
            if name is not None and name not in columns]
        if problems:
            raise CampaignError(problems)

    def _suppressed_keys(self) -> dict[int, str]:
        found: dict[int, str] = {}
        for path in self.campaign.suppression:
            raw = contacts.read_suppression(path, self.campaign.contacts.phone_column)
            numbers = phone_columns.normalize(raw.reset_index(drop=True),
                                       self.campaign.contacts.default_region)
            for key in number_keys(numbers["e164"].dropna()):
                found.setdefault(int(key), path.name)
        return found

    def chunks(self) -> Iterator[PlanChunk]:
        """The plan, in sheet order, one chunk at a time."""
        first_seen = FirstSeen()
        # Small chunks first, so that planning starts before a whole chunk is read.
        sheets = contacts.read_contacts(self.campaign.contacts, self.campaign.source,
                                        chunk_rows=self.chunk_rows,
                                        first_rows=max(self.chunk_rows // 8, 1))
        # The next chunk is read and its numbers normalised on a second thread meanwhile.
        for sheet, numbers in prefetch((sheet, self._numbers(sheet)) for sheet in sheets):
            yield PlanChunk(self._plan(sheet, first_seen, numbers), sheet)

    def _numbers(self, sheet: pd.DataFrame) -> pd.DataFrame:
        """The sheet's numbers (``e164``, ``country``, ``reason``), their ``key``
        (:func:`number_keys`) and ``zones``: everything that needs only the phone column,
        so that it can be done on the prefetch thread."""
        cfg = self.campaign.contacts
        regions = sheet[cfg.country_column] if cfg.country_column else None
        numbers = phone_columns.normalize(sheet[cfg.phone_column], cfg.default_region, regions)
        keys = number_keys(numbers["e164"])
        numbers["key"] = keys
        numbers["zones"] = zones_column(numbers["e164"], keys)
        return numbers

    def _plan(self, sheet: pd.DataFrame, first_seen: FirstSeen,
              numbers: pd.DataFrame | None = None) -> pd.DataFrame:
        cfg = self.campaign.contacts
        if numbers is None:
            numbers = self._numbers(sheet)
        plan = pd.DataFrame(index=sheet.index)
        plan["phone"] = sheet[cfg.phone_column].astype("string")
        plan["e164"] = numbers["e164"].astype("string")
        plan["country"] = numbers["country"].astype("string")
        plan["reason"] = numbers["reason"].astype("string")
        plan["reason_code"] = _mapped(plan["reason"], phone_reason_code)
        self._skip_malformed(plan, sheet.attrs.get(contacts.PROBLEMS) or {})
        self._skip_suppressed_and_duplicates(plan, first_seen, numbers["key"].to_numpy())
        self.scheduler.apply(plan, sheet, numbers["zones"])
        self._render(plan, sheet)
        self._count(plan)
        self._apply_limits(plan)
        self._price(plan)
        plan["status"] = _labels(plan["reason_code"].notna().to_numpy(), (OK, SKIPPED), "str")
        return plan[PLAN_COLUMNS]

    @staticmethod
    def _skip_malformed(plan: pd.DataFrame, problems: dict[int, str]) -> None:
        """Rows the reader could not split into the header's columns: cells may have shifted."""
        if problems:
            rows = pd.Index(list(problems))
            plan.loc[rows, "reason_code"] = "malformed_row"
            plan.loc[rows, "reason"] = [problems[r] for r in rows]

    def _skip_suppressed_and_duplicates(self, plan: pd.DataFrame, first_seen: FirstSeen,
                                        keys: np.ndarray) -> None:
        if self.suppressed:
            files = pd.Series(keys).map(self.suppressed).to_numpy()
            hit = pd.notna(files) & plan["reason_code"].isna().to_numpy()
            _skip(plan, hit, "suppressed",
                  pd.Series(files[hit]).map(lambda f: f"suppressed (listed in {f})").to_numpy())
        candidates = plan["reason_code"].isna().to_numpy() & (keys >= 0)
        rows = plan.index.to_numpy(dtype=np.int64)
        earlier = first_seen.first_rows(keys[candidates], rows[candidates])
        duplicate = np.zeros(len(plan), dtype=bool)
        duplicate[np.flatnonzero(candidates)[earlier >= 0]] = True
        text = pa.scalar("duplicate of row ", pa.large_string())
        rows_text = pc.cast(pa.array(earlier[earlier >= 0]), pa.large_string())
        _skip(plan, duplicate, "duplicate", pc.binary_join_element_wise(
            text, rows_text, pa.scalar("", pa.large_string())))

    def _render(self, plan: pd.DataFrame, sheet: pd.DataFrame) -> None:
        todo = plan["reason_code"].isna().to_numpy()
        if not todo.any():
            plan["text"] = _missing_strings(plan.index)
            return
        texts, reasons = render_frame(self.template, sheet, todo)
        plan["text"] = texts
        failed = reasons.dropna()
        plan.loc[failed.index, "reason"] = failed
        plan.loc[failed.index, "reason_code"] = failed.map(
            lambda r: "missing_value" if r.startswith("empty cell") else "template_error")
        empty = pc.fill_null(pc.equal(pa.array(plan["text"].array), ""), False)
        _skip(plan, empty.to_numpy(zero_copy_only=False), "empty_text",
              "the template renders an empty text here")
        if self.campaign.send.opt_out:
            plan["text"] = plan["text"] + OPT_OUT_SEPARATOR + self.campaign.send.opt_out

    def _count(self, plan: pd.DataFrame) -> None:
        has_text = plan["text"].notna().to_numpy()
        for column in ("encoding", "ucs2_chars"):
            plan[column] = _missing_strings(plan.index)
        for column in ("segments", "characters", "smart_saved", "opt_out_segments"):
            plan[column] = _missing_ints(plan.index)
        if not has_text.any():
            return
        # Rows without a text are counted too and blanked after: no filter, no reindex.
        texts = _unmasked(plan["text"])
        if self.campaign.send.encoding == "smart":
            before = segment_columns.count_column(texts)["segments"]
            texts = segment_columns.smart_replace_column(texts)
            plan["text"] = _only_where(texts, has_text)
        counted = segment_columns.count_column(texts)
        if self.campaign.send.encoding == "smart":
            counted["smart_saved"] = before - counted["segments"]
        if self.campaign.send.opt_out:
            counted["opt_out_segments"] = counted["segments"] - segment_columns.count_column(
                texts.str.slice(0, -self._opt_out_length))["segments"]
        for column in counted.columns:
            plan[column] = _only_where(counted[column], has_text)

    @property
    def _opt_out_length(self) -> int:
        return len(OPT_OUT_SEPARATOR) + len(self.campaign.send.opt_out or "")

    def _apply_limits(self, plan: pd.DataFrame) -> None:
        ok = plan["reason_code"].isna()
        rules, send = self.rules, self.campaign.send
        if rules.countries is not None:
            outside = ok & ~plan["country"].isin(rules.countries)
            allowed = ", ".join(sorted(rules.countries))
            _skip(plan, outside.to_numpy(), "country_not_supported",
                  f"{rules.title} sends only to numbers in {allowed}")
        if rules.max_chars is not None:
            length = plan["text"].str.len()
            long = plan["reason_code"].isna() & (length > rules.max_chars)
            _skip(plan, long.to_numpy(), "too_long",
                  length[long].map(lambda n: f"text is {n} characters; {rules.title} accepts at "
                                   f"most {rules.max_chars}").to_numpy())
        for limit, who in ((rules.max_segments, rules.title), (send.max_segments,
                                                                "send.max_segments")):
            if limit is None:
                continue
            over = plan["reason_code"].isna() & (plan["segments"] > limit)
            _skip(plan, over.fillna(False).to_numpy(), "too_many_segments",
                  plan.loc[over.fillna(False), "segments"].map(
                      lambda n, lim=limit, w=who: f"text needs {n} segments; {w} allows at most "
                      f"{lim}").to_numpy())

    def _price(self, plan: pd.DataFrame) -> None:
        ok = plan["reason_code"].isna().to_numpy()
        units = self.prices.unit_prices(plan["country"])
        counted = plan["segments"].fillna(0).to_numpy(dtype=np.int64)
        plan["cost"] = pd.array(np.where(ok, counted * units, 0), dtype="Int64")
        plan.loc[~ok, "cost"] = pd.NA


def _skip(plan: pd.DataFrame, mask: np.ndarray, code: str, reason: object) -> None:
    """Mark the rows of ``mask`` (all not yet skipped) skipped, with a code and reason(s):
    one reason, or one per row of ``mask``."""
    if not mask.any():
        return
    # Whole columns rebuilt in Arrow: pandas' masked assignment costs ten times more.
    where = pa.array(mask)
    plan["reason_code"] = _replaced(plan["reason_code"], where, code)
    plan["reason"] = _replaced(plan["reason"], where, reason)


def _replaced(column: pd.Series, where: pa.Array, value: object) -> pd.Series:
    """``column`` with ``value`` (one string, or one per true row of ``where``) there."""
    current = pa.array(column.array, pa.large_string())
    if isinstance(value, str):
        found = pc.if_else(where, pa.scalar(value, pa.large_string()), current)
    else:
        found = pc.replace_with_mask(current, where, pa.array(value, pa.large_string()))
    return pd.Series(pd.array(found, dtype="string"), index=column.index)


def _missing_strings(index: pd.Index) -> pd.Series:
    return _strings(pa.nulls(len(index), pa.large_string()), index)


def _missing_ints(index: pd.Index) -> pd.Series:
    n = len(index)
    return pd.Series(pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool)), index=index)


def _arrow(column: pd.Series) -> pa.Array:
    return pa.array(column.array, pa.large_string())


def _strings(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.array(values, dtype="string"), index=index)


def _unmasked(column: pd.Series) -> pd.Series:
    """A text column without its NAs: each NA row reads as what its slot holds (an empty
    string, or the text of a row skipped after it was rendered: counted for nothing but
    cheaply). The same buffers under no validity bitmap; a filled copy of a chunk's texts
    costs more than counting the few extra rows, most of it in page faults."""
    array = _arrow(column)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    _, offsets, data = array.buffers()
    if not array.null_count or data is None:
        return _strings(pc.fill_null(array, ""), column.index)
    bare = pa.LargeStringArray.from_buffers(len(array), offsets, data, offset=array.offset)
    return _strings(bare, column.index)


def _only_where(values: pd.Series, keep: np.ndarray) -> pd.Series:
    """A text column (``string``) or a count (``Int64``), NA outside ``keep``; built from
    Arrow or numpy directly (pandas' ``where`` costs several times more)."""
    if pd.api.types.is_integer_dtype(values.dtype):
        counts = values.to_numpy(dtype=np.int64, na_value=0)
        return pd.Series(pd.arrays.IntegerArray(counts, ~keep), index=values.index)
    if keep.all():
        return values.astype("string")
    null = pa.scalar(None, pa.large_string())
    return _strings(pc.if_else(pa.array(keep), _arrow(values), null), values.index)


def _mapped(values: pd.Series, how: Callable[[str], str]) -> pd.Series:
    """``how`` of each distinct value (NA stays NA), as a string column."""
    encoded = pc.dictionary_encode(pa.array(values.array))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    table = pa.array([how(v) for v in encoded.dictionary.to_pylist()], pa.large_string())
    return pd.Series(pd.array(table.take(encoded.indices), dtype="string"), index=values.index)


def _labels(which: np.ndarray, labels: tuple[str, str], dtype: str) -> pd.Series:
    """labels[1] where ``which``, else labels[0] (built in Arrow: numpy strings are slow)."""
    codes = pa.array(which.astype(np.int8))
    names = pa.array(labels, pa.large_string())
    return pd.array(pa.DictionaryArray.from_arrays(codes, names).cast(pa.large_string()),
                    dtype=dtype)


def phone_reason_code(reason: str) -> str:
    """A stable category for a phone-number reason (the reason text itself is specific)."""
    if reason.startswith("no phone"):
        return "no_phone"
    if "cannot receive SMS" in reason:
        return "not_mobile"
    if "country column" in reason:
        return "bad_country"
    if reason.startswith("digits lost"):
        return "lost_digits"
    return "invalid_number"

