"""Hostile templates: they can only read values, cannot hang a run or eat its memory, and a
template that fails for every row is a campaign error (exit 2), never a run that skips all."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hostile import campaign, run_capped

from batchsms.cli.commands import main
from batchsms.errors import CampaignError
from batchsms.plan.render import compile_template, render_frame


def frame(**columns: list[str | None]) -> pd.DataFrame:
    data = pd.DataFrame({k: pd.Series(v, dtype="string") for k, v in columns.items()})
    return data.set_axis(pd.RangeIndex(2, 2 + len(data), name="row"))


def with_template(folder: Path, text: str, sheet: str | None = None) -> Path:
    (folder / "message.txt").write_text(text, encoding="utf-8")
    return campaign(folder, template="path: message.txt", **({"sheet": sheet} if sheet else {}))


HANGS = {
    "nested loops": "<% for i in range(100000) %><% for j in range(100000) %><% endfor %>"
                    "<% endfor %>Hi",
    "constant power": "Hi << 7**(7**10) >>",
    "huge repeat": "Hi << 'a' * 10**10 >>",
    "wide centre": "Hi << name|center(10**9) >>",
    "wide format": "Hi << '{:>1000000000}'.format(name) >>",
    "recursive macro": "<% macro f(n) %><< f(n) >><% endmacro %><< f(1) >>",
    "doubling recursion": "<% macro f(s) %><< f(s ~ s) >><% endmacro %><< f(name) >>",
    "output loop": "<% for i in range(100000) %><% for j in range(100000) %>xx<% endfor %>"
                   "<% endfor %>",
}


@pytest.mark.parametrize("name", list(HANGS))
def test_a_runaway_template_ends_quickly_under_a_memory_cap(tmp_path, name):
    path = with_template(tmp_path, HANGS[name])
    done = run_capped("dry-run", path, "--reports", tmp_path / "r", timeout=45,
                      env={"BATCHSMS_MAX_RENDER_SECONDS": "1"})
    assert done.code == 2, done.err
    assert f"{tmp_path / 'message.txt'}" in done.err
    assert "line 1" in done.err or "the text is longer than 10,000 characters" in done.err
    assert not (tmp_path / "r" / "hostile" / "dry-run.csv").exists()


def test_check_does_not_fold_a_huge_power_at_compile_time():
    template = compile_template("<< 9 ** (9 ** (9 ** 9)) >>", "t.txt")  # returns at once
    with pytest.raises(CampaignError, match=r"t.txt: the template fails for every row \(row 2: "
                       r"template not allowed at line 1: .* is a number too large to show"):
        render_frame(template, frame(a=["x"]))


@pytest.mark.parametrize("text", ["Hi << contact >>", "Hi << contact|string >>",
                                  "Hi << contact ~ '' >>", "Hi << '%s'|format(contact) >>"])
def test_the_whole_row_never_becomes_the_text(text):
    template = compile_template(text, "t.txt")
    with pytest.raises(CampaignError) as caught:
        render_frame(template, frame(phone=["+4520123456", "+4520123457"], city=["Paris", "Oslo"]))
    message = str(caught.value)
    assert "'contact' is the whole row, not one cell" in message
    assert "+4520123457" not in message and "Paris" not in message


def test_a_column_named_contact_is_read_with_contact_subscript(tmp_path, capsys):
    path = with_template(tmp_path, "Hi << contact >>",
                         sheet="phone,contact,city\n+4520123456,Mr X,Paris\n")
    code = main(["dry-run", str(path), "--reports", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "write contact[\"Column name\"]" in err
    path = with_template(tmp_path, 'Hi << contact["contact"] >>',
                         sheet="phone,contact,city\n+4520123456,Mr X,Paris\n")
    assert main(["dry-run", str(path), "--reports", str(tmp_path / "r")]) == 0
    rows = (tmp_path / "r" / "hostile" / "dry-run.csv").read_text()
    assert "Hi Mr X" in rows and "Paris" not in rows.split("Hi Mr X")[1]


@pytest.mark.parametrize("text", ["<< range >>", "<< dict() >>", "<< [name] >>", "<< none >>"])
def test_a_variable_is_one_value_never_a_python_object(text):
    template = compile_template(text, "t.txt")
    with pytest.raises(CampaignError, match=r"<< >> must give one value"):
        render_frame(template, frame(name=["x"]))


@pytest.mark.parametrize("text", ["<% include 'contacts.csv' %>", "<% import 'x' as y %>",
                                  "<% extends 'base' %>", "<% from 'x' import y %>"])
def test_a_template_cannot_read_other_files(text):
    with pytest.raises(CampaignError, match=r"t.txt: line 1: a template cannot include, import "
                       r"or extend other files"):
        compile_template(text, "t.txt")


def test_every_row_failing_is_exit_2_not_a_clean_run(tmp_path, capsys):
    path = with_template(tmp_path, "Hi << name >> << 1/0 >>")
    code = main(["dry-run", str(path), "--json", "--reports", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 2
    assert f"{tmp_path / 'message.txt'}: the template fails for every row (row 2: template " \
           "error at line 1: division by zero)" in captured.err


def test_some_rows_failing_still_plans_the_others(tmp_path, capsys):
    path = with_template(tmp_path, "Hi << name >><% if name == 'Bob' %><< 1/0 >><% endif %>")
    assert main(["dry-run", str(path), "--json", "--reports", str(tmp_path / "r")]) == 0
    totals = json.loads(capsys.readouterr().out)
    assert totals["sendable"] == 1 and totals["skipped"] == 1


def test_a_long_text_is_stopped_at_the_limit_column_wise_and_row_wise():
    long = "x" * 6_000
    for text in ["<< a >><< a >>", "<% for i in range(3) %><< a >><% endfor %>"]:
        texts, reasons = render_frame(compile_template(text, "t.txt"), frame(a=[long, "ok"]))
        assert pd.isna(texts.iloc[0]) and texts.iloc[1] in ("okok", "okokok")
        assert reasons.iloc[0] == ("template error: the text is longer than 10,000 characters "
                                   "(BATCHSMS_MAX_TEXT_CHARS is the limit)")


def test_a_huge_template_file_is_refused(tmp_path, capsys):
    path = with_template(tmp_path, "Hi << name >>" + " " * (100 << 10))
    assert main(["check", str(path)]) == 2
    assert "the template is larger than 65,536 bytes" in capsys.readouterr().err


def test_rendering_in_a_worker_thread_keeps_the_size_limits_and_never_arms_a_timer():
    import threading

    found: dict[str, object] = {}

    def work() -> None:
        template = compile_template("<% if name == 'x' %><< 'a' * 10**10 >><% endif %>ok",
                                    "t.txt")
        found["result"] = render_frame(template, frame(name=["x", "y"]))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(30)
    texts, reasons = found["result"]  # type: ignore[misc]
    assert texts.iloc[1] == "ok" and "repeats a value" in reasons.iloc[0]
