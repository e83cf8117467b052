"""The command line end to end, on real campaign folders written by the tests."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import ROOT

from batchsms.cli.commands import cli, main

YAML = """\
name: test-campaign
contacts:
  path: contacts.csv
  default_region: DK
template:
  path: template.txt
provider:
  name: mailjet
  sender: TestShop
  sandbox: true
pricing:
  currency: EUR
  default: 0.05
  countries: {DK: 0.04, FR: 0.0079}
"""
SHEET = """\
phone,first_name,city
+45 20 12 34 56,Søren,København
0033 6 12 34 56 78,Zoë,Paris
+45 20 12 34 56,Again,Vejle
not a phone,Nora,Roskilde
+45 20 99 88 77,,Vejle
"""
TEMPLATE = "Hi << first_name >> in << city >>!\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def campaign(campaign_dir) -> Path:
    return campaign_dir(yaml=YAML, sheet=SHEET, template=TEMPLATE)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_dry_run_json_totals_match_the_csv(campaign, tmp_path, capsys):
    reports = tmp_path / "reports"
    code, out, err = run(["dry-run", str(campaign), "--json", "--reports", str(reports)], capsys)
    assert code == 0, err
    data = json.loads(out)
    rows = read_csv(reports / "test-campaign" / "dry-run.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert data["recipients"] == len(rows) == 5
    assert data["sendable"] == len(ok) == 2
    assert data["skipped"] == 3
    assert data["skipped_by_reason"] == {"duplicate": 1, "invalid_number": 1, "missing_value": 1}
    assert data["segments"] == sum(int(r["segments"]) for r in ok)
    assert Decimal(data["cost"]) == sum(Decimal(r["cost"]) for r in ok)
    assert data["currency"] == "EUR"
    assert set(data["by_country"]) == {"DK", "FR"}
    assert data["by_encoding"]["UCS-2"]["recipients"] == 1  # Zoë


def test_dry_run_csv_rows_texts_and_reasons(campaign, tmp_path, capsys):
    reports = tmp_path / "reports"
    assert run(["dry-run", str(campaign), "--reports", str(reports)], capsys)[0] == 0
    rows = {int(r["row"]): r for r in read_csv(reports / "test-campaign" / "dry-run.csv")}
    assert list(rows) == [2, 3, 4, 5, 6]
    assert rows[2]["e164"] == "+4520123456"
    assert rows[2]["text"] == "Hi Søren in København!"
    assert rows[2]["encoding"] == "GSM-7" and rows[2]["cost"] == "0.0400"
    assert rows[3]["encoding"] == "UCS-2" and rows[3]["ucs2_chars"] == "ë"
    assert rows[3]["cost"] == "0.0079" and rows[3]["country"] == "FR"
    assert rows[4]["status"] == "skipped" and rows[4]["reason"] == "duplicate of row 2"
    assert rows[5]["reason_code"] == "invalid_number"
    assert rows[6]["reason"] == "empty cell in column 'first_name'"


def test_dry_run_human_summary_is_short_and_names_reasons(campaign, tmp_path, capsys):
    code, out, _ = run(["dry-run", str(campaign), "--reports", str(tmp_path / "r")], capsys)
    assert code == 0
    assert "to send                   2" in out
    assert "duplicate number (1)" in out and "row 4" in out
    assert "estimated cost   EUR 0.05" in out  # the currency's precision on screen
    assert "Most expensive rows" in out
    assert len(out.splitlines()) < 40


def test_check_writes_nothing(campaign, tmp_path, capsys):
    code, out, _ = run(["check", str(campaign)], capsys)
    assert code == 0
    assert "check passed" in out
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"yaml": YAML.replace("contacts.csv", "missing.csv")},
         r"campaign\.yaml: contacts\.path: file not found: .*missing\.csv"),
        ({"yaml": YAML + "oops: [\n"}, r"campaign\.yaml: line \d+.*not valid YAML"),
        ({"yaml": YAML.replace("  sandbox: true", "  sandbox: true\n  sendr: x")},
         r"campaign\.yaml: line 11: provider\.sendr: unknown key 'sendr'.*did you mean 'sender'"),
        ({"template": "Hi << frist_name >>"},
         r"template\.txt: line 1: the template uses .frist_name., but contacts\.csv has no "
         r"such column.*"
         r"did you mean 'first_name'"),
        ({"yaml": YAML.replace("TestShop", "TS")},
         r"campaign\.yaml: line 9: provider\.sender: 'TS' is not a valid Mailjet sender"),
        ({"yaml": YAML.replace("default_region: DK", "phone_column: mobile")},
         r"contacts\.phone_column.*'mobile'"),
    ],
    ids=["missing-sheet", "bad-yaml", "unknown-key", "missing-variable", "bad-sender",
         "bad-phone-column"],
)
def test_campaign_errors_exit_2_with_file_and_key(campaign_dir, capsys, change, expected):
    path = campaign_dir(**{"yaml": YAML, "sheet": SHEET, "template": TEMPLATE, **change})
    for command in ("check", "dry-run"):
        code, out, err = run([command, str(path)], capsys)
        assert code == 2
        assert re.search(expected, err, re.S), err
        assert "Traceback" not in err and out == ""


def test_missing_campaign_file(tmp_path, capsys):
    code, _, err = run(["dry-run", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2
    assert "nope.yaml: no such campaign file" in err


def test_usage_error_is_exit_2(capsys):
    code, _, err = run(["dry-run"], capsys)
    assert code == 2
    assert "Missing argument" in err


@pytest.mark.parametrize("example", ["spring-sale", "order-reminders"])
def test_bundled_examples_run_and_match_their_csv(example, tmp_path, capsys):
    folder = tmp_path / "project"
    shutil.copytree(ROOT / "campaigns", folder / "campaigns")
    shutil.copytree(ROOT / "templates", folder / "templates")
    reports = tmp_path / "reports"
    code, out, err = run(["dry-run", str(folder / "campaigns" / f"{example}.yaml"), "--json",
                          "--reports", str(reports)], capsys)
    assert code == 0, err
    data = json.loads(out)
    rows = read_csv(reports / example / "dry-run.csv")
    ok = [r for r in rows if r["status"] == "ok"]
    assert data["recipients"] == len(rows)
    assert data["sendable"] == len(ok) > 0
    assert data["skipped"] > 0  # every example shows a few skipped rows on purpose
    assert Decimal(data["cost"]) == sum(Decimal(r["cost"]) for r in ok)
    assert sum(data["skipped_by_reason"].values()) == data["skipped"]


def test_spring_sale_example_has_both_encodings(tmp_path, capsys):
    code, out, _ = run(["dry-run", str(ROOT / "campaigns" / "spring-sale.yaml"), "--json",
                        "--reports", str(tmp_path)], capsys)
    data = json.loads(out)
    assert code == 0
    assert set(data["by_encoding"]) == {"GSM-7", "UCS-2"}
    assert {"suppressed", "duplicate", "not_mobile", "missing_value"} <= set(
        data["skipped_by_reason"])


def test_every_command_has_help_with_an_example_and_is_in_the_readme(capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in cli.commands:
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0
        assert "Example: batchsms " + name in out
        assert f"batchsms {name}" in readme, f"README does not document `batchsms {name}`"


def test_console_script_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "batchsms", "check",
                             str(ROOT / "campaigns" / "spring-sale.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "spring-sale: check passed" in result.stdout


# -- the terminal -----------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _in_a_terminal(argv: list[str], cwd: Path, answer: bytes = b"", columns: int = 80,
                   ) -> tuple[int, str]:
    """Run batchsms as a real process whose stdin, stdout and stderr are a terminal."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "batchsms", *argv], cwd=cwd, stdin=slave,
                            stdout=slave, stderr=slave, env={**env, "TERM": "xterm"})
    os.close(slave)
    if answer:
        os.write(master, answer)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=120)
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace")


def test_answering_no_exits_0_says_nothing_sent_and_leaves_no_journal(campaign):
    code, screen = _in_a_terminal(["send", str(campaign)], campaign.parent, answer=b"n\n")
    assert code == 0, screen
    assert "Send 2 messages now? [y/N]" in screen
    assert "Nothing sent." in screen
    assert not (campaign.parent / "reports" / "test-campaign" / "journal.sqlite").exists()


def test_the_progress_bar_fits_an_80_column_terminal(campaign_dir):
    sheet = "phone,first_name,city\n" + "".join(
        f"+45 20 99 {i:04d},Ann,Vejle\n" for i in range(60))
    path = campaign_dir(yaml=YAML, sheet=sheet, template=TEMPLATE)
    code, screen = _in_a_terminal(["send", str(path), "--yes"], path.parent, columns=80)
    assert code == 0, screen
    drawn = [ANSI.sub("", part) for part in re.split(r"[\r\n]", screen)]
    bars = [line for line in drawn if "/60 (" in line]
    assert bars and bars[-1].count("60/60 (100%)") == 1
    assert max(len(line) for line in bars) < 80, max(bars, key=len)
    first, last = screen.index("/60 ("), screen.rindex("/60 (")
    assert "\n" not in screen[first:last]  # redrawn in place, never a new line per update
    assert "This run sends 60 messages." in screen and "Writing results…" in screen
    assert "results.csv, results.xlsx, summary.json, report.html" in screen


def test_progress_line_is_cut_to_the_width_least_useful_figures_first():
    import io

    from batchsms.cli.progress import Progress
    from batchsms.send.runner import Stats

    stats = Stats(total=12_982, sent=5_000, failed=2, started=0.0)
    progress = Progress(io.StringIO(), clock=lambda: 10.0, terminal=True, width=200)
    wide = progress.bar(stats, 200).plain
    assert "5,002/12,982 (39%)" in wide and "failed 2" in wide and "500 msg/s" in wide
    for width in (24, 40, 60, 80, 100):
        line = progress.bar(stats, width).plain
        assert len(line) < width and "5,002/12,982 (39%)" in line
    assert "msg/s" not in progress.bar(stats, 60).plain
    assert "━" not in progress.bar(stats, 24).plain  # no room for a useful bar


def test_progress_without_a_terminal_writes_a_plain_line_every_few_seconds():
    import io

    from batchsms.cli.progress import LINE_EVERY, Progress
    from batchsms.send.runner import Stats

    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, clock=lambda: now[0])
    stats = Stats(total=10, started=0.0)
    for step in range(1, 11):
        now[0] = step * LINE_EVERY / 4
        stats.sent = step
        progress.update(stats)
    progress.update(stats, final=True)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sending: 1/10 (10%)")
    assert [line.split()[1] for line in lines] == ["1/10", "5/10", "9/10", "10/10"]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_money_on_screen_uses_the_currencys_precision():
    from batchsms.display import money

    assert money(Decimal("0.215"), "EUR") == "EUR 0.22"
    assert money(Decimal("0.5858"), "EUR") == "EUR 0.59"
    assert money(Decimal("0"), "EUR") == "EUR 0.00"
    assert money(Decimal("1234.5"), "USD") == "USD 1,234.50"
    assert money(Decimal("1234.5"), "JPY") == "JPY 1,235"
    assert money(Decimal("1.2345"), "KWD") == "KWD 1.235"
    assert money(Decimal("0.0079"), "EUR") == "EUR 0.0079"  # not shown as free


def test_plurals_in_the_summary(campaign_dir, tmp_path, capsys):
    one = SHEET.splitlines()[0] + "\n" + SHEET.splitlines()[1] + "\n"
    path = campaign_dir(yaml=YAML, sheet=one, template=TEMPLATE)
    code, out, _ = run(["dry-run", str(path), "--reports", str(tmp_path / "r")], capsys)
    assert code == 0
    assert "(1 segment)" in out and "1 recipient " in out
    assert not re.search(r"\b1 (recipients|segments|messages)\b", out), out


def test_json_errors_go_to_stdout_as_json(campaign_dir, tmp_path, capsys):
    path = campaign_dir(yaml=YAML.replace("TestShop", "TS"), sheet=SHEET, template=TEMPLATE)
    for argv in (["check", str(path), "--json"], ["dry-run", str(path), "--json"]):
        code, out, err = run(argv, capsys)
        assert code == 2
        data = json.loads(out)
        assert data["exit_code"] == 2 and "provider.sender" in data["error"]
        assert "provider.sender" in err


def test_json_usage_errors_are_json_too(capsys):
    code, out, err = run(["dry-run", "--json"], capsys)
    assert code == 2
    assert "Missing argument" in json.loads(out)["error"] and "Missing argument" in err


def test_status_json_of_a_never_sent_campaign_is_json(campaign, tmp_path, capsys):
    code, out, err = run(["status", str(campaign), "--json", "--reports", str(tmp_path / "r")],
                         capsys)
    assert code == 2
    assert "has not been sent yet" in json.loads(out)["error"]
    assert "has not been sent yet" in err


def test_status_text_uses_the_json_state_names(campaign, tmp_path, capsys):
    reports = str(tmp_path / "r")
    assert run(["send", str(campaign), "--yes", "--reports", reports], capsys)[0] == 0
    code, out, _ = run(["status", str(campaign), "--json", "--reports", reports], capsys)
    assert code == 0
    data = json.loads(out)
    _, text, _ = run(["status", str(campaign), "--reports", reports], capsys)
    for state in ("sent", "failed", "unknown", "sending", "pending"):
        assert f"{state} {data[state]:,}" in text
    assert "in doubt" not in text.split("\n")[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["runs"][0]["started_at"])
    assert f"started {data['runs'][0]['started_at']}" in text


def test_preamble_counts_what_the_bar_counts():
    from batchsms.cli.summary import run_plan

    assert run_plan({"to_send": 1, "to_look_up": 0}) == "This run sends 1 message."
    line = run_plan({"to_send": 12_981, "to_look_up": 1})
    assert line.startswith("This run sends 12,981 messages and first asks the provider about 1")
    assert line.endswith("12,982 in all.")


# -- check predicts send -----------------------------------------------------------------

REAL = YAML.replace("  sandbox: true\n", "")


def _check_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    code, out, err = run(["check", str(path), "--json"], capsys)
    return code, json.loads(out), err


def test_check_of_a_ready_campaign_says_ready(campaign, capsys):
    code, data, _ = _check_json(campaign, capsys)
    assert code == 0 and data["ready"] is True and data["problems"] == []


def test_check_finds_missing_credentials_as_send_does(campaign_dir, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.delenv("MAILJET_SMS_TOKEN", raising=False)
    path = campaign_dir(yaml=REAL, sheet=SHEET, template=TEMPLATE)
    code, data, err = _check_json(path, capsys)
    assert code == 2 and data["ready"] is False
    [problem] = data["problems"]
    assert "needs the environment variable MAILJET_SMS_TOKEN" in problem and problem in err
    code, out, err = run(["check", str(path)], capsys)
    assert code == 2 and "check failed" in out and "MAILJET_SMS_TOKEN" in err
    code, _, err = run(["send", str(path), "--yes", "--reports", str(tmp_path / "r")], capsys)
    assert code == 2 and "MAILJET_SMS_TOKEN" in err


def test_check_finds_unusable_credentials_without_showing_them(campaign_dir, capsys,
                                                               monkeypatch, tmp_path):
    yaml = REAL.replace("name: mailjet\n  sender: TestShop", "name: voximplant\n"
                        "  sender: \"4520000000\"")
    path = campaign_dir(yaml=yaml, sheet=SHEET, template=TEMPLATE)
    monkeypatch.setenv("VOXIMPLANT_CREDENTIALS", str(tmp_path / "nowhere.json"))
    code, data, _ = _check_json(path, capsys)
    assert code == 2 and "VOXIMPLANT_CREDENTIALS" in data["problems"][0]
    monkeypatch.setenv("VOXIMPLANT_CREDENTIALS", '{"account_id": 1, "key_id": "k", '
                       '"private_key": "s3cr3t-not-a-key"}')
    code, data, err = _check_json(path, capsys)
    assert code == 2 and "VOXIMPLANT_CREDENTIALS" in data["problems"][0]
    assert "s3cr3t" not in json.dumps(data) and "s3cr3t" not in err


def test_check_finds_a_token_pasted_with_spaces_or_a_line_break(campaign_dir, capsys,
                                                                 monkeypatch):
    path = campaign_dir(yaml=REAL, sheet=SHEET, template=TEMPLATE)
    monkeypatch.setenv("MAILJET_SMS_TOKEN", " tok-secret-123 ")
    code, data, err = _check_json(path, capsys)
    assert code == 2
    assert data["problems"] == [
        "MAILJET_SMS_TOKEN starts or ends with a space (a copy-paste slip?): set it again "
        "without it (its value is not shown here: it is a secret)"]
    monkeypatch.setenv("MAILJET_SMS_TOKEN", "tok-secret-123\n")
    code, data, err = _check_json(path, capsys)
    assert code == 2 and len(data["problems"]) == 1
    assert "MAILJET_SMS_TOKEN holds a line break" in data["problems"][0]
    assert "tok-secret" not in json.dumps(data) + err


def test_check_finds_over_budget_as_send_does(campaign_dir, tmp_path, capsys):
    yaml = YAML + "send:\n  budget: 0.01\n"
    path = campaign_dir(yaml=yaml, sheet=SHEET, template=TEMPLATE)
    code, data, _ = _check_json(path, capsys)
    assert code == 2
    assert data["problems"] == [f"{path}: send.budget: the estimate is EUR 0.0479, over the "
                                "budget of EUR 0.01 by EUR 0.0379. Raise send.budget, or remove "
                                "recipients (see the dry run's most expensive rows)"]
    code, _, err = run(["send", str(path), "--yes", "--reports", str(tmp_path / "r")], capsys)
    assert code == 2 and "over the budget of EUR 0.01" in err


def test_check_finds_nothing_to_send_and_send_refuses_it_alike(campaign_dir, capsys, tmp_path):
    yaml = YAML.replace("name: mailjet\n  sender: TestShop",
                        'name: mailersend\n  sender: "+19191234567"')
    path = campaign_dir(yaml=yaml, sheet=SHEET, template=TEMPLATE)  # no US/CA numbers
    code, data, _ = _check_json(path, capsys)
    assert code == 2 and data["sendable"] == 0
    [problem] = data["problems"]
    assert "no row would be sent: all 5 are skipped (country not served by the provider" in problem
    reports = tmp_path / "r"
    code, _, err = run(["send", str(path), "--yes", "--reports", str(reports)], capsys)
    assert code == 2 and "no row would be sent" in err
    assert not (reports / "test-campaign" / "journal.sqlite").exists()


def test_send_refuses_credentials_its_client_cannot_use_as_check_does(campaign_dir, capsys,
                                                                      monkeypatch, tmp_path):
    path = campaign_dir(yaml=REAL, sheet=SHEET, template=TEMPLATE)
    monkeypatch.setenv("MAILJET_SMS_TOKEN", "tok-secret-123\n")
    code, _, err = run(["send", str(path), "--yes", "--reports", str(tmp_path / "r")], capsys)
    assert code == 2 and "MAILJET_SMS_TOKEN holds a line break" in err
    assert "tok-secret" not in err


def test_a_sandbox_outcome_says_its_costs_are_made_up_and_unknowns_reached_nobody(tmp_path):
    from batchsms.cli.summary import send_outcome
    from batchsms.report.results import ResultFiles

    data = {"campaign": "c", "currency": "EUR", "sent": 1, "failed": 0, "unknown": 1,
            "pending": 0, "skipped": 0, "estimated_cost": "0.10",
            "reported_cost": {"EUR": "0.07"}, "failures_by_reason": {}}
    files = ResultFiles(tmp_path / "results.csv", None, tmp_path / "summary.json", None, data,
                        [], [])
    rehearsal = send_outcome({**data, "sandbox": True}, files, None)
    real = send_outcome({**data, "sandbox": False}, files, None)
    assert "sandbox emulator (made up, not a real price): EUR 0.07" in rehearsal
    assert "reached nobody" in rehearsal and "check them with the provider" not in rehearsal
    assert "Cost reported by the provider: EUR 0.07" in real
    assert "check them with the provider" in real


def test_paths_are_shown_from_the_working_folder_without_dot_dot(tmp_path, monkeypatch):
    from batchsms.display import shown

    (tmp_path / "work" / "campaigns").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    inside = Path("campaigns") / ".." / "reports" / "spring" / "dry-run.csv"
    assert shown(inside) == str(Path("reports") / "spring" / "dry-run.csv")
    outside = tmp_path / "elsewhere" / "results.csv"
    assert shown(outside) == str(outside.resolve())
