"""What a newcomer does: init, preview, dry-run, a test send, a send, the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchsms.cli.commands import main
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.send.journal import Journal


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    app, env = rehearsal_app(tmp_path_factory.mktemp("emulator"))
    with serve_in_thread(app) as root:
        yield app.state.emulators["mailjet"], base_urls(root)["mailjet"], env


def run(argv, capsys, monkeypatch=None, env=None):
    if env and monkeypatch:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_init_preview_dry_run_and_send_in_sandbox(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(["init", "first"], capsys)
    assert code == 0 and "Created first/" in out
    campaign = tmp_path / "first" / "first.yaml"
    code, out, _ = run(["preview", campaign], capsys)
    assert code == 0
    assert "Zo⟦ë⟧" in out and "forced UCS-2 by: ë" in out  # highlighted without a terminal
    code, out, _ = run(["dry-run", campaign], capsys)
    assert code == 0
    report = tmp_path / "first" / "reports" / "first" / "report.html"  # beside the YAML
    assert 'id="cost-by-country"' in report.read_text(encoding="utf-8")
    code, out, _ = run(["send", campaign, "--yes"], capsys)
    assert code == 0, out
    page = report.read_text(encoding="utf-8")
    for chart in ("outcomes", "failures-by-reason", "timeline"):
        assert f'id="{chart}"' in page
    assert "After sending" in page


def test_preview_rows_and_a_missing_row(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(["init", "rows"], capsys)
    code, out, _ = run(["preview", "rows/rows.yaml", "--row", "3", "--row", "2"], capsys)
    assert code == 0
    assert out.index("row 3 ") < out.index("row 2 ")
    code, _, err = run(["preview", "rows/rows.yaml", "--row", "40"], capsys)
    assert code == 2 and "no contact at row 40" in err


def write_campaign(folder: Path, base_url: str) -> Path:
    (folder / "contacts.csv").write_text(
        "phone,name\n+45 20 12 34 51,Anna\n+45 20 12 34 52,Bo\n+45 20 12 34 53,Cy\n",
        encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text(f"""\
name: tested
contacts: {{path: contacts.csv, default_region: DK}}
template: {{text: "Hi << name >>, sale today"}}
provider: {{name: mailjet, sender: Shop, base_url: "{base_url}"}}
pricing: {{currency: EUR, default: 0.05}}
""", encoding="utf-8")
    return path


def test_a_test_send_is_never_a_recipients_message(emulator, tmp_path, capsys, monkeypatch):
    state, url, env = emulator
    state.reset()
    state.accounts.clear()
    from batchsms.emulator.mailjet import make_account

    account = make_account({"credential": env["MAILJET_SMS_TOKEN"], "daily_limit": None})
    state.accounts[account.credential] = account
    campaign = write_campaign(tmp_path, url)
    reports = tmp_path / "reports"
    code, out, _ = run(["send", campaign, "--test-to", "+46 70 123 45 67", "--row", "3",
                        "--reports", reports], capsys, monkeypatch, env)
    assert code == 0, out
    assert "Test send of row 3 to +46701234567: sent" in out
    assert [(r.to, r.text) for r in state.records] == [("+46701234567", "Hi Bo, sale today")]
    code, out, _ = run(["send", campaign, "--yes", "--reports", reports], capsys)
    assert code == 0, out
    got = sorted((r.to, r.text) for r in state.records)
    assert got == [("+4520123451", "Hi Anna, sale today"), ("+4520123452", "Hi Bo, sale today"),
                   ("+4520123453", "Hi Cy, sale today"), ("+46701234567", "Hi Bo, sale today")]
    journal = Journal.open(reports / "tested" / "journal.sqlite")
    try:
        assert journal.counts()["sent"] == 3
        assert [t[3] for t in journal.tests()] == ["+46701234567"]
    finally:
        journal.close()
    code, out, _ = run(["status", campaign, "--json", "--reports", reports], capsys)
    assert json.loads(out)["sent"] == 3


def test_test_send_refuses_a_skipped_row_and_a_bad_number(emulator, tmp_path, capsys,
                                                          monkeypatch):
    _, url, env = emulator
    campaign = write_campaign(tmp_path, url)
    code, _, err = run(["send", campaign, "--test-to", "12", "--reports", tmp_path], capsys,
                       monkeypatch, env)
    assert code == 2 and re.search(r"--test-to '12': not a valid number", err)
    code, _, err = run(["send", campaign, "--test-to", "+46701234567", "--row", "9"], capsys)
    assert code == 2 and "there is no contact at row 9" in err
    code, _, err = run(["send", campaign, "--row", "2"], capsys)
    assert code == 2 and "--row goes with --test-to" in err
