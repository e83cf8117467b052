"""The results of a send: results.csv, results.xlsx, summary.json and retry.csv."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.sending import (
    Rehearsal,
    contacts,
    e164,
    planned,
    read_csv,
    received,
    send,
    write_campaign,
    write_sheet,
)
from openpyxl import Workbook, load_workbook

from batchsms.emulator.core import Script, ScriptedOutcome
from batchsms.providers.base import Outcome, Result
from batchsms.report.dryrun import dry_run
from batchsms.report.results import RESULT_COLUMNS, write_results
from batchsms.send.journal import FAILED, SENDING, SENT, UNKNOWN, Change, Recipient
from batchsms.send.sending import PreparedSend, prepare_send

REJECTED = Script(ScriptedOutcome.REJECT, "sms-0002")




def reject(emulators: Rehearsal, *numbers: int) -> None:
    for i in numbers:
        emulators.states["mailjet"].scripts[e164("mailjet", i)] = REJECTED


# -- results of a journal in every state (no sending) -----------------------------------------
def sandbox_campaign(folder: Path, rows: list[dict[str, str]]) -> Path:
    path = write_campaign(folder, "mailjet", "http://127.0.0.1:9", rows)
    text = path.read_text(encoding="utf-8").replace("base_url: http://127.0.0.1:9",
                                                    "sandbox: true")
    path.write_text(text, encoding="utf-8")
    return path


def settle(prepared: PreparedSend,
           changes: dict[int, tuple[str, Result | None, str | None]]) -> None:
    """Put the journal's recipients (by sheet row) into the given states."""
    by_row = {r.row: r for r in prepared.journal.in_state("pending")}
    prepared.journal.apply([Change(Recipient(by_row[row].e164, row, by_row[row].text), SENDING,
                                   1_700_000_000.0) for row in changes])
    prepared.journal.apply([Change(Recipient(by_row[row].e164, row, by_row[row].text), state,
                                   1_700_000_060.0, result, note)
                            for row, (state, result, note) in changes.items()
                            if state != SENDING])


SENT_RESULT = Result(2, Outcome.SENT, message_id="mj-2", segments=1, cost=Decimal("0.0012"),
                     currency="EUR", status="sent_pending")
FAILED_RESULT = Result(3, Outcome.FAILED, error="sms-0002 Unsupported country code. (To)")


@pytest.fixture
def mixed(tmp_path: Path, reports: Path) -> Iterator[PreparedSend]:
    """A campaign whose journal has one recipient in each state, and a skipped row."""
    rows = [*contacts("mailjet", 5), {"phone": "12", "name": "Short"}]
    prepared = prepare_send(sandbox_campaign(tmp_path, rows), reports)
    settle(prepared, {2: (SENT, SENT_RESULT, None), 3: (FAILED, FAILED_RESULT, None),
                      4: (UNKNOWN, None, "outcome unknown: not resent"),
                      5: (SENDING, None, None)})
    yield prepared
    prepared.close()


def test_results_csv_has_every_sheet_row_with_its_state(mixed):
    files = write_results(mixed.campaign, mixed.journal, mixed.folder)
    rows = {int(r["row"]): r for r in read_csv(files.csv)}
    assert list(read_csv(files.csv)[0]) == RESULT_COLUMNS
    assert {row: r["status"] for row, r in rows.items()} == {
        2: "sent", 3: "failed", 4: "unknown", 5: "unknown", 6: "pending", 7: "skipped"}
    assert rows[2]["provider_message_id"] == "mj-2"
    assert (rows[2]["reported_cost"], rows[2]["reported_currency"]) == ("0.0012", "EUR")
    assert rows[2]["sent_at"] == "2023-11-14T22:14:20Z"
    assert [rows[r]["sent_at"] for r in (3, 4, 5, 6, 7)] == [""] * 5
    assert rows[3]["error"] == "sms-0002 Unsupported country code. (To)"
    assert rows[5]["error"] == "not confirmed yet: the next run asks the provider"
    assert rows[7]["reason"] and rows[7]["cost"] == ""
    assert rows[2]["cost"] == "0.04" and rows[2]["e164"] == e164("mailjet", 0)


def test_summary_counts_money_and_reasons(mixed):
    summary = write_results(mixed.campaign, mixed.journal, mixed.folder).summary_data
    on_disk = json.loads((mixed.folder / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == summary
    assert (summary["sent"], summary["failed"], summary["unknown"], summary["pending"],
            summary["skipped"], summary["recipients"]) == (1, 1, 2, 1, 1, 6)
    assert summary["complete"] is False
    assert summary["estimated_cost"] == "0.12"  # sent and unknown (they may have gone out)
    assert summary["reported_cost"] == {"EUR": "0.0012"}
    assert summary["failures_by_reason"] == {"sms-0002 Unsupported country code. (To)": 1}
    assert summary["by_country"] == {"DK": {"cost": "0.12", "sent": 1, "failed": 1,
                                            "unknown": 2, "pending": 1}}


def test_results_xlsx_is_readable(mixed):
    files = write_results(mixed.campaign, mixed.journal, mixed.folder)
    assert files.xlsx is not None
    sheet = load_workbook(files.xlsx).active
    header = next(sheet.iter_rows(max_row=1))
    assert [c.value for c in header] == RESULT_COLUMNS
    assert all(c.font.bold for c in header)
    assert {c.fill.fgColor.rgb for c in header} == {"FF305496"}
    assert sheet.auto_filter.ref == "A1:Y7"
    assert sheet.freeze_panes == "A2"
    widths = {column: sheet.column_dimensions[c.column_letter].width
              for column, c in zip(RESULT_COLUMNS, header, strict=True)}
    assert all(widths[c] >= len(c) + 2 for c in RESULT_COLUMNS)
    assert widths["provider_status"] > widths["row"]
    rows = [dict(zip(RESULT_COLUMNS, r, strict=True))
            for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert [r["row"] for r in rows] == [2, 3, 4, 5, 6, 7]
    first = rows[0]
    assert isinstance(first["segments"], int) and isinstance(first["attempts"], int)
    assert first["cost"] == pytest.approx(0.04) and isinstance(first["cost"], float)
    assert first["reported_cost"] == pytest.approx(0.0012)
    assert first["e164"] == e164("mailjet", 0) and first["status"] == "sent"
    csv_rows = read_csv(files.csv)
    assert [r["status"] for r in rows] == [r["status"] for r in csv_rows]
    # a spreadsheet evaluates "+45 20 12 0000": the CSV neutralises it, an XLSX text cell not
    assert [r["phone"] for r in rows] == [r["phone"].removeprefix("'") for r in csv_rows]


def test_retry_sheets_hold_the_failed_and_unknown_rows_in_the_sheets_columns(mixed):
    files = write_results(mixed.campaign, mixed.journal, mixed.folder)
    sheet = contacts("mailjet", 4)
    expected = [{**sheet[1], "batchsms_outcome": "failed"},
                {**sheet[2], "batchsms_outcome": "unknown"},
                {**sheet[3], "batchsms_outcome": "unknown"}]
    neutralised = [{**r, "phone": "'" + r["phone"]} for r in expected]  # "+45 20 ..." runs
    assert files.retry_csv is not None and read_csv(files.retry_csv) == neutralised
    assert files.retry is not None
    book = load_workbook(files.retry).active
    rows = [list(r) for r in book.iter_rows(values_only=True)]
    assert rows[0] == ["phone", "name", "batchsms_outcome"]
    assert [dict(zip(rows[0], r, strict=True)) for r in rows[1:]] == expected


def test_retry_sheets_are_written_with_a_header_when_nothing_failed(tmp_path, reports):
    prepared = prepare_send(sandbox_campaign(tmp_path, contacts("mailjet", 2)), reports)
    try:
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
    finally:
        prepared.close()
    assert files.retry_csv is not None
    assert files.retry_csv.read_text(encoding="utf-8").splitlines() == [
        '"phone","name","batchsms_outcome"']
    assert {r["status"] for r in read_csv(files.csv)} == {"pending"}


def test_a_number_messaged_then_removed_from_the_sheet_stays_in_the_results(mixed, tmp_path,
                                                                             reports):
    mixed.close()
    write_sheet(tmp_path / "contacts.csv", contacts("mailjet", 4, start=1))
    prepared = prepare_send(tmp_path / "campaign.yaml", reports, accept_changes=True)
    try:
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
    finally:
        prepared.close()
    gone = [r for r in read_csv(files.csv) if r["e164"] == e164("mailjet", 0)]
    assert len(gone) == 1
    assert gone[0]["status"] == "sent" and gone[0]["provider_message_id"] == "mj-2"
    assert gone[0]["reason"] == "no longer in the sheet (messaged by an earlier run)"


# -- results of real sends ------------------------------------------------------------------
@pytest.mark.anyio
async def test_rejected_recipients_go_to_retry_csv_and_it_is_a_usable_sheet(emulators,
                                                                            tmp_path, reports):
    rows = [{**r, "note": f"n{i}"} for i, r in enumerate(contacts("mailjet", 6))]
    rows[1]["phone"] = "20 12 00 01"  # national format, as written
    rows[2]["note"] = ""
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"], rows,
                              template="Hi << name >>!")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "path: contacts.csv", "path: contacts.csv\n  default_region: DK"), encoding="utf-8")
    reject(emulators, 1, 2, 4)
    plan = dict(planned(campaign, reports))

    result, files = await send(campaign, emulators.env, reports)

    assert (result.stats.sent, result.stats.failed) == (3, 3)
    assert files.retry_csv is not None
    retry = read_csv(files.retry_csv)
    # the sheet's own cells, empty ones too ("+45 20 ..." neutralised: a spreadsheet runs it)
    assert retry == [{**rows[i], "batchsms_outcome": "failed", "phone": (
        "'" if rows[i]["phone"].startswith("+") else "") + rows[i]["phone"]} for i in (1, 2, 4)]
    assert list(retry[0]) == ["phone", "name", "note", "batchsms_outcome"]
    summary = files.summary_data
    assert summary["failures_by_reason"] == {"sms-0002 Unsupported country code. (To)": 3}

    follow_up = tmp_path / "follow-up"
    follow_up.mkdir()
    yaml = campaign.read_text(encoding="utf-8").replace("name: spring", "name: spring-retry")
    (follow_up / "campaign.yaml").write_text(
        yaml.replace("path: contacts.csv", f"path: {files.retry}").replace(
            "path: template.txt", f"path: {tmp_path / 'template.txt'}"), encoding="utf-8")
    again = read_csv(dry_run(follow_up / "campaign.yaml", reports).csv_path)
    assert [(r["e164"], r["text"], r["status"]) for r in again] == [
        (e164("mailjet", i), plan[e164("mailjet", i)], "ok") for i in (1, 2, 4)]


@pytest.mark.anyio
async def test_retry_csv_of_an_xlsx_sheet_keeps_its_header_and_cells(emulators, tmp_path,
                                                                   reports):
    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "Mobile", "row"])
    sheet.append(["Bo", "+45 20 12 0000", "a"])
    sheet.append(["Zoë", 4520120001, "b"])
    book.save(tmp_path / "contacts.xlsx")
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 1), template="Hi << Name >>")
    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        "path: contacts.csv", "path: contacts.xlsx\n  phone_column: Mobile"), encoding="utf-8")
    reject(emulators, 1)

    _, files = await send(campaign, emulators.env, reports)

    assert files.retry_csv is not None
    assert read_csv(files.retry_csv) == [{"Name": "Zoë", "Mobile": "4520120001", "row": "b",
                                          "batchsms_outcome": "failed"}]


FORMULAS = ['=HYPERLINK("http://x","click")', "@SUM(A1)", "+SUM(A1)", "-2+3"]


@pytest.mark.anyio
async def test_contact_text_cannot_become_a_formula_in_any_file(emulators, tmp_path, reports):
    rows = [{"phone": phone, "name": name} for phone, name in [
        ("+45 20 12 34 56", FORMULAS[0]), ("+45 20 12 34 57", FORMULAS[1]),
        ("+45 20 12 34 58", FORMULAS[2]), ("+45 20 12 34 59", FORMULAS[3]),
        ("=1+2", "Bo"), ("@A1", "Bo")]]
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"], rows,
                              template="<< name >> gets 20% off")
    state = emulators.states["mailjet"]
    state.scripts["+4520123456"] = REJECTED
    state.scripts["+4520123457"] = REJECTED
    dry_run(campaign, reports)

    _, files = await send(campaign, emulators.env, reports)

    texts = [f"{name} gets 20% off" for name in FORMULAS]
    assert sorted(r.text for r in state.records) == sorted(texts[2:])  # sent as written
    dry = {int(r["row"]): r for r in read_csv(reports / "spring" / "dry-run.csv")}
    assert [dry[row]["text"] for row in (2, 3, 4, 5)] == [f"'{t}" for t in texts]
    # Excel evaluates "+45 20 12 34 56" too (and "+45-20-12-34-56" to -77): neutralised
    assert [dry[row]["phone"] for row in (2, 6, 7)] == ["'+45 20 12 34 56", "'=1+2", "'@A1"]
    results = {int(r["row"]): r for r in read_csv(files.csv)}
    assert [results[row]["phone"] for row in (2, 6, 7)] == ["'+45 20 12 34 56", "'=1+2", "'@A1"]
    assert read_csv(files.retry_csv) == [
        {"phone": "'+45 20 12 34 56", "name": f"'{FORMULAS[0]}", "batchsms_outcome": "failed"},
        {"phone": "'+45 20 12 34 57", "name": f"'{FORMULAS[1]}", "batchsms_outcome": "failed"}]
    retry = load_workbook(files.retry).active  # text cells: the original values, never run
    assert [c.value for c in next(retry.iter_cols(min_col=2, max_col=2, min_row=2))] == \
        FORMULAS[:2]
    assert {c.data_type for row in retry.iter_rows() for c in row} == {"s"}
    sheet = load_workbook(files.xlsx).active
    cells = [c for row in sheet.iter_rows() for c in row if c.value is not None]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    phones = [c.value for c in next(sheet.iter_cols(min_col=2, max_col=2, min_row=2))]
    assert phones == [results[row]["phone"].removeprefix("'") for row in sorted(results)]


@pytest.mark.anyio
async def test_results_match_what_the_provider_accepted(emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 4))
    reject(emulators, 3)
    _, files = await send(campaign, emulators.env, reports)
    state = emulators.states["mailjet"]
    by_number = {r["e164"]: r for r in read_csv(files.csv)}
    assert {r.to: r.id for r in state.records} == {
        number: row["provider_message_id"] for number, row in by_number.items()
        if row["status"] == "sent"}
    assert by_number[e164("mailjet", 3)]["status"] == "failed"
    assert [to for to, _ in received(state)] == [e164("mailjet", i) for i in range(3)]


def test_control_characters_are_shown_not_passed_on_in_results_and_retry_sheets(
        tmp_path, reports):
    rows = [{"phone": contacts("mailjet", 1)[0]["phone"], "name": "Bo\x1b]0;x\x07"}]
    prepared = prepare_send(sandbox_campaign(tmp_path, rows), reports)
    try:
        settle(prepared, {2: (FAILED, FAILED_RESULT, None)})
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
    finally:
        prepared.close()
    assert files.xlsx is not None and files.retry is not None
    sheet = load_workbook(files.xlsx).active
    text = [c.value for c in next(sheet.iter_rows(min_row=2, max_row=2))][-1]
    assert "<U+001B>" in text and "<U+0007>" in text and "\x1b" not in text
    retry = load_workbook(files.retry).active
    assert [c.value for c in next(retry.iter_rows(min_row=2, max_row=2))][1] == \
        "Bo<U+001B>]0;x<U+0007>"


def test_results_report_their_progress_chunk_by_chunk(mixed):
    seen: list[tuple[int, int]] = []
    write_results(mixed.campaign, mixed.journal, mixed.folder, chunk_rows=4,
                  on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 6), (6, 6)]


def test_half_written_files_of_a_killed_run_are_cleared_by_the_next(mixed):
    import os

    old = mixed.folder / ".results.xlsx.4242.partial"  # a run killed an hour ago
    old.write_bytes(b"half a workbook")
    os.utime(old, (old.stat().st_atime - 3600, old.stat().st_mtime - 3600))
    fresh = mixed.folder / ".results.csv.4243.partial"  # someone writing right now
    fresh.write_text("row\n", encoding="utf-8")
    write_results(mixed.campaign, mixed.journal, mixed.folder)
    assert not old.exists() and fresh.exists()
