"""Errors a person can act on: each says what is wrong, where, and how to fix it.

Every case runs the real command on real files and reads what the person would read.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from batchsms.cli.commands import main
from batchsms.plan.phone_columns import normalize
from batchsms.plan.phones import normalize_one

YAML = """\
name: messages
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
  countries:
    DK: 0.04
"""
SHEET = "phone,first_name\n+45 20 12 34 56,Ann\n+45 20 12 34 57,Bo\n"
TEMPLATE = "Hi << first_name >>!\n"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(["check", str(path)], capsys)
    assert code == 2 and out == "", (code, out, err)
    assert "Traceback" not in err
    return err


@pytest.fixture
def write(campaign_dir):
    def campaign(yaml: str = YAML, sheet: str = SHEET, template: str = TEMPLATE) -> Path:
        return campaign_dir(yaml=yaml, sheet=sheet, template=template)

    return campaign


# -- YAML ---------------------------------------------------------------------------------

def test_norway_problem_says_quote_it(write, capsys):
    err = check(write(YAML.replace("default_region: DK", "default_region: NO")), capsys)
    assert 'line 4: contacts.default_region: YAML reads NO as the yes/no value false' in err
    assert 'Put it in quotes: default_region: "NO"' in err
    assert "Input should be" not in err and "got False" not in err


def test_a_numeric_sender_says_quote_it(write, capsys):
    yaml = YAML.replace("name: mailjet\n  sender: TestShop", "name: voximplant\n"
                        "  sender: 4520123456")
    err = check(write(yaml), capsys)
    assert "line 9: provider.sender: YAML reads 4520123456 as a number, not as text" in err
    assert 'Put it in quotes: sender: "4520123456"' in err


def test_a_nested_key_is_reported_on_its_own_line(write, capsys):
    yaml = YAML.replace("    DK: 0.04", "    DK: 0.04\n    NO: 0.05")
    err = check(write(yaml), capsys)
    assert "line 16: pricing.countries.NO: YAML reads the key NO as the yes/no value false" in err
    assert 'Put it in quotes: "NO": ...' in err


@pytest.mark.parametrize(("change", "expected"), [
    (("default: 0.05", "default: -0.05"),
     "line 13: pricing.default: must be 0 or more (got -0.05)"),
    (("sandbox: true", "sandbox: true\nsend: {chunk_size: 51}"),
     "line 11: send.chunk_size: must be 50 or less (got 51)"),
    (("sandbox: true", "sandbox: true\nsend: {encoding: smrt}"),
     "send.encoding: 'smrt' is not one of auto, smart. Did you mean 'smart'?"),
    (("currency: EUR", "currency: eur"),
     "pricing.currency: must be a three-letter ISO 4217 currency code in capitals, e.g. EUR "
     "(got 'eur')"),
    (("sandbox: true", "sandbox: true\nsend: {concurrency: 1.5}"),
     "send.concurrency: must be a whole number (got 1.5)"),
    (("sandbox: true", "sandbox: true\nsend: {rate: 0/s}"),
     "send.rate: the rate must be more than 0, or a send would wait forever"),
], ids=["negative-price", "le", "literal", "pattern", "int", "zero-rate"])
def test_pydantic_wording_does_not_leak(write, capsys, change, expected):
    err = check(write(YAML.replace(*change)), capsys)
    assert expected in err
    assert "Decimal(" not in err and "Input should" not in err and "String should" not in err


def test_a_long_mailjet_sender_says_how_long_and_the_limit(write, capsys):
    err = check(write(YAML.replace("TestShop", "SuperSpringShop")), capsys)
    assert "'SuperSpringShop' is 15 characters, the limit is 11: shorten it " \
           "(e.g. 'SuperSpring')" in err


def test_a_sender_with_a_space_names_the_character(write, capsys):
    err = check(write(YAML.replace("TestShop", '"My Shop"')), capsys)
    assert "'My Shop' has characters it does not allow (' '): remove them (e.g. 'MyShop')" in err


def test_windows_1252_yaml_gives_a_line_not_a_byte_offset(write, capsys):
    path = write()
    path.write_bytes(YAML.replace("TestShop", "Caf\xe9").encode("cp1252"))
    err = check(path, capsys)
    assert "campaign.yaml: line 9, column 14: byte 0xE9 ('é' in Windows-1252) is not UTF-8" in err
    assert "Save it as UTF-8" in err and "position" not in err


def test_windows_1252_template_gives_a_line(write, capsys):
    path = write()
    (path.parent / "template.txt").write_bytes("Hi << first_name >>,\nCafé 5€\n".encode("cp1252"))
    err = check(path, capsys)
    assert "template.txt: line 2, column 4: byte 0xE9 ('é' in Windows-1252) is not UTF-8" in err


def test_check_on_a_folder_names_the_yaml_inside(write, capsys):
    path = write()
    err = check(path.parent, capsys)
    assert "this is a folder, not a campaign file" in err
    assert f"e.g. {path}" in err and "UTF-8" not in err


def test_a_missing_sheet_suggests_the_near_name(write, capsys):
    err = check(write(YAML.replace("contacts.csv", "contact.csv")), capsys)
    assert "contacts.path: file not found" in err and "did you mean 'contacts.csv'?" in err


def test_errors_are_json_on_stdout_with_json(write, capsys):
    code, out, err = run(["check", str(write(YAML.replace("TestShop", "SuperSpringShop"))),
                          "--json"], capsys)
    assert code == 2
    data = json.loads(out)
    assert "limit is 11" in data["error"] and data["problems"] == [data["error"]]
    assert "limit is 11" in err


# -- the template ------------------------------------------------------------------------

def test_an_unknown_variable_names_its_line(write, capsys):
    err = check(write(template="Hi << first_name >>!\n\nSee you, << frist_name >>\n"), capsys)
    assert "template.txt: line 3: the template uses 'frist_name'" in err
    assert "did you mean 'first_name'?" in err


def test_a_misspelt_filter_gets_a_suggestion(write, capsys):
    err = check(write(template="Hi << first_name | titel >>!"), capsys)
    assert "template.txt: line 1: template syntax error: No filter named 'titel'" in err
    assert "Did you mean 'title'?" in err


# -- the sheet ---------------------------------------------------------------------------

EXCEL_ESCAPES = ["'+4520123459", '="+4520123460"', " ' +45 20 12 34 61", "\u00a0'20123465",
                 "'", '=""', '= "+4520123462"', "+45'20123463", "'='+4520123464",
                 '="0612345678"', '="+45 2012 3466" ']


def test_excel_text_escapes_are_read_as_the_number(write, capsys, tmp_path):
    sheet = "phone,first_name\n'+4520123459,Ann\n\"=\"\"+4520123460\"\"\",Bo\n"
    path = write(sheet=sheet)
    code, out, err = run(["dry-run", str(path), "--json", "--reports", str(tmp_path / "r")],
                         capsys)
    assert code == 0, err
    assert json.loads(out)["sendable"] == 2
    with (tmp_path / "r" / "messages" / "dry-run.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["e164"] for r in rows] == ["+4520123459", "+4520123460"]


@pytest.mark.parametrize("default", ["DK", None])
def test_excel_escapes_column_path_equals_the_reference(default):
    cells = pd.Series(EXCEL_ESCAPES, dtype="str")
    fast = normalize(cells, default)
    for cell, (e164, country, reason) in zip(EXCEL_ESCAPES, fast.itertuples(index=False),
                                             strict=True):
        expected = normalize_one(cell, default)
        got = tuple(None if pd.isna(v) else v for v in (e164, country, reason))
        assert got == (expected.e164, expected.country, expected.reason), cell


def test_skipped_examples_say_where_the_rest_are(write, capsys, tmp_path):
    sheet = "phone,first_name\n" + "".join(f"junk{i},N\n" for i in range(5)) + \
        "+45 20 12 34 56,Ann\n"
    path = write(sheet=sheet)
    err_free = run(["check", str(path)], capsys)[1]
    assert "not a phone number" in err_free or "invalid" in err_free
    assert "and 2 more rows: every one is listed in dry-run.csv: run batchsms dry-run" in err_free
    out = run(["dry-run", str(path), "--reports", str(tmp_path / "r")], capsys)[1]
    assert re.search(r"and 2 more rows: every one is listed in \S+dry-run\.csv "
                     r"\(reason_code \w+\)", out), out


def test_preview_shows_tab_and_zero_width_space_as_dry_run_names_them(write, capsys, tmp_path):
    sheet = 'phone,first_name\n+45 20 12 34 56,"A\tn\u200bn"\n'
    path = write(sheet=sheet)
    code, out, _ = run(["preview", str(path), "--row", "2"], capsys)
    assert code == 0
    assert "Hi A⟦<U+0009>⟧n⟦<U+200B>⟧n!" in out  # as every line the CLI prints writes them
    assert "\t" not in out and "\u200b" not in out
    run(["dry-run", str(path), "--reports", str(tmp_path / "r")], capsys)
    with (tmp_path / "r" / "messages" / "dry-run.csv").open(encoding="utf-8") as f:
        [row] = list(csv.DictReader(f))
    assert f"forced UCS-2 by: {row['ucs2_chars']}" in out


# -- init --------------------------------------------------------------------------------

def test_init_into_a_folder_that_does_not_exist(tmp_path, capsys):
    code, _, err = run(["init", "x", "--folder", str(tmp_path / "nope" / "dir")], capsys)
    assert code == 2
    assert f"--folder {tmp_path / 'nope' / 'dir'} does not exist" in err
    assert not (tmp_path / "nope").exists()


# -- resuming ----------------------------------------------------------------------------

def test_resuming_when_nothing_went_out_says_so(write, capsys, tmp_path):
    from batchsms.send.sending import prepare_send

    path = write()
    reports = tmp_path / "r"
    prepare_send(path, reports).close()  # as if killed before the first request
    code, out, _ = run(["send", str(path), "--yes", "--reports", str(reports)], capsys)
    assert code == 0
    assert "Resuming: no message went out in the earlier run." in out
    assert "0 already sent" not in out
