"""Sheets as people (and programs) break them: each case is built here, run through the real
CLI, and must give exit 2 with a message naming the file and row, or a warning naming them,
and never plan the wrong text or the wrong rows."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hostile import campaign, run_capped

from batchsms.cli.commands import main
from batchsms.plan.campaign import ContactsConfig
from batchsms.plan.contacts import read_contacts, read_suppression


def dry_run(path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[int, dict,
                                                                                    str]:
    code = main(["dry-run", str(path), "--json", "--reports", str(tmp_path / "r")])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if code == 0 else {}, captured.err


def planned(tmp_path: Path) -> dict[int, dict[str, str]]:
    with (tmp_path / "r" / "hostile" / "dry-run.csv").open(encoding="utf-8") as f:
        return {int(r["row"]): r for r in csv.DictReader(f)}


def test_an_unclosed_quote_names_the_row_where_it_opens(tmp_path, capsys):
    path = campaign(tmp_path, sheet='phone,name\n+4520123456,"Ann\n+4520123457,Bo\n'
                                   '+4520123458,Cy\n')
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2
    assert f"{tmp_path / 'contacts.csv'}: row 2: a quote '\"' opens a value here and never " \
           "closes" in err
    assert not (tmp_path / "r" / "hostile" / "dry-run.csv").exists()


def test_quotes_inside_values_that_do_close_are_fine(tmp_path, capsys):
    path = campaign(tmp_path, sheet='phone,name\n+4520123456,"Ann ""A"" B"\n+4520123457,5" TV\n')
    code, totals, _ = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 2
    assert planned(tmp_path)[2]["text"] == 'Hi Ann "A" B'


def test_a_closed_10_mb_quoted_cell_is_named_as_too_long_not_unclosed(tmp_path, capsys):
    path = campaign(tmp_path, sheet='phone,name\n+4520123457,Bo\n+4520123456,"'
                                   + "x" * (10 << 20) + '"\n')
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2
    assert "contacts.csv: row 3: this cell holds more than 100,000 characters" in err
    assert "never closes" not in err and "BATCHSMS_MAX_CELL_CHARS" in err


def test_a_hidden_first_sheet_is_never_planned(tmp_path, capsys):
    book = openpyxl.Workbook()
    old = book.active
    old.title = "Old list"
    old.append(["phone", "name"])
    old.append(["+4520999999", "Former customer"])
    old.sheet_state = "hidden"
    current = book.create_sheet("Contacts")
    current.append(["phone", "name"])
    current.append(["+4520123456", "Ann"])
    book.save(tmp_path / "contacts.xlsx")
    path = campaign(tmp_path, sheet=(tmp_path / "contacts.xlsx").read_bytes(),
                    sheet_name="contacts.xlsx")
    code, totals, err = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 1
    assert "warning: " in err and "reading the first visible sheet, 'Contacts'" in err
    assert "'Old list'" in err
    assert [r["text"] for r in planned(tmp_path).values()] == ["Hi Ann"]


def workbook_bytes(build) -> bytes:
    book = openpyxl.Workbook()
    build(book)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def edited_workbook(edit) -> bytes:
    """A real workbook whose workbook.xml is edited as a program (not Excel) might write it."""
    data = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook_bytes(lambda b: b.active.append(["phone"])))) \
            as src, zipfile.ZipFile(data, "w") as dst:
        for item in src.infolist():
            text = src.read(item)
            dst.writestr(item, edit(text) if item.filename == "xl/workbook.xml" else text)
    return data.getvalue()


def test_every_sheet_hidden_and_no_sheet_at_all(tmp_path, capsys):
    hidden = edited_workbook(lambda xml: xml.replace(b' state="visible"', b"").replace(
        b"<sheet ", b'<sheet state="hidden" '))
    path = campaign(tmp_path, sheet=hidden, sheet_name="c.xlsx")
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2 and "c.xlsx: every sheet of this workbook is hidden" in err

    def no_sheets(xml: bytes) -> bytes:
        start, end = xml.index(b"<sheets>"), xml.index(b"</sheets>") + 9
        return xml[:start] + b"<sheets/>" + xml[end:]
    path = campaign(tmp_path, sheet=edited_workbook(no_sheets), sheet_name="c.xlsx")
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2 and "c.xlsx: this workbook has no worksheets" in err


def test_an_encrypted_workbook_is_named_as_such(tmp_path, capsys):
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000)
    for name in ("c.xlsx", "c.csv"):
        path = campaign(tmp_path, sheet=ole, sheet_name=name)
        code, _, err = dry_run(path, capsys, tmp_path)
        assert code == 2 and f"{name}: this " in err and "encrypted" in err


def test_formulas_without_calculated_values_are_named(tmp_path, capsys):
    def formulas(book):
        sheet = book.active
        sheet.append(["phone", "name"])
        sheet.append(["+4520123456", "Ann"])
        sheet.append(['="+4520"&"123457"', "Bo"])
    path = campaign(tmp_path, sheet=workbook_bytes(formulas), sheet_name="c.xlsx")
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2
    assert "c.xlsx: cell A3: this formula has no calculated value" in err


def test_a_zip_bomb_workbook_is_refused_quickly_under_a_memory_cap(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook_bytes(lambda b: b.active.append(["phone"])))) \
            as src, zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename == "xl/worksheets/sheet1.xml":
                with dst.open(item.filename, "w") as part:
                    part.write(src.read(item).replace(b"<sheetData>", b"<sheetData>"
                                                      + b" " * (64 << 20)))
            else:
                dst.writestr(item, src.read(item))
    path = campaign(tmp_path, sheet=data.getvalue(), sheet_name="c.xlsx")
    done = run_capped("check", path, timeout=30)
    assert done.code == 2
    assert "c.xlsx: the part xl/worksheets/sheet1.xml of this workbook unpacks to" in done.err
    done = run_capped("check", path, timeout=30, env={"BATCHSMS_MAX_XLSX_BYTES": "1000000"})
    assert done.code == 2 and "more than the 1,000,000 allowed" in done.err


def test_mixed_encodings_read_each_byte_right_and_warn_with_the_row(tmp_path, capsys):
    sheet = ("phone,name\n+4520123456,Søren\n".encode() + b"+4520123457,Bj\xf8rn\n"
             + "+4520123458,Zoë\n".encode())
    path = campaign(tmp_path, sheet=sheet)
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 0
    assert "warning: " in err and "contacts.csv: row 3: this row is not valid UTF-8" in err
    assert [r["text"] for r in planned(tmp_path).values()] == ["Hi Søren", "Hi Bjørn", "Hi Zoë"]


def test_a_plain_cp1252_file_is_still_read_without_a_warning(tmp_path, capsys):
    path = campaign(tmp_path, sheet="phone,name\n+4520123456,Søren\n".encode("cp1252"))
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 0 and "warning" not in err
    assert planned(tmp_path)[2]["text"] == "Hi Søren"


@pytest.mark.parametrize("error", ["#N/A", "#REF!", "#VALUE!", "#DIV/0!", "#NAME?"])
def test_spreadsheet_error_cells_are_missing_values(tmp_path, capsys, error):
    path = campaign(tmp_path, sheet=f"phone,name\n+4520123456,{error}\n+4520123457,Bo\n")
    code, totals, _ = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 1
    row = planned(tmp_path)[2]
    assert row["status"] == "skipped" and row["reason"] == "empty cell in column 'name'"


def test_utf16_without_bom_is_read(tmp_path, capsys):
    path = campaign(tmp_path, sheet="phone,name\n+4520123456,Zoë\n".encode("utf-16-le"))
    code, totals, _ = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 1
    assert planned(tmp_path)[2]["text"] == "Hi Zoë"


def test_excel_sep_line_names_the_separator(tmp_path, capsys):
    path = campaign(tmp_path, sheet="sep=;\nphone;name\n+4520123456;Ann\n")
    code, totals, _ = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 1
    assert planned(tmp_path)[3]["text"] == "Hi Ann"


def test_a_stray_cell_under_an_unnamed_column_skips_only_its_row(tmp_path, capsys):
    path = campaign(tmp_path, sheet="phone,,name\n+4520123456,,Ann\n+4520123457,x,Bo\n")
    code, totals, _ = dry_run(path, capsys, tmp_path)
    assert code == 0 and totals["sendable"] == 1
    skipped = planned(tmp_path)[3]
    assert skipped["reason_code"] == "malformed_row" and "column B" in skipped["reason"]


def test_a_binary_file_as_the_sheet(tmp_path, capsys):
    path = campaign(tmp_path, sheet=bytes(range(256)) * 64)
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2 and "contacts.csv: this file holds binary data (zero bytes)" in err


def test_invisible_characters_in_headers_are_shown_escaped(tmp_path, capsys):
    path = campaign(tmp_path, sheet="pho\u200bne,name\n+4520123456,Ann\n")
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2
    assert "'pho\\u200bne'" in err and "invisible or control character" in err


@pytest.mark.parametrize(("encoding", "says"), [
    ("rot13", "'rot13' is not a text encoding"), ("zlib", "'zlib' is not a text encoding"),
    ("utf-16", "contacts.csv is not valid utf-16"), ("klingon", "unknown encoding 'klingon'")])
def test_bad_contacts_encoding_values_name_the_key(tmp_path, capsys, encoding, says):
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace("  default_region: DK\n",
                                             f"  default_region: DK\n  encoding: {encoding}\n"))
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2 and "contacts.encoding: " in err and says in err


def test_a_garbage_suppression_file_is_exit_2_naming_it(tmp_path, capsys):
    (tmp_path / "stop.csv").write_bytes(bytes(range(256)) * 16)
    path = campaign(tmp_path, extra="suppression: stop.csv\n")
    code, _, err = dry_run(path, capsys, tmp_path)
    assert code == 2 and "stop.csv: this file holds binary data" in err


def test_a_suppression_file_of_cp1252_text_still_reads(tmp_path):
    (tmp_path / "stop.csv").write_bytes("phone,note\n+4520123456,Bjørn\n".encode("cp1252"))
    assert read_suppression(tmp_path / "stop.csv").tolist() == ["+4520123456"]


def test_read_contacts_gives_the_row_numbers_people_see_after_a_sep_line(tmp_path):
    sheet = tmp_path / "c.csv"
    sheet.write_text("sep=,\nphone,name\n+4520123456,Ann\n\n+4520123457,Bo\n")
    [frame] = read_contacts(ContactsConfig(path=sheet))
    assert frame.index.tolist() == [3, 5]
