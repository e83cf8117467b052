"""The short, readable dry-run summary a person sees (not a wall of rows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from batchsms.display import iso, money, plural, shown
from batchsms.report.escape import escape_controls

if TYPE_CHECKING:  # the plan's modules bring pandas: imported when a summary is made
    from batchsms.plan.campaign import Campaign
    from batchsms.plan.preview import PreviewRow
    from batchsms.plan.schedule import Waiting
    from batchsms.plan.totals import Group
    from batchsms.report.dryrun import DryRun
    from batchsms.report.results import ResultFiles
    from batchsms.send.runner import RunResult
    from batchsms.send.sending import PreparedSend
    from batchsms.send.status import CampaignStatus
    from batchsms.send.tracking import TrackResult



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
    if t.opt_out_segments or c.send.opt_out:
        lines.append(f"  opt-out line     adds {plural(t.opt_out_segments, 'segment')}, "
                     f"{show(t.opt_out_cost)} (\"{c.send.opt_out}\" on every text)")
    lines += _reach(result)
    lines += _groups("By country", t.by_country, show)
    lines += _groups("By encoding", t.by_encoding, show)
    lines += _skipped(result)
    lines += _top(result)
    if result.csv_path is not None:
        page = result.csv_path.with_name("report.html")
        kept = " (kept as the send wrote it: this campaign was sent)" \
            if result.report_kept else ""
        lines += ["", f"Every row: {shown(result.csv_path)}",
                  f"Charts and tables: {shown(page)}{kept}"]
    return "\n".join(lines)


def _reach(result: DryRun) -> list[str]:
    """Who can be reached now, and an hour-by-hour chart of when the others' windows open."""
    w, c = result.totals.window, result.campaign
    if not (c.send.window or c.send.not_before or c.contacts.send_at_column):
        return []
    never = result.totals.window.to_dict(result.totals.skipped_by_reason)["never"]
    lines = ["", "When recipients can be reached (each in their own time zone)",
             f"  now              {w.now:>10,}",
             f"  later            {w.later:>10,}" + (
                 f"  (first {_utc(w.earliest)}, last {_utc(w.latest)})" if w.later else ""),
             f"  never            {never:>10,}  (skipped: no window in all their zones, or "
             "too late)"]
    if w.several_zones:
        lines.append(f"  {w.several_zones:,} numbers have several time zones: the window must "
                     "hold in every one")
    lines += _chart(w.by_hour, w.display_zone)
    return lines


def _chart(by_hour: dict[int, int], display_zone: str | None, rows: int = 24) -> list[str]:
    if not by_hour:
        return []
    most = max(by_hour.values())
    local = ZoneInfo(display_zone) if display_zone else None
    head = f"  opening hour (UTC{', ' + display_zone if display_zone else ''})"
    lines = [head]
    hours = sorted(by_hour.items())
    for hour, n in hours[:rows]:
        at = datetime.fromtimestamp(hour, UTC)
        there = f"  {at.astimezone(local):%a %H:%M}" if local else ""
        bar = "#" * max(1, round(30 * n / most))
        lines.append(f"    {at:%a %Y-%m-%d %H:%M}{there}  {n:>8,} {bar}")
    if len(hours) > rows:
        lines.append(f"    ... {len(hours) - rows} more hours (see by_window in --json)")
    return lines


def _utc(seconds: float | None) -> str:
    return "-" if seconds is None else f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M} UTC"


def campaign_warnings(campaign: Campaign) -> list[str]:
    """What ``check`` warns about: legal but probably unwise."""
    found = []
    if campaign.send.window and not campaign.send.opt_out:
        found.append(f"{campaign.source}: send.window is set but send.opt_out is not: marketing "
                     "texts usually must say how to opt out; add e.g. opt_out: \"STOP to 1234\"")
    return found


def waiting_text(waiting: Waiting | None) -> str | None:
    """``N recipients wait for their window; the next opens at ...`` (None: nobody waits)."""
    if waiting is None or not (waiting.count or waiting.expired):
        return None
    parts = []
    if waiting.count:
        parts.append(f"{waiting.count:,} recipients wait for their window; the next opens at "
                     f"{_utc(waiting.next_opening)}")
    if waiting.expired:
        parts.append(f"{waiting.expired:,} missed their send time by more than send.max_late "
                     "and will not be sent")
    return "; ".join(parts) + "."


def _groups(title: str, groups: dict[str, Group], show: Callable[[int], str]) -> list[str]:
    if not groups:
        return []
    lines = ["", title]
    for key, g in sorted(groups.items(), key=lambda kv: -kv[1].cost):
        lines.append(f"  {key:<8} {plural(g.recipients, 'recipient'):>21} "
                     f"{plural(g.segments, 'segment'):>19}   {show(g.cost)}")
    return lines


def _skipped(result: DryRun) -> list[str]:
    from batchsms.plan.planner import REASON_TITLES

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
    from batchsms.report.dryrun import DryRun


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
    lines.append(run_plan(left, prepared.waiting(prepared.planner.now)))
    return "\n".join(lines)


def run_plan(left: dict[str, int], waiting: Waiting | None = None) -> str:
    """What this run does, with the same total as the progress bar (sends, look-ups and
    those that wait for their window)."""
    held = waiting.count + waiting.expired if waiting is not None and waiting.count else 0
    text = f"This run sends {plural(left['to_send'] - held, 'message')}{' now' if held else ''}"
    if left["to_look_up"]:
        text += (f" and first asks the provider about {left['to_look_up']:,} that may have "
                 f"gone out when the last run stopped (never resent): "
                 f"{left['to_send'] + left['to_look_up']:,} in all")
    return f"{text}; {waiting_text(waiting)}" if held else f"{text}."


def send_outcome(data: dict[str, Any], files: ResultFiles, result: RunResult | None,
                 waiting: int = 0) -> str:
    """What a send did, for people; ``waiting`` pending recipients wait for their window
    (said on a line of their own: resuming now would not send them)."""
    cur = data["currency"]
    lines = ["", f"{data['campaign']}: {data['sent']:,} sent, {data['failed']:,} failed, "
             f"{data['unknown']:,} unknown, {data['pending']:,} not sent yet, "
             f"{data['skipped']:,} skipped.",
             f"Estimated cost of what went out: {money(data['estimated_cost'], cur)}"]
    sandbox = data.get("sandbox", False)
    if data["reported_cost"]:
        reported = ", ".join(money(v, c) for c, v in data["reported_cost"].items())
        lines.append(f"Cost reported by the sandbox emulator (made up, not a real price): "
                     f"{reported}" if sandbox else f"Cost reported by the provider: {reported}")
    for reason, n in list(data["failures_by_reason"].items())[:5]:
        lines.append(f"  failed ({n:,}): {reason}")
    if data["unknown"] and sandbox:
        lines.append("Unknown outcomes in a sandbox rehearsal reached nobody, and the in-process "
                     "emulator that could say more is gone: there is nothing to check. A real "
                     "send (sandbox: false) messages every recipient.")
    elif data["unknown"]:
        lines.append("Unknown outcomes were not resent: check them with the provider, then "
                     "run send --resend-unknown to send them again if they did not arrive.")
    if data["pending"] > waiting and result is not None and not result.stopped:
        lines.append("Not everything was sent: run the same send command again to resume.")
    written = [files.csv, files.xlsx, files.summary, files.csv.with_name("report.html")]
    lines.append(f"Results in {shown(files.csv.parent)}: "
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
    w = status.waiting
    waiting = {"waiting": w.count if w else 0, "expired": w.expired if w else 0,
               "next_opening": iso(w.next_opening if w else None)}
    return {"campaign": status.campaign.name, "complete": status.complete, **status.counts,
            **waiting,
            "cost_so_far": str(status.cost_so_far), "currency": status.currency,
            "runs": [{"started_at": iso(s), "finished_at": iso(f),
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
        lines.append(f"  last run: started {iso(last[1])} ({outcome})")
    if not status.complete:
        lines.append(f"  a resumed run would look up {c['sending']:,} and send "
                     f"{plural(c['pending'], 'message')}")
    if (text := waiting_text(status.waiting)) is not None:
        lines.append(f"  {text}")
    if c["unknown"]:
        lines.append(f"  unknown outcomes ({c['unknown']:,}) are resent only with "
                     "send --resend-unknown")
    return "\n".join(lines)


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
            lines.append(f"  forced UCS-2 by: {_forced_by(r.non_gsm)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _forced_by(chars: tuple[str, ...]) -> str:
    """As dry-run.csv's ``ucs2_chars`` column writes them."""
    from batchsms.plan.segments import describe_chars

    return escape_controls(describe_chars(chars, len(chars)))


def _visible(text: str) -> str:
    """Controls as ``<U+001B>`` (as every line the CLI prints), and the other characters that
    would not show (TAB, U+200B, no-break spaces) as dry-run.csv names them."""
    return "".join(_shown(c) if c not in "\n " else c for c in escape_controls(text))


def _shown(char: str) -> str:
    from batchsms.plan.segments import describe_chars

    described = describe_chars([char])
    return char if described == char else f"<{described}>"


def _mark(text: str, chars: tuple[str, ...], highlight: bool) -> str:
    for char in sorted(set(chars), key=len, reverse=True):
        shown = _visible(char)
        text = text.replace(shown, f"\x1b[7m{shown}\x1b[27m" if highlight else f"⟦{shown}⟧")
    return text


def track_text(result: TrackResult, files: ResultFiles) -> str:
    """What ``track`` learnt, and what is still open."""
    if result.note:
        return f"{result.campaign.name}: {result.note}."
    d = result.deliveries
    lines = [f"{result.campaign.name}: asked the provider about {result.asked:,} messages.",
             "  deliveries of sent messages: " + (", ".join(
                 f"{state} {n:,}" for state, n in sorted(d.items())) or "none yet")]
    if result.confirmed:
        lines.append(f"  {result.confirmed:,} unknown outcomes are now confirmed as sent")
    if result.still_unknown:
        age = iso(result.oldest_unknown) or "an unknown time"
        lines.append(f"  {result.still_unknown:,} outcomes are still unknown (the oldest went "
                     f"out {age}); run track again later, or check with the provider")
    lines.append(f"Results: {files.csv}")
    return "\n".join(lines)
