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
    assert "estimated cost   EUR 0.0479" in out
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
         r"template\.txt: the template uses 'frist_name', but contacts\.csv has no such column.*"
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
