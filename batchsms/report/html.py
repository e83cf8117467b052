"""``report.html``: one self-contained page a person opens from disk.

No network, no CDN and no script: the charts are inline SVG drawn here, and every
value that comes from a campaign or a contact sheet is HTML-escaped, so a name like
``<script>`` is shown, never run. Written by ``dry-run``, rewritten by ``send``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from batchsms.plan.campaign import Campaign
from batchsms.plan.planner import REASON_TITLES
from batchsms.plan.totals import Totals

BAR_WIDTH = 360
PALETTE = ["#305496", "#5b9bd5", "#70ad47", "#ffc000", "#ed7d31", "#a5a5a5", "#9e480e",
           "#264478", "#636363", "#997300"]
OUTCOME_COLOURS = {"sent": "#70ad47", "failed": "#c00000", "unknown": "#ffc000",
                   "pending": "#a5a5a5", "skipped": "#7f7f7f"}


@dataclass(frozen=True)
class SendView:
    """What a send adds to the page."""

    summary: dict[str, Any]  # summary.json
    failures: list[dict[str, Any]] = field(default_factory=list)  # row, e164, error
    timeline: list[tuple[str, int]] = field(default_factory=list)  # (time label, messages)


def write_report(path: Path, campaign: Campaign, totals: Totals,
                 sent: SendView | None = None, now: datetime | None = None) -> Path:
    """Write the page atomically (a reader never sees half of it)."""
    page = render(campaign, totals, sent, now or datetime.now(UTC))
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)
    return path


def render(campaign: Campaign, totals: Totals, sent: SendView | None, now: datetime) -> str:
    money = totals.prices.format
    cur = totals.prices.currency
    sections = [_cards(campaign, totals, sent), _window_section(campaign, totals),
                _dry_run_charts(totals, money, cur)]
    if sent is not None:
        sections.append(_send_section(sent))
    sections.append(_expensive_table(totals, cur))
    title = f"{campaign.name}: SMS campaign report"
    generated = now.strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{_e(campaign.name)}</h1><p>{_e(campaign.provider.rules.title)}, "
            f"sender {_e(campaign.provider.sender)}"
            f"{' (sandbox)' if campaign.provider.sandbox else ''} &middot; "
            f"{'sent' if sent else 'dry run'} &middot; generated {generated}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>\n")


def _cards(campaign: Campaign, totals: Totals, sent: SendView | None) -> str:
    money, cur = totals.prices.format, totals.prices.currency
    cards = [("Rows read", f"{totals.recipients:,}"), ("To send", f"{totals.sendable:,}"),
             ("Skipped", f"{totals.skipped:,}"), ("Segments", f"{totals.segments:,}"),
             ("Estimated cost", f"{cur} {money(totals.cost)}")]
    if campaign.send.budget is not None:
        cards.append(("Budget", f"{cur} {campaign.send.budget}"))
    if sent is not None:
        s = sent.summary
        cards += [("Sent", f"{s['sent']:,}"), ("Failed", f"{s['failed']:,}"),
                  ("Unknown", f"{s['unknown']:,}")]
        for currency, value in s.get("reported_cost", {}).items():
            cards.append(("Reported cost", f"{currency} {value}"))
    items = "".join(f"<div class=\"card\"><span>{_e(k)}</span><strong>{_e(v)}</strong></div>"
                    for k, v in cards)
    return f"<section class=\"cards\">{items}</section>"


def _dry_run_charts(totals: Totals, money: Any, cur: str) -> str:
    by_country = sorted(totals.by_country.items(), key=lambda kv: -kv[1].cost)
    charts = [
        _chart("Cost by country", [(k, g.cost, f"{cur} {money(g.cost)}") for k, g in by_country],
               "cost-by-country"),
        _chart("Recipients by encoding",
               [(k, g.recipients, f"{g.recipients:,}") for k, g in sorted(
                   totals.by_encoding.items())], "by-encoding"),
        _chart("Recipients by segment count",
               [(f"{k} segment{'s' if k != 1 else ''}", n, f"{n:,}")
                for k, n in sorted(totals.by_segments.items())], "by-segments"),
        _chart("Skipped rows by reason",
               [(REASON_TITLES.get(k, k), n, f"{n:,}") for k, n in
                totals.skipped_by_reason.most_common()], "skipped-by-reason"),
    ]
    return f"<section class=\"charts\">{''.join(charts)}</section>" + _skipped_examples(totals)


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
        items.append((f"{at:%a %d %b %H:%M}{there}", n, f"{n:,}"))
    zone = f" · {w.display_zone}" if w.display_zone else ""
    chart = _chart(f"When the others' windows open, by hour (UTC{zone})", items, "by-window")
    note = (f"<p>{w.several_zones:,} numbers have several time zones: the window must hold in "
            "every one of them.</p>" if w.several_zones else "")
    return (f"<h2>Quiet hours: each recipient in their own time zone</h2>"
            f"<section class=\"cards\">{cards}</section>{note}"
            f"<section class=\"charts\" style=\"grid-template-columns:minmax(420px,720px)\">"
            f"{chart}</section>")


def _send_section(sent: SendView) -> str:
    s = sent.summary
    outcomes = [(k, s.get(k, 0), f"{s.get(k, 0):,}") for k in
                ("sent", "failed", "unknown", "pending", "skipped")]
    failures = list(s.get("failures_by_reason", {}).items())[:10]
    charts = [
        _chart("Outcomes", outcomes, "outcomes", colours=OUTCOME_COLOURS),
        _chart("Failures by provider reason", [(r, n, f"{n:,}") for r, n in failures],
               "failures-by-reason"),
        _timeline(sent.timeline),
    ]
    return (f"<h2>After sending</h2><section class=\"charts\">{''.join(charts)}</section>"
            + _failures_table(sent.failures))


def _chart(title: str, items: Sequence[tuple[str, int, str]], name: str,
           colours: dict[str, str] | None = None) -> str:
    """A horizontal bar chart as inline SVG (a figure with a title and accessible text)."""
    if not items or not any(v for _, v, _ in items):
        return (f"<figure class=\"chart\" id=\"{name}\"><figcaption>{_e(title)}</figcaption>"
                "<p class=\"empty\">nothing to show</p></figure>")
    top = max(v for _, v, _ in items) or 1
    row_h, label_w, pad = 24, 210, 6
    height = row_h * len(items) + pad
    bars = []
    for i, (label, value, shown) in enumerate(items):
        y = pad + i * row_h
        width = max(int(BAR_WIDTH * value / top), 1 if value else 0)
        colour = (colours or {}).get(label, PALETTE[i % len(PALETTE)])
        bars.append(
            f"<text x=\"{label_w - 8}\" y=\"{y + 15}\" text-anchor=\"end\">{_e(_clip(label))}"
            f"</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{width}\" height=\"{row_h - 6}\" "
            f"fill=\"{colour}\"><title>{_e(label)}: {_e(shown)}</title></rect>"
            f"<text x=\"{label_w + width + 6}\" y=\"{y + 15}\">{_e(shown)}</text>")
    svg = (f"<svg role=\"img\" aria-label=\"{_e(title)}\" viewBox=\"0 0 "
           f"{label_w + BAR_WIDTH + 120} {height}\" width=\"100%\">{''.join(bars)}</svg>")
    return (f"<figure class=\"chart\" id=\"{name}\"><figcaption>{_e(title)}</figcaption>"
            f"{svg}</figure>")


def _timeline(points: list[tuple[str, int]]) -> str:
    """Messages over time as columns."""
    title = "Messages over time"
    if not points:
        return (f"<figure class=\"chart\" id=\"timeline\"><figcaption>{title}</figcaption>"
                "<p class=\"empty\">nothing sent yet</p></figure>")
    top = max(n for _, n in points) or 1
    width, height, base = 480, 160, 140
    step = width / len(points)
    cols = []
    for i, (label, n) in enumerate(points):
        h = int((base - 10) * n / top)
        cols.append(f"<rect x=\"{i * step:.1f}\" y=\"{base - h}\" width=\"{max(step - 1, 1):.1f}\" "
                    f"height=\"{h}\" fill=\"#305496\"><title>{_e(label)}: {n:,}</title></rect>")
    first, last = _e(points[0][0]), _e(points[-1][0])
    cols.append(f"<text x=\"0\" y=\"{height - 4}\">{first}</text>"
                f"<text x=\"{width}\" y=\"{height - 4}\" text-anchor=\"end\">{last}</text>")
    return (f"<figure class=\"chart\" id=\"timeline\"><figcaption>{title}</figcaption>"
            f"<svg role=\"img\" aria-label=\"{title}\" viewBox=\"0 0 {width} {height}\" "
            f"width=\"100%\">{''.join(cols)}</svg></figure>")


def _skipped_examples(totals: Totals) -> str:
    rows = [(ex["row"], REASON_TITLES.get(code, code), ex["phone"] or "", ex["reason"])
            for code, examples in totals.examples.items() for ex in examples]
    if not rows:
        return ""
    body = "".join(f"<tr><td class=\"num\">{r}</td><td>{_e(k)}</td><td>{_e(p)}</td>"
                   f"<td>{_e(why)}</td></tr>" for r, k, p, why in sorted(rows))
    return ("<h2>Skipped rows (examples)</h2><table><thead><tr><th>Row</th><th>Reason</th>"
            f"<th>Phone as written</th><th>Detail</th></tr></thead><tbody>{body}</tbody></table>")


def _expensive_table(totals: Totals, cur: str) -> str:
    rows = totals.top_rows()
    if not rows:
        return ""
    body = "".join(
        f"<tr><td class=\"num\">{r['row']}</td><td>{_e(r['e164'])}</td><td>{_e(r['encoding'])}"
        f"</td><td class=\"num\">{r['segments']}</td><td class=\"num\">{_e(r['cost'])}</td>"
        f"<td>{_e(r['ucs2_chars'] or '')}</td><td class=\"text\">{_e(r['text'])}</td></tr>"
        for r in rows)
    return (f"<h2>Most expensive rows</h2><table><thead><tr><th>Row</th><th>Number</th>"
            f"<th>Encoding</th><th>Segments</th><th>Cost ({_e(cur)})</th><th>Forced UCS-2 by</th>"
            f"<th>Text</th></tr></thead><tbody>{body}</tbody></table>")


def _failures_table(failures: list[dict[str, Any]]) -> str:
    if not failures:
        return ""
    body = "".join(f"<tr><td class=\"num\">{f['row']}</td><td>{_e(f['e164'])}</td>"
                   f"<td>{_e(f['error'] or '')}</td></tr>" for f in failures)
    return ("<h2>Failures</h2><table><thead><tr><th>Row</th><th>Number</th><th>Provider's "
            f"reason</th></tr></thead><tbody>{body}</tbody></table>")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _clip(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}header{background:#305496;color:#fff;padding:18px 28px}header h1{margin:0;
font-size:24px}header p{margin:4px 0 0;opacity:.85}main{padding:18px 28px;max-width:1200px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}.card{background:#fff;
border-radius:8px;padding:10px 16px;box-shadow:0 1px 3px rgba(0,0,0,.12);min-width:130px}
.card span{display:block;font-size:12px;color:#666;text-transform:uppercase}.card strong{
font-size:20px}.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));
gap:14px}.chart{background:#fff;border-radius:8px;margin:0;padding:12px 14px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}.chart figcaption{font-weight:600;margin-bottom:6px}
.chart svg text{font-size:12px;fill:#333}.empty{color:#888}table{border-collapse:collapse;
background:#fff;width:100%;margin-bottom:18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}th,td{
padding:6px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}th{
background:#eef1f6}td.num{text-align:right;font-variant-numeric:tabular-nums}td.text{
max-width:480px;white-space:pre-wrap;word-break:break-word}h2{font-size:18px;margin:22px 0 10px}
"""
