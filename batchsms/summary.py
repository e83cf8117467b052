"""The short, readable dry-run summary a person sees (not a wall of rows)."""

from __future__ import annotations

from collections.abc import Callable

from batchsms.dryrun import DryRun
from batchsms.totals import Group

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
}


def dry_run_text(result: DryRun, title: str = "dry run") -> str:
    t, c = result.totals, result.campaign
    money = t.prices.format
    cur = t.prices.currency
    lines = [
        f"{c.name}: {title} ({c.provider.rules.title}, sender {c.provider.sender}"
        f"{', sandbox' if c.provider.sandbox else ''})",
        f"  rows read        {t.recipients:>10,}",
        f"  to send          {t.sendable:>10,}  ({t.segments:,} segments)",
        f"  skipped          {t.skipped:>10,}",
        f"  estimated cost   {cur} {money(t.cost)}",
    ]
    if c.send.encoding == "smart":
        lines.append(f"  smart encoding saved {t.smart_saved:,} segments")
    if c.send.budget is not None:
        over = t.prices.money(t.cost) - c.send.budget
        verdict = f"over budget by {cur} {over}" if over > 0 else "within budget"
        lines.append(f"  budget           {cur} {c.send.budget} ({verdict})")
    lines += _groups("By country", t.by_country, money, cur)
    lines += _groups("By encoding", t.by_encoding, money, cur)
    lines += _skipped(result)
    lines += _top(result)
    if result.csv_path is not None:
        lines += ["", f"Every row: {result.csv_path}"]
    return "\n".join(lines)


def _groups(title: str, groups: dict[str, Group], money: Callable[[int], str],
            cur: str) -> list[str]:
    if not groups:
        return []
    lines = ["", title]
    for key, g in sorted(groups.items(), key=lambda kv: -kv[1].cost):
        lines.append(f"  {key:<8} {g.recipients:>10,} recipients {g.segments:>10,} segments"
                     f"   {cur} {money(g.cost)}")
    return lines


def _skipped(result: DryRun) -> list[str]:
    t = result.totals
    if not t.skipped_by_reason:
        return []
    lines = ["", f"Skipped rows ({t.skipped:,})"]
    for code, count in t.skipped_by_reason.most_common():
        lines.append(f"  {REASON_TITLES.get(code, code)} ({count:,})")
        for example in t.examples.get(code, []):
            phone = f" {example['phone']!r}" if example["phone"] else ""
            lines.append(f"    row {example['row']}{phone}: {example['reason']}")
    return lines


def _top(result: DryRun) -> list[str]:
    rows = result.totals.top_rows()
    if not rows:
        return []
    cur = result.totals.prices.currency
    lines = ["", "Most expensive rows"]
    for r in rows:
        why = f"  forced UCS-2 by: {r['ucs2_chars']}" if r["ucs2_chars"] else ""
        lines.append(f"  row {r['row']:<6} {r['e164']:<16} {r['encoding']:<6} "
                     f"{r['segments']} segments  {cur} {r['cost']}{why}")
    return lines
