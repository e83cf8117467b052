"""Output that cannot hurt: neutralised CSV cells (phone-like ones too), control characters
escaped before a terminal or an XLSX cell, results never lost to a control character, a
crash log that is private and holds no data, and folders that cannot be written named."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest
from hostile import campaign
from openpyxl import load_workbook

from batchsms.cli.commands import main, write_crash_log
from batchsms.report.csvfile import neutralise_text
from batchsms.report.escape import escape_controls

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[8m"


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_phone_like_cells_are_neutralised_in_the_dry_run_csv_and_read_back(tmp_path, capsys):
    sheet = "phone,name\n+45-20-12-34-56,Ann\n+45 20 12 34 57,=1+2\n-12.5,Bo\n"
    path = campaign(tmp_path, sheet=sheet)
    assert main(["dry-run", str(path), "--reports", str(tmp_path / "r")]) == 0
    written = tmp_path / "r" / "hostile" / "dry-run.csv"
    rows = rows_of(written)
    assert [r["phone"] for r in rows] == ["'+45-20-12-34-56", "'+45 20 12 34 57", "-12.5"]
    assert rows[1]["text"] == "Hi =1+2"  # "Hi" first: nothing for a spreadsheet to run
    # batchsms reads its own neutralised file back as the numbers they were
    again = campaign(tmp_path / "r" / "hostile", sheet=written.read_bytes(), sheet_name="in.csv",
                     template='text: "Hi"')
    assert main(["dry-run", str(again), "--json", "--reports", str(tmp_path / "r2")]) == 0
    assert '"sendable": 2' in capsys.readouterr().out


def test_escape_controls_and_neutralise_text():
    assert escape_controls("a\x1b[2Jb\x07\tc\nd\u202ee\x9b") == \
        "a<U+001B>[2Jb<U+0007>\tc\nd<U+202E>e<U+009B>"
    assert neutralise_text("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert neutralise_text("+45 20 12 34 56") == "+45 20 12 34 56"  # an XLSX text cell
    assert neutralise_text("\x1b=x") == "<U+001B>=x"


def test_preview_never_sends_terminal_escapes_from_the_sheet(tmp_path, capsys):
    path = campaign(tmp_path, sheet=f"phone,name\n+4520123456,Ann{ESCAPES}\n")
    assert main(["preview", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "Ann⟦<U+001B>⟧]0;owned⟦<U+0007>⟧⟦<U+001B>⟧[2J⟦<U+001B>⟧[8m" in out


def test_test_send_never_echoes_terminal_escapes(tmp_path, capsys):
    path = campaign(tmp_path, sheet=f"phone,name\n+4520123456,Ann{ESCAPES}\n")
    code = main(["send", str(path), "--test-to", "+4520123499", "--reports", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "\x1b" not in out and "<U+001B>[2J" in out


def test_a_control_character_does_not_lose_the_results(tmp_path, capsys):
    path = campaign(tmp_path, sheet="phone,name\n+4520123456,Ann\x07\n+4520123457,Bo\x1b\n"
                                    "+45201234\x1b58,Cy\n")
    reports = tmp_path / "r"
    assert main(["send", str(path), "--yes", "--reports", str(reports)]) == 0  # 1 skipped
    folder = reports / "hostile"
    for name in ("results.csv", "results.xlsx", "summary.json", "report.html"):
        assert (folder / name).is_file(), name
    cells = [c.value for row in load_workbook(folder / "results.xlsx").active.iter_rows()
             for c in row if isinstance(c.value, str)]
    assert any(c.startswith("+45201234") for c in cells)  # the skipped row is listed
    assert not [c for c in cells if "\x1b" in c or "\x07" in c]  # escaped, never raw
    assert "\x1b" not in capsys.readouterr().out


def test_the_crash_log_is_private_unique_and_holds_no_data(tmp_path):
    secret = "+4520123456 Søren SECRET-TOKEN"
    planted = tmp_path / "target"
    planted.write_text("keep me")
    try:
        raise KeyError(secret) from ValueError(secret)
    except KeyError as exc:
        first, second = write_crash_log(exc, tmp_path), write_crash_log(exc, tmp_path)
    assert first != second and first.name.startswith("batchsms-crash-")
    for log in (first, second):
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
        text = log.read_text()
        assert "builtins.KeyError raised at:" in text and "builtins.ValueError" in text
        assert "test_hostile_output.py" in text
        assert "SECRET" not in text and "4520123456" not in text and "Søren" not in text
    assert planted.read_text() == "keep me"


@pytest.mark.parametrize("argv", [
    ["dry-run", "{c}", "--reports", "/proc/batchsms"],
    ["dry-run", "{c}", "--reports", "{f}/sub"],
    ["init", "spring", "--folder", "/proc"],
    ["init", "spring", "--folder", "{f}"],
    ["emulator", "--port", "99999"],
])
def test_folders_and_ports_that_cannot_work_are_exit_2_naming_the_flag(tmp_path, capsys, argv):
    path = campaign(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code = main([arg.format(c=path, f=a_file) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2
    flag = next(arg for arg in argv if arg.startswith("--"))
    assert f"Invalid value for '{flag}'" in err


@pytest.mark.parametrize("reports", ["/proc/batchsms", "a-file/reports"])
def test_a_reports_key_that_cannot_be_a_folder_is_named(tmp_path, capsys, reports):
    (tmp_path / "a-file").write_text("x")
    path = campaign(tmp_path, extra=f"reports: {reports}\n")
    assert main(["dry-run", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: reports: " in err and "choose another path" in err
