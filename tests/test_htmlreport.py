"""report.html: self-contained, escaped, and it loads in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from batchsms.report.dryrun import dry_run
from batchsms.report.html import CSS, SendView, write_report

YAML = """\
name: html-test
contacts:
  path: contacts.csv
  default_region: DK
template:
  text: "Hi << name >>, see you in << city >>!"
provider: {name: mailjet, sender: Shop, sandbox: true}
pricing: {currency: EUR, default: 0.05, countries: {DK: 0.04}}
"""
SHEET = """\
phone,name,city
+45 20 12 34 56,<script>alert('x')</script>,Aarhus
+45 20 12 34 57,Zoë <b>bold</b>,"<img src=x onerror=alert(1)>"
not a number,<i>junk</i>,Vejle
"""
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    (tmp_path / "c.yaml").write_text(YAML, encoding="utf-8")
    (tmp_path / "contacts.csv").write_text(SHEET, encoding="utf-8")
    result = dry_run(tmp_path / "c.yaml", reports=tmp_path / "reports")
    assert result.csv_path is not None
    return result.csv_path.parent / "report.html"


def test_contact_data_is_escaped_never_markup(report):
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "<img" not in page.lower() and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_self_contained_no_network(report):
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


LONG_REASON = "sms-0002 Unsupported country code for this sender, please check the number"
NOW = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)


def _summary(**counts: Any) -> dict[str, Any]:
    base = {"sent": 0, "failed": 0, "unknown": 0, "pending": 0, "skipped": 1,
            "estimated_cost": "0", "currency": "EUR", "reported_cost": {},
            "failures_by_reason": {}}
    return {**base, **counts}


# One view per state a campaign can be in after sending started (None: the dry run).
STATES: dict[str, SendView | None] = {
    "dry-run": None,
    "partly-sent": SendView(_summary(sent=1, pending=1, estimated_cost="0.0400"),
                            timeline=[("21:00:00", 1)]),
    "sent-with-failures": SendView(
        _summary(sent=1, failed=1, unknown=1, estimated_cost="0.0400",
                 reported_cost={"EUR": "0.0375"}, failures_by_reason={LONG_REASON: 1}),
        failures=[{"row": 3, "e164": "+4520123457", "error": LONG_REASON}],
        unknowns=[{"row": 2, "e164": "+4520123456", "error": "no answer within 30 s"}],
        timeline=[(f"21:{m:02d}:00", n) for m, n in enumerate([3, 5, 8, 12, 20, 25, 30, 28])]),
    "all-failed": SendView(
        _summary(failed=2, failures_by_reason={"Insufficient funds": 2}),
        failures=[{"row": 2, "e164": "+4520123456", "error": "Insufficient funds"},
                  {"row": 3, "e164": "+4520123457", "error": "Insufficient funds"}]),
}


def _page(report: Path, state: str) -> str:
    result = dry_run(report.parents[2] / "c.yaml", write=False)
    write_report(report, result.campaign, result.totals, STATES[state], now=NOW)
    return report.read_text(encoding="utf-8")


def test_each_state_says_what_happened_first(report):
    banners = {state: re.search(r'<p class="banner \w+" id="banner">(.*?)</p>',
                                _page(report, state))[1] for state in STATES}
    assert banners["dry-run"] == "Dry run: nothing has been sent. A send would message 2 " \
                                 "recipients."
    assert banners["partly-sent"].startswith("Partly sent: 1 of 2 settled; 1 not sent yet. Run")
    assert banners["sent-with-failures"] == "Sent: 1 accepted by the provider, 1 failed, " \
                                            "1 unknown."
    assert banners["all-failed"].startswith("Every message that was tried failed (2)")
    assert "nothing sent yet" not in _page(report, "all-failed")
    assert "no message was accepted by the provider" in _page(report, "all-failed")


def test_send_view_shows_the_cost_of_what_went_out_and_the_unknown_and_failed_rows(report):
    page = _page(report, "sent-with-failures")
    for name in ("outcomes", "failures-by-reason", "timeline", "failed-rows", "unknown-rows"):
        assert f'id="{name}"' in page
    assert "<span>Cost of what went out</span><strong>EUR 0.04</strong>" in page
    assert "<span>Plan estimate (all)</span><strong>EUR 0.08</strong>" in page
    assert "<span>Reported by the provider</span><strong>EUR 0.04</strong>" in page
    assert re.search(r'id="unknown-rows".*?<td class="num">2</td><td class="phone">\+4520123456'
                     r'</td><td>no answer within 30 s</td>', page, re.S)
    assert re.search(r'id="failed-rows".*?<td class="num">3</td>', page, re.S)
    assert page.count(LONG_REASON) >= 2  # never clipped, in the chart and the table


def test_colours_mean_outcomes_and_encodings(report):
    page = _page(report, "sent-with-failures")
    bar = (r'<div class="label">{}</div><div class="track"><div class="bar" '
           r'style="[^"]*background:{}')
    assert re.search(bar.format("sent", "#2e7d32"), page)
    assert re.search(bar.format("failed", "#c62828"), page)
    assert re.search(bar.format(r"unknown \(may have arrived\)", "#f9a825"), page)
    assert re.search(bar.format("GSM-7", "#1f5fa8"), page)
    assert re.search(bar.format("UCS-2", "#e06c00"), page)
    country = re.search(r'id="cost-by-country".*?</figure>', page, re.S)[0]
    assert len(set(re.findall(r"background:(#[0-9a-f]{6})", country))) == 1  # one kind, one colour


def test_time_chart_has_a_count_axis_and_time_labels(report):
    chart = re.search(r'id="timeline".*?</figure>', _page(report, "sent-with-failures"), re.S)[0]
    assert '<div class="yaxis"><span>30</span><span>15</span><span>0</span></div>' in chart
    assert '<div class="xaxis"><span>21:00:00</span><span>21:04:00</span><span>21:07:00</span>' \
        in chart
    assert chart.count('class="col"') == 8 and "131 messages accepted in 8 time slices" in chart


def test_text_is_never_smaller_than_12px_and_nothing_is_clipped():
    sizes = [int(px) for px in re.findall(r"font(?:-size)?:\s*(\d+)px", CSS)]
    assert sizes and min(sizes) >= 12
    assert "text-overflow" not in CSS and "<svg" not in CSS  # labels wrap, never cut
    assert re.search(r"td\.phone\{white-space:nowrap", CSS)


def test_dry_run_after_a_send_keeps_the_sends_page(report, capsys):
    folder = report.parent
    _page(report, "sent-with-failures")
    (folder / "summary.json").write_text("{}", encoding="utf-8")
    result = dry_run(report.parents[2] / "c.yaml", reports=report.parents[1])
    assert result.report_kept
    assert '<span id="state">sent</span>' in report.read_text(encoding="utf-8")


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, ("Chromium is needed for the browser test: install it from the system "
                   "packages (apt-get install chromium); .ci/run does this")
    return found


def _load(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
         "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_detector_sees_errors(tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<script>console.error('boom'); missing();</script>", encoding="utf-8")
    run = _load(broken, tmp_path, "--dump-dom")
    assert any("boom" in line for line in _console(run.stderr))
    assert any("Uncaught ReferenceError" in line for line in _console(run.stderr))


@pytest.mark.parametrize("state", list(STATES))
def test_each_state_loads_in_chromium_with_charts_and_no_console_errors(report, tmp_path,
                                                                         state):
    _page(report, state)
    run = _load(report, tmp_path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    dom = run.stdout
    charts = ["cost-by-country", "by-encoding", "by-segments", "skipped-by-reason"]
    if STATES[state] is not None:
        charts += ["outcomes"]
    for chart in charts:
        assert re.search(rf'<figure class="chart" id="{chart}">.*?<div class="bar"', dom,
                         re.S), chart
    assert "&lt;script&gt;" in dom  # shown as text in the live DOM
    for width, height in ((1280, 1600), (400, 2400)):  # a laptop and a phone
        shot = tmp_path / f"report-{state}-{width}.png"
        run = _load(report, tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}")
        assert run.returncode == 0, run.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_real_sandbox_send_writes_the_send_page_and_dry_run_keeps_it(report, capsys):
    from batchsms.cli.commands import main

    campaign, reports = report.parents[2] / "c.yaml", report.parents[1]
    assert main(["send", str(campaign), "--yes", "--reports", str(reports)]) == 0
    page = report.read_text(encoding="utf-8")
    assert '<span id="state">sent</span>' in page
    assert "Sent: 2 accepted by the provider, 0 failed, 0 unknown." in page
    assert "<span>Cost of what went out</span><strong>EUR 0.08</strong>" in page
    assert main(["dry-run", str(campaign), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "(kept as the send wrote it: this campaign was sent)" in out
    assert report.read_text(encoding="utf-8") == page
