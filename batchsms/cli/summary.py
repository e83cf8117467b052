"""The short, readable dry-run summary a person sees (not a wall of rows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from batchsms.display import money, plural
from batchsms.plan.planner import REASON_TITLES
from batchsms.plan.segments import describe_chars
from batchsms.plan.totals import Group
from batchsms.report.dryrun import DryRun

if TYPE_CHECKING:
    from batchsms.plan.campaign import Campaign
    from batchsms.plan.preview import PreviewRow
    from batchsms.report.results import ResultFiles
    from batchsms.send.runner import RunResult
    from batchsms.send.sending import CampaignStatus, PreparedSend



def dry_run_text(result: DryRun, title: str = "dry run") -> str:
    t, c = result.totals, result.campaign
    cur = t.prices.currency

    def show(units: int) -> str:
        return money(t.prices.money(units), cur)

    lines = [
        f"{c.name}: {title} ({c.provider.rules.title}, sender {c.provider.sender}"
        f"{', sandbox' if c.provider.sandbox else ''})",
        f"  rows read        {t.recipients:>10,}",
        f"  to send          {t.sendable:>10,}  ({plural(t.segments, 'segment')})",
        f"  skipped          {t.skipped:>10,}",
        f"  estimated cost   {show(t.cost)}",
    ]
    if c.send.encoding == "smart":
        lines.append(f"  smart encoding saved {plural(t.smart_saved, 'segment')}")
    if c.send.budget is not None:
        over = t.prices.money(t.cost) - c.send.budget
        verdict = f"over budget by {money(over, cur)}" if over > 0 else "within budget"
        lines.append(f"  budget           {money(c.send.budget, cur)} ({verdict})")
    lines += _groups("By country", t.by_country, show)
    lines += _groups("By encoding", t.by_encoding, show)
    lines += _skipped(result)
    lines += _top(result)
    if result.csv_path is not None:
        page = result.csv_path.with_name("report.html")
        lines += ["", f"Every row: {result.csv_path}",
                  f"Charts and tables: {page}" + (" (kept as the send wrote it: this campaign "
                                                  "was sent)" if result.report_kept else "")]
    return "\n".join(lines)


def _groups(title: str, groups: dict[str, Group], show: Callable[[int], str]) -> list[str]:
    if not groups:
        return []
    lines = ["", title]
    for key, g in sorted(groups.items(), key=lambda kv: -kv[1].cost):
        lines.append(f"  {key:<8} {plural(g.recipients, 'recipient'):>21} "
                     f"{plural(g.segments, 'segment'):>19}   {show(g.cost)}")
    return lines


def _skipped(result: DryRun) -> list[str]:
    t = result.totals
    if not t.skipped_by_reason:
        return []
    lines = ["", f"Skipped rows ({t.skipped:,})"]
    for code, count in t.skipped_by_reason.most_common():
        lines.append(f"  {REASON_TITLES.get(code, code)} ({count:,})")
        examples = t.examples.get(code, [])
        for example in examples:
            phone = f" {example['phone']!r}" if example["phone"] else ""
            lines.append(f"    row {example['row']}{phone}: {example['reason']}")
        rest = count - len(examples)
        if rest > 0:
            where = (f"in {result.csv_path} (reason_code {code})" if result.csv_path
                     else "in dry-run.csv: run batchsms dry-run to write it")
            lines.append(f"    and {plural(rest, 'more row')}: every one is listed {where}")
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
                     f"{plural(r['segments'], 'segment'):<12} {money(r['cost'], cur)}{why}")
    return lines


def send_preamble(prepared: PreparedSend) -> str:
    """The plan's totals and what this run will do, shown before confirming."""
    result = DryRun(prepared.campaign, prepared.totals, None)
    lines = [dry_run_text(result, title="send")]
    left = prepared.to_do()
    before = left["already_sent"] + left["failed"] + left["unknown"]
    if prepared.rehearsed:
        lines += ["", f"{prepared.rehearsed:,} earlier sends went to a rehearsal account; they "
                  "do not count, so those recipients are messaged now."]
    if not prepared.created:
        lines.append("")
        if before:
            lines.append(f"Resuming: {left['already_sent']:,} already sent, {left['failed']:,} "
                         f"failed, {left['unknown']:,} unknown (not resent).")
        else:
            lines.append("Resuming: no message went out in the earlier run.")
        if prepared.changes:
            lines.append(f"Changed since the first send (accepted): {', '.join(prepared.changes)}")
        if prepared.resent_unknown:
            lines.append(f"{plural(prepared.resent_unknown, 'unknown outcome')} will be resent "
                         "(--resend-unknown): those recipients may get the message twice.")
    lines.append(run_plan(left))
    return "\n".join(lines)


def run_plan(left: dict[str, int]) -> str:
    """What this run does, with the same total as the progress bar (sends + look-ups)."""
    sends = f"This run sends {plural(left['to_send'], 'message')}"
    if not left["to_look_up"]:
        return sends + "."
    return (f"{sends} and first asks the provider about {left['to_look_up']:,} that may have "
            f"gone out when the last run stopped (never resent): "
            f"{left['to_send'] + left['to_look_up']:,} in all.")


def send_outcome(data: dict[str, Any], files: ResultFiles, result: RunResult | None) -> str:
    cur = data["currency"]
    lines = ["", f"{data['campaign']}: {data['sent']:,} sent, {data['failed']:,} failed, "
             f"{data['unknown']:,} unknown, {data['pending']:,} not sent yet, "
             f"{data['skipped']:,} skipped.",
             f"Estimated cost of what went out: {money(data['estimated_cost'], cur)}"]
    if data["reported_cost"]:
        reported = ", ".join(money(v, c) for c, v in data["reported_cost"].items())
        lines.append(f"Cost reported by the provider: {reported}")
    for reason, n in list(data["failures_by_reason"].items())[:5]:
        lines.append(f"  failed ({n:,}): {reason}")
    if data["unknown"]:
        lines.append("Unknown outcomes were not resent: check them with the provider, then "
                     "run send --resend-unknown to send them again if they did not arrive.")
    if data["pending"] and result is not None and not result.stopped:
        lines.append("Not everything was sent: run the same send command again to resume.")
    written = [files.csv, files.xlsx, files.summary, files.csv.with_name("report.html")]
    lines.append(f"Results in {files.csv.parent}: "
                 + ", ".join(f.name for f in written if f is not None))
    if files.note:
        lines.append(files.note)
    if data["failed"] or data["unknown"]:
        lines.append(f"Failed and unknown recipients, ready for a follow-up campaign: "
                     f"{files.retry}")
    return "\n".join(lines)


# The journal's state names, as `status --json` writes them, and what each means.
STATES = {"sent": "", "failed": "", "unknown": "may have arrived, never resent by itself",
          "sending": "in doubt: a resumed run asks the provider", "pending": "not sent yet"}


def status_dict(status: CampaignStatus) -> dict[str, Any]:
    return {"campaign": status.campaign.name, "complete": status.complete, **status.counts,
            "cost_so_far": str(status.cost_so_far), "currency": status.currency,
            "runs": [{"started_at": _iso(s), "finished_at": _iso(f),
                      "result": r or "did not finish"}  # as summary.json says it
                     for _, s, f, r in status.runs],
            "journal": str(status.journal_path), "account": status.account,
            "test_sends": status.tests, "rehearsal_messages": status.rehearsed,
            "running": None if status.running is None else status.running.describe()}


def status_text(status: CampaignStatus) -> str:
    c = status.counts
    last = status.runs[-1] if status.runs else None
    lines = [f"{status.campaign.name}: " + ("complete" if status.complete else "not complete")]
    lines.append("  " + "   ".join(f"{state} {c.get(state, 0):,}" for state in STATES))
    meaning = [f"{state}: {text}" for state, text in STATES.items() if text and c.get(state)]
    if meaning:
        lines.append(f"  ({'; '.join(meaning)})")
    lines.append(f"  estimated cost so far: {money(status.cost_so_far, status.currency)}")
    if status.running:
        lines.append(f"  sending right now: {status.running.describe()}")
    if not status.planned:
        lines.append(f"  only test sends so far ({status.tests}); the campaign was never sent")
    if last:
        outcome = last[3] or "did not finish: killed, or still running"
        lines.append(f"  last run: started {_iso(last[1])} ({outcome})")
    if not status.complete:
        lines.append(f"  a resumed run would look up {c['sending']:,} and send "
                     f"{plural(c['pending'], 'message')}")
    if c["unknown"]:
        lines.append(f"  unknown outcomes ({c['unknown']:,}) are resent only with "
                     "send --resend-unknown")
    return "\n".join(lines)


def _iso(seconds: float | None) -> str | None:
    """ISO 8601 UTC, as summary.json writes it."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def preview_text(campaign: Campaign, rows: list[PreviewRow], highlight: bool) -> str:
    """Each previewed row: where it goes, what it costs, and its text.

    Characters that would not show (TAB, zero-width space, other controls) are written as
    ``⟨U+0009⟩``, as dry-run.csv names them. The characters that forced UCS-2 are shown in
    reverse video on a terminal, and between ⟦ ⟧ otherwise.
    """
    cur = campaign.pricing.currency
    blocks = []
    for r in rows:
        head = f"row {r.row}  {r.e164 or _visible(r.phone or '') or '(no number)'}"
        if r.country:
            head += f" ({r.country})"
        if r.status != "ok":
            blocks.append(f"{head}  SKIPPED: {r.reason}"
                          + (f"\n  {_visible(r.text)}" if r.text else ""))
            continue
        head += (f"  {r.encoding}, {plural(r.segments or 0, 'segment')}, "
                 f"{money(r.cost or '0', cur)}   [{r.why}]")
        text = _mark(_visible(r.text or ""), r.non_gsm, highlight)
        lines = [head, *(f"  | {line}" for line in text.split("\n"))]
        if r.non_gsm:
            lines.append(f"  forced UCS-2 by: {describe_chars(r.non_gsm, len(r.non_gsm))}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _visible(text: str) -> str:
    return "".join(f"⟨{describe_chars([c])}⟩" if c not in "\n " and _hidden(c) else c
                   for c in text)


def _hidden(char: str) -> bool:
    return describe_chars([char]) != char


def _mark(text: str, chars: tuple[str, ...], highlight: bool) -> str:
    for char in sorted(set(chars), key=len, reverse=True):
        shown = f"⟨{describe_chars([char])}⟩" if _hidden(char) else char
        text = text.replace(shown, f"\x1b[7m{shown}\x1b[27m" if highlight else f"⟦{shown}⟧")
    return text
