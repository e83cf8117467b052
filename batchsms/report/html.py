"""``report.html``: one self-contained page a person opens from disk, for every state of a
campaign: planned (dry run), partly sent, stopped, sent.

No network, no CDN and no script: the charts are HTML and CSS (bars whose labels are
ordinary text, so they wrap instead of being clipped and never shrink below 12 px), and
every value that comes from a campaign or a contact sheet is HTML-escaped, so a name like
``<script>`` is shown, never run. Colours mean something: an outcome (sent green, failed
red, unknown amber, not sent yet grey) or an encoding (GSM-7 blue, UCS-2 orange, the one
that costs more); a chart of one kind of thing has one colour. Money is shown at the
currency's usual precision; the exact amounts are in the CSV files. Written by
``dry-run``, rewritten by ``send``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from batchsms.display import money, plural
from batchsms.plan.campaign import Campaign
from batchsms.plan.planner import REASON_TITLES
from batchsms.plan.totals import Totals
from batchsms.report.stale import write_whole

OUTCOME_COLOURS = {"sent": "#2e7d32", "failed": "#c62828", "unknown": "#f9a825",
                   "pending": "#9e9e9e", "skipped": "#616161"}
OUTCOME_TITLES = {"sent": "sent", "failed": "failed", "unknown": "unknown (may have arrived)",
                  "pending": "not sent yet", "skipped": "skipped (never sent)"}
ENCODING_COLOURS = {"GSM-7": "#1f5fa8", "UCS-2": "#e06c00"}
ONE_KIND = "#1f5fa8"  # a chart of one kind of thing (cost by country, segments)
SKIPPED = "#757575"
TIME_COLUMNS_MAX = 40


@dataclass(frozen=True)
class SendView:
    """What a send adds to the page (from the journal, via the results)."""

    summary: dict[str, Any]  # summary.json: counts, estimated_cost, currency, reported_cost...
    failures: list[dict[str, Any]] = field(default_factory=list)  # row, e164, error
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (UTC time label, accepted)
    unknowns: list[dict[str, Any]] = field(default_factory=list)  # row, e164, error

    @property
    def state(self) -> str:
        """``sent``, ``partly sent`` or ``sending not started`` (nothing settled yet)."""
        s = self.summary
        settled = s.get("sent", 0) + s.get("failed", 0) + s.get("unknown", 0)
        if not settled:
            return "sending not started"
        return "partly sent" if s.get("pending", 0) else "sent"


def write_report(path: Path, campaign: Campaign, totals: Totals,
                 sent: SendView | None = None, now: datetime | None = None) -> Path:
    """Write the page atomically (a reader never sees half of it)."""
    page = render(campaign, totals, sent, now or datetime.now(UTC))
    write_whole(path, page)
    return path


def render(campaign: Campaign, totals: Totals, sent: SendView | None, now: datetime) -> str:
    cur = totals.prices.currency
    sections = [_banner(totals, sent), _cards(campaign, totals, sent),
                _window_section(campaign, totals)]
    if sent is not None:
        sections.append(_send_section(sent, cur))
    sections += [f"<h2>{'The plan' if sent else 'What a send would do'}</h2>",
                 _plan_charts(totals), _skipped_examples(totals), _expensive_table(totals, cur)]
    title = f"{campaign.name}: SMS campaign report"
    state = "dry run" if sent is None else sent.state
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{_e(campaign.name)}</h1><p>{_e(campaign.provider.rules.title)}, "
            f"sender {_e(campaign.provider.sender)}"
            f"{' (sandbox: nothing left this machine)' if campaign.provider.sandbox else ''}"
            f" &middot; <span id=\"state\">{_e(state)}</span> &middot; generated "
            f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>\n")


def _banner(totals: Totals, sent: SendView | None) -> str:
    """The campaign's state in one sentence, first thing on the page."""
    if sent is None:
        text = (f"Dry run: nothing has been sent. A send would message "
                f"{plural(totals.sendable, 'recipient')}.")
        kind = "plan"
    else:
        s = sent.summary
        went = s.get("sent", 0) + s.get("unknown", 0) + s.get("failed", 0)
        if sent.state == "sending not started":
            text, kind = "Sending has not started: no message has gone out.", "plan"
        elif s.get("sent", 0) == 0 and s.get("unknown", 0) == 0:
            text, kind = (f"Every message that was tried failed ({s.get('failed', 0):,}): "
                          "nothing was delivered. The reasons are below."), "bad"
        elif sent.state == "partly sent":
            text, kind = (f"Partly sent: {went:,} of {went + s.get('pending', 0):,} settled; "
                          f"{s.get('pending', 0):,} not sent yet. Run the same send command "
                          "again to send the rest."), "warn"
        else:
            text, kind = (f"Sent: {s.get('sent', 0):,} accepted by the provider, "
                          f"{s.get('failed', 0):,} failed, {s.get('unknown', 0):,} unknown."), (
                "good" if not (s.get("failed") or s.get("unknown")) else "warn")
    return f"<p class=\"banner {kind}\" id=\"banner\">{_e(text)}</p>"


def _cards(campaign: Campaign, totals: Totals, sent: SendView | None) -> str:
    cur = totals.prices.currency
    plan_cost = money(totals.prices.money(totals.cost), cur)
    cards = [("Rows read", f"{totals.recipients:,}", ""), ("To send", f"{totals.sendable:,}", ""),
             ("Skipped", f"{totals.skipped:,}", ""), ("Segments", f"{totals.segments:,}", "")]
    if sent is None:
        cards.append(("Estimated cost", plan_cost, ""))
    else:
        s = sent.summary
        cards += [("Sent", f"{s.get('sent', 0):,}", "sent"),
                  ("Failed", f"{s.get('failed', 0):,}", "failed"),
                  ("Unknown", f"{s.get('unknown', 0):,}", "unknown"),
                  ("Not sent yet", f"{s.get('pending', 0):,}", "pending"),
                  ("Cost of what went out",
                   money(Decimal(s.get("estimated_cost", "0")), s.get("currency", cur)), ""),
                  ("Plan estimate (all)", plan_cost, "")]
        for currency, value in s.get("reported_cost", {}).items():
            cards.append(("Reported by the provider", money(Decimal(value), currency), ""))
    if campaign.send.budget is not None:
        cards.append(("Budget", money(campaign.send.budget, cur), ""))
    items = "".join(f"<div class=\"card {kind}\"><span>{_e(k)}</span><strong>{_e(v)}</strong>"
                    "</div>" for k, v, kind in cards)
    return f"<section class=\"cards\">{items}</section>"


def _plan_charts(totals: Totals) -> str:
    cur = totals.prices.currency
    by_country = sorted(totals.by_country.items(), key=lambda kv: -kv[1].cost)
    charts = [
        _chart("Estimated cost by country",
               [(k, g.cost, money(totals.prices.money(g.cost), cur), ONE_KIND)
                for k, g in by_country], "cost-by-country"),
        _chart("Recipients by encoding",
               [(k, g.recipients, f"{g.recipients:,}", ENCODING_COLOURS.get(k, ONE_KIND))
                for k, g in sorted(totals.by_encoding.items())], "by-encoding",
               note="UCS-2 (orange) fits fewer characters per segment, so it costs more"),
        _chart("Recipients by segment count",
               [(plural(k, "segment"), n, f"{n:,}", ONE_KIND)
                for k, n in sorted(totals.by_segments.items())], "by-segments"),
        _chart("Skipped rows by reason",
               [(REASON_TITLES.get(k, k), n, f"{n:,}", SKIPPED) for k, n in
                totals.skipped_by_reason.most_common()], "skipped-by-reason"),
    ]
    return f"<section class=\"charts\">{''.join(charts)}</section>"


def _window_section(campaign: Campaign, totals: Totals, hours: int = 48) -> str:
    """Quiet hours: who can be reached now, and when the others' windows open, by hour."""
    send = campaign.send
    if not (send.window or send.not_before or campaign.contacts.send_at_column):
        return ""
    w = totals.window
    never = w.to_dict(totals.skipped_by_reason)["never"]
    cards = "".join(f"<div class=\"card\"><span>{_e(k)}</span><strong>{v:,}</strong></div>"
                    for k, v in (("Reachable now", w.now), ("Later", w.later),
                                 ("Never (skipped)", never)))
    local = ZoneInfo(w.display_zone) if w.display_zone else None
    items = []
    for hour, n in sorted(w.by_hour.items())[:hours]:
        at = datetime.fromtimestamp(hour, UTC)
        there = f" · {at.astimezone(local):%a %H:%M}" if local else ""
        items.append((f"{at:%a %d %b %H:%M}{there}", n, f"{n:,}", ONE_KIND))
    zone = f" · {w.display_zone}" if w.display_zone else ""
    chart = _chart(f"When the others' windows open, by hour (UTC{zone})", items, "by-window")
    note = (f"<p>{w.several_zones:,} numbers have several time zones: the window must hold in "
            "every one of them.</p>" if w.several_zones else "")
    return (f"<h2>Quiet hours: each recipient in their own time zone</h2>"
            f"<section class=\"cards\">{cards}</section>{note}"
            f"<section class=\"charts\" style=\"grid-template-columns:"
            f"minmax(min(100%,420px),720px)\">"
            f"{chart}</section>")


def _send_section(sent: SendView, cur: str) -> str:
    s = sent.summary
    outcomes = [(OUTCOME_TITLES[k], s.get(k, 0), f"{s.get(k, 0):,}", OUTCOME_COLOURS[k])
                for k in ("sent", "failed", "unknown", "pending", "skipped")]
    failures = list(s.get("failures_by_reason", {}).items())[:10]
    charts = [
        _chart("Outcomes", outcomes, "outcomes"),
        _chart("Failures by the provider's reason",
               [(r, n, f"{n:,}", OUTCOME_COLOURS["failed"]) for r, n in failures],
               "failures-by-reason", empty="no message failed"),
        _timeline(sent),
    ]
    return ("<h2>The send</h2>"
            f"<section class=\"charts\">{''.join(charts)}</section>"
            + _rows_table("Failed rows", "failed-rows", sent.failures, s.get("failed", 0),
                          "The provider's reason")
            + _rows_table("Unknown outcomes", "unknown-rows", sent.unknowns, s.get("unknown", 0),
                          "Why the outcome is unknown",
                          "These may have arrived. They are not resent unless you run send "
                          "--resend-unknown."))


def _chart(title: str, items: Sequence[tuple[str, int, str, str]], name: str,
           note: str = "", empty: str = "nothing to show") -> str:
    """Horizontal bars: label, bar (width by value, colour by meaning), value as text."""
    head = f"<figure class=\"chart\" id=\"{name}\"><figcaption>{_e(title)}</figcaption>"
    if not items or not any(v for _, v, _, _ in items):
        return f"{head}<p class=\"empty\">{_e(empty)}</p></figure>"
    top = max(v for _, v, _, _ in items) or 1
    rows = "".join(
        f"<div class=\"label\">{_e(label)}</div><div class=\"track\"><div class=\"bar\" "
        f"style=\"width:{100 * value / top:.1f}%;background:{colour}"
        f"{';min-width:0' if not value else ''}\"></div></div>"
        f"<div class=\"value\">{_e(shown)}</div>"
        for label, value, shown, colour in items)
    foot = f"<p class=\"note\">{_e(note)}</p>" if note else ""
    return f"{head}<div class=\"bars\" role=\"table\">{rows}</div>{foot}</figure>"


def _timeline(sent: SendView) -> str:
    """Messages accepted per time slice: columns with a count axis and time labels."""
    head = "<figure class=\"chart\" id=\"timeline\"><figcaption>Messages accepted over time " \
           "(UTC)</figcaption>"
    points = sent.timeline[-TIME_COLUMNS_MAX:]
    if not points:
        why = ("no message was accepted by the provider" if sent.summary.get("failed")
               else "no message has gone out yet")
        return f"{head}<p class=\"empty\">{why}</p></figure>"
    top = max(n for _, n in points) or 1
    columns = "".join(
        f"<div class=\"col\" title=\"{_e(label)}: {n:,}\"><span class=\"count\">"
        f"{n:,}</span><div class=\"fill\" style=\"height:{100 * n / top:.1f}%\"></div></div>"
        for label, n in points)
    ticks = [points[0][0], points[len(points) // 2][0], points[-1][0]] if len(points) > 2 \
        else [label for label, _ in points]
    axis = "".join(f"<span>{_e(t)}</span>" for t in dict.fromkeys(ticks))
    total = sum(n for _, n in points)
    middle = f"{top // 2:,}" if top >= 4 else ""
    return (f"{head}<div class=\"timechart\"><div class=\"yaxis\"><span>{top:,}</span>"
            f"<span>{middle}</span><span>0</span></div><div class=\"cols\">{columns}</div>"
            f"<div></div><div class=\"xaxis\">{axis}</div></div><p class=\"note\">"
            f"{plural(total, 'message')} accepted in {plural(len(points), 'time slice')}; "
            "the counts are per slice</p></figure>")


def _rows_table(title: str, name: str, rows: list[dict[str, Any]], total: int, why: str,
                note: str = "") -> str:
    if not rows:
        return ""
    body = "".join(f"<tr><td class=\"num\">{r['row']}</td><td class=\"phone\">{_e(r['e164'])}"
                   f"</td><td>{_e(r.get('error') or '')}</td></tr>" for r in rows)
    more = (f" The first {len(rows):,} of {total:,} are listed; every one is in results.csv."
            if total > len(rows) else "")
    lead = f"<p class=\"note\">{_e(note)}{_e(more)}</p>" if note or more else ""
    return (f"<h2 id=\"{name}\">{_e(title)} ({total:,})</h2>{lead}<div class=\"scroll\"><table>"
            f"<thead><tr><th>Sheet row</th><th>Number</th><th>{_e(why)}</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _skipped_examples(totals: Totals) -> str:
    rows = [(ex["row"], REASON_TITLES.get(code, code), ex["phone"] or "", ex["reason"])
            for code, examples in totals.examples.items() for ex in examples]
    if not rows:
        return ""
    listed = len(rows)
    more = (f"<p class=\"note\">{listed:,} examples of {totals.skipped:,} skipped rows; every "
            "one is in dry-run.csv (column reason_code).</p>" if totals.skipped > listed else "")
    body = "".join(f"<tr><td class=\"num\">{r}</td><td>{_e(k)}</td><td class=\"phone\">"
                   f"{_e(p)}</td><td>{_e(why)}</td></tr>" for r, k, p, why in sorted(rows))
    return (f"<h2>Skipped rows (examples)</h2>{more}<div class=\"scroll\"><table><thead><tr>"
            f"<th>Sheet row</th><th>Reason</th><th>Phone as written</th><th>Detail</th></tr>"
            f"</thead><tbody>{body}</tbody></table></div>")


def _expensive_table(totals: Totals, cur: str) -> str:
    rows = totals.top_rows()
    if not rows:
        return ""
    body = "".join(
        f"<tr><td class=\"num\">{r['row']}</td><td class=\"phone\">{_e(r['e164'])}</td>"
        f"<td>{_e(r['encoding'])}</td><td class=\"num\">{r['segments']}</td>"
        f"<td class=\"num\">{_e(r['cost'])}</td><td>{_e(r['ucs2_chars'] or '')}</td>"
        f"<td class=\"text\">{_e(r['text'])}</td></tr>" for r in rows)
    return (f"<h2>Most expensive rows</h2><div class=\"scroll\"><table><thead><tr>"
            f"<th>Sheet row</th><th>Number</th><th>Encoding</th><th>Segments</th>"
            f"<th>Cost ({_e(cur)})</th><th>Forced UCS-2 by</th><th>Text</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}header{background:#1f3f6e;color:#fff;padding:18px 28px}header h1{margin:0;
font-size:24px}header p{margin:4px 0 0;opacity:.9}main{padding:18px 28px;max-width:1200px}
.banner{font-size:16px;padding:12px 16px;border-radius:8px;border-left:6px solid #1f5fa8;
background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.12)}.banner.good{border-color:#2e7d32}
.banner.warn{border-color:#f9a825}.banner.bad{border-color:#c62828}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0 18px}.card{background:#fff;
border-radius:8px;padding:10px 16px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:130px;
border-top:4px solid transparent}.card.sent{border-color:#2e7d32}.card.failed{
border-color:#c62828}.card.unknown{border-color:#f9a825}.card.pending{border-color:#9e9e9e}
.card span{display:block;font-size:12px;color:#555;text-transform:uppercase}.card strong{
font-size:20px;white-space:nowrap}.charts{display:grid;
grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:14px}
.chart{background:#fff;border-radius:8px;margin:0;padding:12px 14px;
box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:0}.chart figcaption{font-weight:600;
margin-bottom:8px}.bars{display:grid;grid-template-columns:minmax(6em,38%) 1fr auto;
gap:6px 10px;align-items:center;font-size:13px}.label{text-align:right;
overflow-wrap:anywhere}.track{background:#eef1f6;height:18px;border-radius:3px}.bar{
height:100%;min-width:2px;border-radius:3px}.value{font-variant-numeric:tabular-nums;
white-space:nowrap}.note,.empty{color:#555;font-size:13px;margin:8px 0 0}
.timechart{display:grid;grid-template-columns:auto 1fr;grid-template-rows:160px auto;
gap:4px 8px;font-size:12px}.yaxis{display:flex;flex-direction:column;
justify-content:space-between;text-align:right;color:#444;border-right:1px solid #999;
padding-right:6px}.yaxis span:first-child{margin-top:-2px}.cols{display:flex;
align-items:flex-end;gap:2px;border-bottom:1px solid #999;height:160px}.col{flex:1 1 0;
max-width:48px;height:100%;display:flex;flex-direction:column;justify-content:flex-end;
align-items:center}.col .fill{width:100%;background:#2e7d32;min-height:1px}.col .count{
font-size:12px;color:#333;white-space:nowrap}.cols:has(.col:nth-child(13)) .count{
display:none}.xaxis{display:flex;justify-content:space-between;color:#444;gap:8px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:18px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}th,td{padding:6px 10px;border-bottom:1px solid #e3e3e3;
text-align:left;vertical-align:top}th{background:#eef1f6}td.num{text-align:right;
font-variant-numeric:tabular-nums}td.phone{white-space:nowrap;
font-variant-numeric:tabular-nums}td.text{max-width:480px;white-space:pre-wrap;
word-break:break-word;min-width:12em}h2{font-size:18px;margin:22px 0 10px}
.scroll{overflow-x:auto;margin-bottom:18px}.scroll table{margin:0}
@media (max-width:600px){header,main{padding:12px 14px}.card{min-width:110px;
padding:8px 12px}.cards{gap:8px}}
"""
