"""report.html: self-contained, escaped, and it loads in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from batchsms.report.dryrun import dry_run
from batchsms.report.html import SendView, write_report

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


def test_send_view_adds_outcomes_failures_and_timeline(report):
    html = report.read_text(encoding="utf-8")
    assert 'id="outcomes"' not in html
    result = dry_run(report.parents[2] / "c.yaml", reports=None)
    view = SendView({"sent": 1, "failed": 1, "unknown": 0, "pending": 0, "skipped": 1,
                     "reported_cost": {"EUR": "0.0012"},
                     "failures_by_reason": {"sms-0002 <Unsupported> country": 1}},
                    failures=[{"row": 3, "e164": "+4520123457", "error": "<b>nope</b>"}],
                    timeline=[("21:00", 1), ("21:01", 1)])
    write_report(report, result.campaign, result.totals, view)
    html = report.read_text(encoding="utf-8")
    for name in ("outcomes", "failures-by-reason", "timeline"):
        assert f'id="{name}"' in html
    assert "&lt;b&gt;nope&lt;/b&gt;" in html and "&lt;Unsupported&gt;" in html


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


def test_report_loads_in_chromium_with_charts_and_no_console_errors(report, tmp_path):
    run = _load(report, tmp_path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console(run.stderr) == []
    dom = run.stdout
    for chart in ("cost-by-country", "by-encoding", "by-segments", "skipped-by-reason"):
        assert re.search(rf'<figure class="chart" id="{chart}">.*?<svg', dom, re.S), chart
    assert "&lt;script&gt;" in dom  # shown as text in the live DOM
    shot = tmp_path / "report.png"
    run = _load(report, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600")
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
