"""Property: whatever bytes or text land in a sheet's cells, a template or the YAML's values,
batchsms answers with exit 0 or 2, never an internal error (exit 4) or a traceback, and
within the limits (a hang would fail the test on its timeout)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hostile import YAML, campaign
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchsms.cli.commands import main

CHECKS = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])
cell = st.text(max_size=40)


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", str(path)])
    captured = capsys.readouterr()
    assert code in (0, 2), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "internal error" not in captured.err


@CHECKS
@given(rows=st.lists(st.lists(cell, min_size=1, max_size=4), max_size=6))
def test_any_unicode_in_sheet_cells(capsys, rows):
    out = io.StringIO()
    csv.writer(out).writerows([["phone", "name"], *rows])
    with tempfile.TemporaryDirectory() as folder:
        check(campaign(Path(folder), sheet=out.getvalue().encode("utf-8", "surrogatepass")),
              capsys)


@CHECKS
@given(data=st.binary(max_size=300), xlsx=st.booleans())
def test_any_bytes_as_the_sheet(capsys, data, xlsx):
    with tempfile.TemporaryDirectory() as folder:
        name = "contacts.xlsx" if xlsx else "contacts.csv"
        check(campaign(Path(folder), sheet=b"phone,name\n" + data, sheet_name=name), capsys)


@CHECKS
@given(template=st.text(max_size=60) | st.sampled_from([
    "<< name * 10**9 >>", "<% for i in range(10) %><< i ** i ** i >><% endfor %>",
    "<< contact >>", "<< name.__class__ >>", "<% macro m() %><< m() >><% endmacro %><< m() >>",
    "<< name|center(99999999) >>", "<< (name ~ name) * 99999 >>", "<% include name %>"]))
def test_any_template_text(capsys, template):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "message.txt").write_text(template, encoding="utf-8",
                                                  errors="surrogatepass")
        check(campaign(Path(folder), template="path: message.txt"), capsys)


KEYS = ["name: hostile", "  path: contacts.csv", "  default_region: DK", "  sender: Shop",
        "  currency: EUR", "  default: 0.05"]


@CHECKS
@given(key=st.sampled_from(KEYS), value=st.text(max_size=30), raw=st.booleans())
def test_any_yaml_value(capsys, key, value, raw):
    name, _, _ = key.partition(": ")
    shown = value if raw else json.dumps(value)
    text = YAML.format(sheet="contacts.csv", template='text: "Hi << name >>"').replace(
        key + "\n", f"{name}: {shown}\n", 1)
    with tempfile.TemporaryDirectory() as folder:
        path = campaign(Path(folder))
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        check(path, capsys)
