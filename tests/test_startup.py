"""Start-up stays light: ``--help``, a command's ``--help`` and a mistyped flag import no
heavy library (an import check, not a timing; the benchmark times it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The libraries that made `batchsms --help` take over a second: only the commands that use
# them may import them.
HEAVY = ("pandas", "pyarrow", "numpy", "jinja2", "openpyxl", "xlsxwriter", "aiohttp", "httpx",
         "phonenumbers", "pydantic", "yaml", "starlette", "uvicorn", "batchsms.report.html",
         "batchsms.plan.planner", "batchsms.send.sending")


def imported(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The top-level module names ``python -X importtime -m batchsms ARGS`` imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "batchsms", *args],
                          capture_output=True, text=True, timeout=60)
    names = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return names, done


@pytest.mark.parametrize("args", [["--help"], ["dry-run", "--help"], ["send", "--help"],
                                  ["status", "--help"], ["send", "--no-such-flag", "x.yaml"],
                                  ["--version"]])
def test_start_up_imports_no_heavy_library(args: list[str]) -> None:
    names, done = imported(*args)
    assert "batchsms.cli.commands" in names  # the check really saw the CLI start
    heavy = sorted(n for n in names if any(n == h or n.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"batchsms {' '.join(args)} imported {heavy}"
    assert done.returncode == (2 if "--no-such-flag" in args else 0), done.stderr[-500:]


def test_a_command_still_imports_what_it_needs() -> None:
    # The counter-check: the import list is read right, so a real command shows pandas.
    names, done = imported("check", "no-such-campaign.yaml")
    assert done.returncode == 2
    assert {"batchsms.plan.campaign", "pandas"} <= names


def test_a_csv_campaign_does_not_import_the_workbook_reader(tmp_path) -> None:
    (tmp_path / "contacts.csv").write_text("phone,name\n+45 20 12 34 56,Ann\n", encoding="utf-8")
    (tmp_path / "message.txt").write_text("Hi << name >>", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "name: light\ncontacts: {path: contacts.csv, default_region: DK}\n"
        "template: {path: message.txt}\nprovider: {name: mailjet, sender: Shop, sandbox: true}\n"
        "pricing: {currency: EUR, default: 0.05}\n", encoding="utf-8")
    names, done = imported("check", str(tmp_path / "c.yaml"))
    assert done.returncode == 0, done.stderr[-500:]
    assert "batchsms.plan.workbook" in names and "pandas" in names
    assert not {n for n in names if n.split(".")[0] in ("openpyxl", "xlsxwriter")}
    assert "holidays" not in names  # no window that skips holidays: no holiday tables


def test_status_reads_the_journal_without_pandas_or_a_provider_client(tmp_path) -> None:
    from batchsms.cli.commands import main

    (tmp_path / "contacts.csv").write_text("phone,name\n+45 20 12 34 56,Ann\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "name: quick\ncontacts: {path: contacts.csv, default_region: DK}\n"
        "template: {text: 'Hi << name >>'}\n"
        "provider: {name: mailjet, sender: Shop, sandbox: true}\n"
        "pricing: {currency: EUR, default: 0.05}\n", encoding="utf-8")
    assert main(["send", str(tmp_path / "c.yaml"), "--yes"]) == 0
    names, done = imported("status", str(tmp_path / "c.yaml"))
    assert done.returncode == 0, done.stderr[-500:]
    assert "batchsms.send.status" in names and "batchsms.send.journal" in names
    too_heavy = ("pandas", "pyarrow", "numpy", "httpx", "jinja2", "openpyxl", "xlsxwriter",
                 "batchsms.plan.planner", "batchsms.send.sending", "batchsms.providers.connect")
    assert sorted(n for n in names if n.split(".")[0] in too_heavy or n in too_heavy) == []
