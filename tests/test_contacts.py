"""batchsms.plan.contacts on real CSV and XLSX files written into tmp_path."""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from datetime import date, datetime, time
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsms.errors import BatchsmsWarning, CampaignError
from batchsms.plan import sheet_encoding
from batchsms.plan.campaign import ContactsConfig
from batchsms.plan.contacts import PROBLEMS, TEXT, read_columns, read_contacts, read_suppression


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def read(path: Path, chunk_rows: int = 250_000, **config: object) -> pd.DataFrame:
    config.setdefault("phone_column", "phone")
    chunks = list(read_contacts(ContactsConfig(path=path, **config), chunk_rows=chunk_rows))
    frame = pd.concat(chunks)
    frame.attrs[PROBLEMS] = {k: v for c in chunks for k, v in c.attrs[PROBLEMS].items()}
    return frame


def rows(frame: pd.DataFrame) -> dict[int, list[str | None]]:
    return {int(n): [None if pd.isna(v) else v for v in values]
            for n, values in zip(frame.index, frame.itertuples(index=False), strict=True)}


def errors(config: ContactsConfig, source: Path | None = None) -> str:
    with pytest.raises(CampaignError) as caught:
        list(read_contacts(config, source))
    return str(caught.value)


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, cells in sheets.items():
        sheet = book.create_sheet(title)
        for row in cells:
            sheet.append(row)
    book.save(path)
    return path


# -- encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("encoded", "label"), [
    ("name,phone\nZoë Müller,€ 0045\n".encode(), "utf-8"),
    (b"\xef\xbb\xbf" + "name,phone\nZoë Müller,€ 0045\n".encode(), "utf-8 BOM"),
    ("name,phone\nZoë Müller,€ 0045\n".encode("cp1252"), "cp1252"),
    ("name,phone\nZoë Müller,€ 0045\n".encode("utf-16"), "utf-16 BOM"),
])
def test_encodings_are_detected(tmp_path: Path, encoded: bytes, label: str) -> None:
    frame = read(write(tmp_path, "c.csv", encoded))
    assert list(frame.columns) == ["name", "phone"], label
    assert rows(frame) == {2: ["Zoë Müller", "€ 0045"]}, label


def test_cp1252_euro_byte(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", b"name,phone\n\x80uro Zo\xeb,1\n"))
    assert rows(frame) == {2: ["€uro Zoë", "1"]}


def test_latin1_when_cp1252_cannot_decode(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", b"name,phone\nM\xfcller\x81,1\n"))
    assert rows(frame) == {2: ["Müller\x81", "1"]}


def test_explicit_encoding_overrides_detection(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "name,phone\nZoë,1\n".encode("cp1252"))
    assert rows(read(path, encoding="latin-1")) == {2: ["Zoë", "1"]}
    assert rows(read(path, encoding="cp1252")) == {2: ["Zoë", "1"]}


def test_one_late_bad_byte_is_read_as_cp1252_with_a_warning_naming_its_row(
        tmp_path: Path) -> None:
    body = "".join(f"Zoë{i},{i}\n" for i in range(60_000)).encode()
    path = write(tmp_path, "c.csv", b"name,phone\n" + body + b"M\xfcller,1\n")
    with pytest.warns(BatchsmsWarning, match=r"c.csv: row 60002: this row is not valid UTF-8"):
        frame = read(path, chunk_rows=1000)
    assert frame.loc[2, "name"] == "Zoë0"  # not "ZoÃ«0": the file is UTF-8 but for one byte
    assert frame["name"].iloc[-1] == "Müller"


def test_encoding_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"name,phone\nM\xfcller,1\n")
    assert "contacts.encoding: c.csv is not valid utf-8" in errors(
        ContactsConfig(path=path, encoding="utf-8"))
    assert "unknown encoding 'klingon'" in errors(ContactsConfig(path=path, encoding="klingon"))


# -- separators, quoting, row numbers ----------------------------------------------------


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_separators_are_detected(tmp_path: Path, separator: str) -> None:
    text = separator.join(["name", "phone", "city"]) + "\n"
    text += separator.join(["Anna", "+4512345678", '"a, b; c\td"']) + "\n"
    frame = read(write(tmp_path, "c.csv", text))
    assert list(frame.columns) == ["name", "phone", "city"]
    assert rows(frame) == {2: ["Anna", "+4512345678", "a, b; c\td"]}


def test_separator_inside_quoted_header_is_not_counted(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", '"a,b,c";phone\nx;1\n'))
    assert list(frame.columns) == ["a,b,c", "phone"]


def test_explicit_delimiter_overrides_detection(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", "a,b|phone\nx,y|1\n"), delimiter="|")
    assert rows(frame) == {2: ["x,y", "1"]}


def test_quoted_newlines_quotes_and_separators_keep_row_numbers(tmp_path: Path) -> None:
    text = ('name,phone,note\n'
            'Anna,1,"two\nlines, and ""quotes"""\n'
            'Bo,2,"three\n\nlines"\n'
            'Cy,3,plain\n')
    frame = read(write(tmp_path, "c.csv", text))
    assert rows(frame) == {2: ["Anna", "1", 'two\nlines, and "quotes"'],
                           3: ["Bo", "2", "three\n\nlines"], 4: ["Cy", "3", "plain"]}


def test_header_with_a_quoted_newline(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", '"first\nname",phone\nAnna,1\n\nBo,2\n'))
    assert list(frame.columns) == ["first\nname", "phone"]
    assert rows(frame) == {2: ["Anna", "1"], 4: ["Bo", "2"]}


def test_blank_lines_are_rows_and_are_dropped(tmp_path: Path) -> None:
    text = "\n\nname,phone\nAnna,1\n\n   \n,\n , \nBo,2\n\n\n"
    assert rows(read(write(tmp_path, "c.csv", text))) == {4: ["Anna", "1"], 9: ["Bo", "2"]}


def test_crlf_and_no_final_newline(tmp_path: Path) -> None:
    text = 'name,phone\r\nAnna,1\r\n\r\nBo,"2\r\nx"\r\nCy,3'
    frame = read(write(tmp_path, "c.csv", text))
    assert rows(frame) == {2: ["Anna", "1"], 4: ["Bo", "2\r\nx"], 5: ["Cy", "3"]}


def test_values_stay_text(tmp_path: Path) -> None:
    text = "phone,a,b,c,d,e\n0045123, 00123 ,NA,null,None,1e5\n"
    frame = read(write(tmp_path, "c.csv", text))
    assert rows(frame) == {2: ["0045123", "00123", "NA", "null", "None", "1e5"]}
    assert all(dtype == TEXT for dtype in frame.dtypes)
    assert frame.index.name == "row"


def test_empty_cells_are_na(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", 'phone,name\n1,""\n2,  \n'))
    assert frame["name"].isna().tolist() == [True, True]


def test_short_rows_read_missing_cells_as_na(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", "name,phone,city\nAnna,1\nBo\n"))
    assert rows(frame) == {2: ["Anna", "1", None], 3: ["Bo", None, None]}
    assert frame.attrs[PROBLEMS] == {}


def test_long_rows_are_kept_and_reported(tmp_path: Path) -> None:
    text = "name,phone\nSmith, John,1\nBo,2\nCy,3,,  \n"
    frame = read(write(tmp_path, "c.csv", text))
    assert rows(frame) == {2: ["Smith", "John"], 3: ["Bo", "2"], 4: ["Cy", "3"]}
    assert list(frame.attrs[PROBLEMS]) == [2]
    assert "C: '1'" in frame.attrs[PROBLEMS][2]


def test_trailing_separators_on_every_row(tmp_path: Path) -> None:
    text = "name,phone\n" + "".join(f"n{i},{i},\n" for i in range(50)) + "x,1,stray\n"
    frame = read(write(tmp_path, "c.csv", text))
    assert len(frame) == 51 and list(frame.columns) == ["name", "phone"]
    assert list(frame.attrs[PROBLEMS]) == [52]


def test_unnamed_trailing_header_cells_without_data_are_dropped(tmp_path: Path) -> None:
    frame = read(write(tmp_path, "c.csv", "name,phone,,\nAnna,1,,\n"))
    assert list(frame.columns) == ["name", "phone"]
    assert rows(frame) == {2: ["Anna", "1"]}


def test_big_file_matches_a_spreadsheet_numbering(tmp_path: Path) -> None:
    rng = random.Random(7)
    cells = ["", " x ", "0045", '"a,b"', '"l1\nl2"', '"q""q"', "NA"]
    lines = ["name,phone,city"]
    for i in range(40_000):
        width = rng.choice([3] * 30 + [1, 2, 4])
        lines.append("" if rng.random() < 0.03 else
                     ",".join([f"{i:06d}{'-' * 60}"]
                              + [rng.choice(cells) for _ in range(width - 1)]))
    text = "\r\n".join(lines) + "\r\n"
    path = write(tmp_path, "c.csv", text)
    assert path.stat().st_size > 2 * 2**20
    assert rows(read(path, chunk_rows=3333)) == reference(text, ",")


def reference(text: str, separator: str) -> dict[int, list[str | None]]:
    """Rows as a spreadsheet numbers them, through the csv module."""
    records = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    header: list[str] | None = None
    found = {}
    for number, record in enumerate(records, start=1):
        cells = [cell.strip() for cell in record]
        if header is None:
            header = cells if any(cells) else None
        elif any(cells):
            found[number] = [c or None for c in (cells + [""] * len(header))[:len(header)]]
    return found


field = st.one_of(st.sampled_from(["", " ", "0045", "NA", "x y", ";", "1", 'a"b', '"a"b']),
                  st.text(alphabet='ab,;"\n\r ', max_size=6).map(
                      lambda s: '"' + s.replace('"', '""') + '"'))
line = st.one_of(st.just(""), st.lists(field, min_size=1, max_size=5).map(",".join))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(body=st.lists(line, max_size=12), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       chunk_rows=st.sampled_from([1, 2, 1000]))
def test_rows_match_the_csv_module(tmp_path: Path, body: list[str], newline: str,
                                   chunk_rows: int) -> None:
    text = newline.join(["phone,name,city", *body]) + newline
    path = write(tmp_path, "h.csv", text)
    chunks = list(read_contacts(ContactsConfig(path=path), chunk_rows=chunk_rows))
    assert all(len(chunk) <= chunk_rows for chunk in chunks)
    found = rows(pd.concat(chunks)) if chunks else {}
    assert found == reference(text, ",")


def test_tiny_chunks_equal_one_chunk(tmp_path: Path) -> None:
    text = "name,phone\n" + "".join(f"n{i},{i}\n" if i % 7 else "\n" for i in range(100))
    path = write(tmp_path, "c.csv", text)
    chunks = list(read_contacts(ContactsConfig(path=path), chunk_rows=3))
    assert len(chunks) == 29 and all(len(chunk) == 3 for chunk in chunks[:-1])
    assert pd.concat(chunks).equals(read(path))


def test_ramped_chunks_double_up_to_chunk_rows_and_equal_one_chunk(tmp_path: Path) -> None:
    """A pipeline starts on a small first chunk: 2, 4, 8, then 10 rows at a time."""
    text = "name,phone\n" + "".join(f"n{i},{i}\n" if i % 7 else "\n" for i in range(100))
    path = write(tmp_path, "c.csv", text)
    chunks = list(read_contacts(ContactsConfig(path=path), chunk_rows=10, first_rows=2))
    assert [len(chunk) for chunk in chunks] == [2, 4, 8, *[10] * 7, 1]  # 85 rows
    assert pd.concat(chunks).equals(read(path))


# -- XLSX ---------------------------------------------------------------------------------


def patch_sheet_xml(path: Path, old: str, new: str) -> None:
    """Rewrite a cell value as Excel itself may store it (openpyxl would normalise it)."""
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    name = next(n for n in parts if n.startswith("xl/worksheets/sheet"))
    parts[name] = parts[name].replace(old.encode(), new.encode())
    with zipfile.ZipFile(path, "w") as target:
        for part, data in parts.items():
            target.writestr(part, data)


def test_xlsx_values_become_text(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"Contacts": [
        ["name", "phone", "when", "vip", "score"],
        ["Anna", 4512345678, datetime(2026, 3, 1), True, 12.5],
        [],
        [None, None, None],
        ["Bo", 4587654321, datetime(2026, 3, 1, 14, 30), False, 3],
        ["Cy", "0045 1234", date(2026, 1, 2), None, "  "],
        ["Dee", "+4511", time(9, 15), None, 0.1],
    ]})
    patch_sheet_xml(path, "<v>4587654321</v>", "<v>4587654321.0</v>")
    frame = read(path)
    assert rows(frame) == {
        2: ["Anna", "4512345678", "2026-03-01", "TRUE", "12.5"],
        5: ["Bo", "4587654321", "2026-03-01 14:30:00", "FALSE", "3"],
        6: ["Cy", "0045 1234", "2026-01-02", None, None],
        7: ["Dee", "+4511", "09:15:00", None, "0.1"],
    }
    assert all(dtype == TEXT for dtype in frame.dtypes)


def test_xlsx_exponent_float_phone(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"S": [["phone"], [4512345678]]})
    patch_sheet_xml(path, "<v>4512345678</v>", "<v>4.512345678E9</v>")
    assert rows(read(path)) == {2: ["4512345678"]}


def test_xlsx_sheet_choice_ragged_and_merged(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"Notes": [["hello"]], "Contacts": [
        [], ["name", "phone", "city"], ["Anna", 1], ["Bo", 2, "Odense", None, "stray"]]})
    book = openpyxl.load_workbook(path)
    book["Contacts"]["A6"] = "Cy"
    book["Contacts"]["B6"] = "3"
    book["Contacts"].merge_cells("B6:C6")
    book.save(path)
    frame = read(path, sheet="Contacts")
    assert rows(frame) == {3: ["Anna", "1", None], 4: ["Bo", "2", "Odense"],
                           6: ["Cy", "3", None]}
    assert list(frame.attrs[PROBLEMS]) == [4]
    assert read_columns(ContactsConfig(path=path, phone_column="hello")) == ["hello"]


def test_xlsx_unknown_sheet(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"Intro": [["x"]], "Contacts": [["phone"]]})
    message = errors(ContactsConfig(path=path, sheet="Contact"), tmp_path / "spring.yaml")
    assert message == (f"{tmp_path / 'spring.yaml'}: contacts.sheet: no sheet 'Contact' in "
                       "c.xlsx; its sheets are: Intro, Contacts. Did you mean 'Contacts'?")


def test_xlsx_tiny_chunks_equal_one_chunk(tmp_path: Path) -> None:
    cells = [["phone", "name"]] + [[i, f"n{i}"] if i % 5 else [] for i in range(40)]
    path = workbook(tmp_path / "c.xlsx", {"S": cells})
    chunks = list(read_contacts(ContactsConfig(path=path), chunk_rows=4))
    assert all(len(chunk) <= 4 for chunk in chunks) and len(chunks) == 8
    assert pd.concat(chunks).equals(read(path))


def test_workbook_named_csv(tmp_path: Path) -> None:
    workbook(tmp_path / "c.xlsx", {"S": [["phone"], [1]]}).rename(tmp_path / "c.csv")
    assert errors(ContactsConfig(path=tmp_path / "c.csv")) == (
        f"{tmp_path / 'c.csv'}: this is an Excel workbook, not a CSV file. Rename it to .xlsx "
        "and update contacts.path")


def test_not_a_real_xlsx(tmp_path: Path) -> None:
    path = write(tmp_path, "c.xlsx", "phone,name\n1,x\n")
    message = errors(ContactsConfig(path=path))
    assert message.startswith(f"{path}: this is not an Excel workbook (.xlsx files are zip")
    assert "contacts.path" in message


# -- the header ---------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"\n\n  \n,,\n", b"\xef\xbb\xbf"])
def test_empty_file_has_no_header(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path, "c.csv", content)
    message = errors(ContactsConfig(path=path))
    assert message.startswith(f"{path}: the sheet has no header row")
    assert "contacts.path" in message


def test_empty_xlsx_has_no_header(tmp_path: Path) -> None:
    path = workbook(tmp_path / "c.xlsx", {"S": [[], [None, None]]})
    assert "the sheet has no header row" in errors(ContactsConfig(path=path))


def test_duplicate_header_names(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "phone,name,phone\n1,x,2\n")
    assert errors(ContactsConfig(path=path)) == (
        f"{path}: row 1: the column name 'phone' is used more than once (columns A and C). "
        "Give every column a different name")


def test_unnamed_column_with_data_skips_that_row_only(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "phone,,name\n1,,x\n2,oops,y\n")
    [frame] = read_contacts(ContactsConfig(path=path))
    assert frame.index.tolist() == [2, 3]
    assert frame.attrs[PROBLEMS] == {3: "this row has data in column B, which has no name in "
                                        "the header (row 1); give the column a name, or delete it"}


def test_missing_phone_column_suggests_the_closest(tmp_path: Path) -> None:
    path = write(tmp_path, "contacts.csv", "Name,Mobile\nAnna,1\n")
    source = tmp_path / "spring.yaml"
    config = ContactsConfig(path=path, phone_column="mobile")
    assert errors(config, source) == (
        f"{source}: contacts.phone_column: no column 'mobile' in contacts.csv; the columns are: "
        "Name, Mobile. Did you mean 'Mobile'?")
    with pytest.raises(CampaignError, match=r"Set contacts\.phone_column to one of them"):
        read_columns(ContactsConfig(path=path), source)


def test_missing_country_column(tmp_path: Path) -> None:
    path = write(tmp_path, "contacts.csv", "phone,Country Code\n1,DK\n")
    message = errors(ContactsConfig(path=path, country_column="country"))
    assert message == (f"{path}: contacts.country_column: no column 'country' in contacts.csv; "
                       "the columns are: phone, Country Code. Did you mean 'Country Code'?")


def test_all_header_problems_together(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "a,a\n1,2\n")
    with pytest.raises(CampaignError) as caught:
        read_columns(ContactsConfig(path=path, country_column="land"))
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize("name", ["contacts.xls", "contacts.ods", "contacts.json"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "phone\n1\n")
    message = errors(ContactsConfig(path=path), tmp_path / "spring.yaml")
    assert message.startswith(f"{tmp_path / 'spring.yaml'}: contacts.path: {name} is not a "
                              "CSV or XLSX file (.csv, .txt, .tsv, .xlsx and .xlsm are read)")


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert "file not found" in errors(ContactsConfig(path=tmp_path / "gone.csv"))
    (tmp_path / "folder.csv").mkdir()
    message = errors(ContactsConfig(path=tmp_path / "folder.csv"))
    assert re.search(r"folder\.csv: cannot read this file \(Is a directory\)", message)


def test_unterminated_quote_is_reported(tmp_path: Path) -> None:
    text = 'phone,name\n1,"Anna\n' + "".join(f"{i},n{i}\n" for i in range(250_000))
    message = errors(ContactsConfig(path=write(tmp_path, "c.csv", text)))
    assert message.startswith(f"{tmp_path / 'c.csv'}: row 2: a quote '\"' opens a value here "
                              "and never closes")


def test_read_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "\ufeffname;phone;;\r\nAnna;1;;\r\n")
    assert read_columns(ContactsConfig(path=path)) == ["name", "phone"]


# -- suppression --------------------------------------------------------------------------


def test_suppression_named_column(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "name,Tel,phone\nA,111,x\nB,,y\nC, 333 ,z\n")
    found = read_suppression(path, "Tel")
    assert found.to_dict() == {2: "111", 4: "333"}
    assert found.dtype == TEXT


def test_suppression_phone_in_any_case(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "name;PHONE\nA;+45 1111\n\nB;NA\n")
    assert read_suppression(path).to_dict() == {2: "+45 1111", 4: "NA"}


def test_suppression_first_column_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "number,reason\n+4511,asked\n+4522,bounced\n")
    assert read_suppression(path).tolist() == ["+4511", "+4522"]


def test_suppression_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "+45 12 34 56 78\r\n004512345678\r\n\r\n 999 \r\n")
    assert read_suppression(path).to_dict() == {1: "+45 12 34 56 78", 2: "004512345678",
                                                4: "999"}


def test_suppression_xlsx_numbers(tmp_path: Path) -> None:
    path = workbook(tmp_path / "s.xlsx", {"S": [[4512345678], [None], ["+4587654321"]]})
    assert read_suppression(path).to_dict() == {1: "4512345678", 3: "+4587654321"}


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.sampled_from(['a', '"', "\n", ",", "ø", "€", "🌸", "\u200d"]), max_size=40),
       bad=st.sampled_from([b"", b"\xff", b"\xe2\x82", b"\xed\xa0\x80", b"\xc3"]),
       at=st.integers(0, 40), block=st.integers(1, 9))
def test_whole_file_scan_by_blocks_equals_the_decoder(text: str, bad: bytes, at: int,
                                                      block: int) -> None:
    """Arrow's UTF-8 check, block by block (characters cut at every boundary), says what
    Python's decoder says of the whole file: valid or not, and the count of quotes."""
    data = text.encode()[:at] + bad + text.encode()[at:]
    try:
        data.decode("utf-8")
        expected: int | None = data.count(b'"')
    except UnicodeDecodeError:
        expected = None
    original = sheet_encoding._SCAN
    sheet_encoding._SCAN = block
    try:
        assert sheet_encoding._utf8_quotes(io.BufferedReader(io.BytesIO(data))) == expected
    finally:
        sheet_encoding._SCAN = original
