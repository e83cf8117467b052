"""Quiet hours in the plan: zones, the window calendar, send times and the dry run's prediction.

Every instant is given (``now``); nothing reads the wall clock.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import phonenumbers
import pytest
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as phone_zones

from batchsms.cli.commands import main
from batchsms.errors import CampaignError
from batchsms.plan.campaign import parse_campaign
from batchsms.plan.window import Calendar, Window
from batchsms.plan.zones import number_keys, zones_column
from batchsms.report.dryrun import dry_run

NINE_TO_EIGHT = Window(9 * 60, 20 * 60)
AU_MOBILE = "+61412345678"


def at(text: str) -> float:
    """An ISO 8601 instant with offset → epoch seconds."""
    return datetime.fromisoformat(text).timestamp()


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def opens(window: Window, zones: str, when: str, country: str | None = None) -> str:
    found = Calendar(window).opens(zones, country, np.array([at(when)]))[0]
    return "never" if np.isnan(found) else utc(found)


# -- zones --------------------------------------------------------------------------------------
def test_each_number_gets_the_zones_phonenumbers_gives_it():
    numbers = pd.Series(["+12125550100", "+13105550100", "+4520123456", AU_MOBILE,
                         "+79161234567", None, "+80012345678"], dtype="string")
    zones = zones_column(numbers)
    assert zones.iloc[:3].tolist() == ["America/New_York", "America/Los_Angeles",
                                       "Europe/Copenhagen"]
    assert zones.iloc[3].split("|") == list(phone_zones.time_zones_for_number(
        phonenumbers.parse(AU_MOBILE)))
    assert "Europe/Moscow" in zones.iloc[4] and "Asia/Vladivostok" in zones.iloc[4]
    assert zones.iloc[5:].isna().all()


def test_zones_from_the_planners_keys_equal_zones_from_the_text():
    """The planner passes the numbers' int keys it already has; the answer is the same,
    NA (no number, no zone) included."""
    numbers = pd.Series(["+12125550100", None, "+4520123456", AU_MOBILE, "", "+80012345678",
                         "+79161234567", "+441234567890"], dtype="string")
    keys = number_keys(numbers)
    assert keys[1] == -1 and keys[4] == -1
    pd.testing.assert_series_equal(zones_column(numbers, keys), zones_column(numbers))
    assert zones_column(numbers).isna().tolist() == [False, True, False, False, True, True,
                                                     False, False]


def test_the_column_path_equals_phonenumbers_for_every_regions_example_mobile():
    """Exactly phonenumbers' answer, except +1 (the area code's zone, not all of NANPA's) and
    fixed-line-or-mobile numbers (the country's zones: a superset, so only stricter)."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
        if example is not None:
            numbers.append(example)
    found = zones_column(pd.Series([phonenumbers.format_number(
        n, phonenumbers.PhoneNumberFormat.E164) for n in numbers], dtype="string"))
    exact = 0
    for number, zones in zip(numbers, found, strict=True):
        reference = {z for z in phone_zones.time_zones_for_number(number) if z != "Etc/Unknown"}
        ours = set() if pd.isna(zones) else set(zones.split("|"))
        if number.country_code == 1:
            assert ours <= reference and len(ours) >= 1, number
        elif phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE_OR_MOBILE:
            assert ours >= reference, number
        else:
            assert ours == reference, number
            exact += 1
    assert exact > 150


# -- the calendar ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("zone", "before", "after"), [
    # US spring change (2027-03-14): 09:00 New York is 14:00Z before, 13:00Z after
    ("America/New_York", ("2027-03-13T12:00:00+00:00", "2027-03-13T14:00:00Z"),
     ("2027-03-15T12:00:00+00:00", "2027-03-15T13:00:00Z")),
    # US autumn change (2026-11-01)
    ("America/Los_Angeles", ("2026-10-31T12:00:00+00:00", "2026-10-31T16:00:00Z"),
     ("2026-11-02T12:00:00+00:00", "2026-11-02T17:00:00Z")),
    # EU spring change (2027-03-28): 09:00 Copenhagen is 08:00Z before, 07:00Z after
    ("Europe/Copenhagen", ("2027-03-27T05:00:00+00:00", "2027-03-27T08:00:00Z"),
     ("2027-03-28T05:00:00+00:00", "2027-03-28T07:00:00Z")),
    # EU autumn change (2026-10-25)
    ("Europe/Copenhagen", ("2026-10-24T05:00:00+00:00", "2026-10-24T07:00:00Z"),
     ("2026-10-25T05:00:00+00:00", "2026-10-25T08:00:00Z")),
])
def test_daylight_saving_changes_move_the_opening_in_utc(zone, before, after):
    assert opens(NINE_TO_EIGHT, zone, before[0]) == before[1]
    assert opens(NINE_TO_EIGHT, zone, after[0]) == after[1]


def test_inside_the_window_it_is_open_at_once_and_it_closes_at_the_end():
    calendar = Calendar(NINE_TO_EIGHT)
    assert calendar.is_open("Europe/Copenhagen", None, at("2026-12-01T19:59:59+01:00"))
    assert not calendar.is_open("Europe/Copenhagen", None, at("2026-12-01T20:00:00+01:00"))
    assert opens(NINE_TO_EIGHT, "Europe/Copenhagen", "2026-12-01T20:00:00+01:00") == \
        "2026-12-02T08:00:00Z"


def test_days_and_a_public_holiday_of_one_country_only():
    weekdays = Window(9 * 60, 20 * 60, frozenset(range(5)), skip_holidays=True)
    thanksgiving = "2026-11-26T14:30:00+00:00"  # a Thursday: US holiday, not a Danish one
    assert opens(weekdays, "America/New_York", thanksgiving, "US") == "2026-11-27T14:00:00Z"
    assert opens(weekdays, "Europe/Copenhagen", thanksgiving, "DK") == "2026-11-26T14:30:00Z"
    saturday = "2026-11-28T12:00:00+00:00"
    assert opens(weekdays, "Europe/Copenhagen", saturday, "DK") == "2026-11-30T08:00:00Z"
    christmas = "2026-12-24T20:00:00+00:00"  # DK: 25th and 26th; the 27th is a Sunday
    assert opens(weekdays, "Europe/Copenhagen", christmas, "DK") == "2026-12-28T08:00:00Z"


def test_several_zones_open_only_when_the_window_holds_in_every_one():
    both = "Europe/Copenhagen|America/New_York"  # 6 hours apart: 15:00-20:00 Copenhagen
    assert opens(NINE_TO_EIGHT, both, "2026-12-01T08:00:00+00:00") == "2026-12-01T14:00:00Z"
    apart = "Pacific/Kiritimati|Pacific/Pago_Pago"  # 25 hours apart: never the same weekday
    mondays = Window(9 * 60, 20 * 60, frozenset({0}))
    assert opens(NINE_TO_EIGHT, apart, "2026-12-01T08:00:00+00:00") == "2026-12-01T20:00:00Z"
    assert opens(mondays, apart, "2026-12-01T08:00:00+00:00") == "never"


# -- the campaign keys ----------------------------------------------------------------------------
BASE = """\
name: quiet
contacts: {path: contacts.csv}
template: {text: "Hi << name >>"}
provider: {name: mailjet, sender: Shop, sandbox: true}
pricing: {currency: EUR, default: 0.05}
"""


@pytest.mark.parametrize(("send", "message"), [
    ("send: {window: {hours: '20:00-09:00'}}", "send.window.hours: '20:00-09:00' is not a span"),
    ("send: {window: {days: [mon, fri, funday]}}", "send.window.days.2"),
    ("send: {window: {hour: '09:00-17:00'}}", "did you mean 'hours'?"),
    ("send: {not_before: 2026-12-01T09:00:00}", "give the instant with its offset"),
    ("send: {max_late: soon}", "'soon' is not a duration"),
])
def test_bad_window_keys_are_errors_naming_the_key(send, message):
    with pytest.raises(CampaignError) as error:
        parse_campaign(BASE + send, Path("quiet.yaml"))
    assert message in str(error.value)


# -- the dry run ----------------------------------------------------------------------------------
NOW = at("2026-11-26T14:30:00+00:00")  # Thursday: Thanksgiving in the US


def campaign(folder: Path, rows: list[dict[str, object]], send: str, contacts: str = "",
             xlsx: bool = False) -> Path:
    name = "contacts.xlsx" if xlsx else "contacts.csv"
    columns = list(rows[0])
    if xlsx:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(columns)
        for row in rows:
            sheet.append([row.get(c) for c in columns])
        book.save(folder / name)
    else:
        with (folder / name).open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    path = folder / "quiet.yaml"
    path.write_text(BASE.replace("contacts.csv}", f"{name}{contacts}}}") + send,
                    encoding="utf-8")
    return path


def dry_rows(path: Path, folder: Path) -> tuple[dict[int, dict[str, str]], dict]:
    result = dry_run(path, folder / "reports", now=NOW)
    with result.csv_path.open(encoding="utf-8", newline="") as f:  # type: ignore[union-attr]
        rows = {int(r["row"]): r for r in csv.DictReader(f)}
    return rows, result.totals.to_dict()


def test_the_dry_run_predicts_each_recipients_opening(tmp_path):
    rows = [{"phone": "+1 212 555 0100", "name": "NY", "tz": ""},
            {"phone": "+1 310 555 0100", "name": "LA", "tz": ""},
            {"phone": "+45 20 12 34 56", "name": "CPH", "tz": ""},
            {"phone": AU_MOBILE, "name": "Sydney", "tz": "Australia/Sydney"},
            {"phone": AU_MOBILE[:-1] + "9", "name": "AU", "tz": ""},
            {"phone": "+45 20 12 34 57", "name": "Typo", "tz": "Europe/Pariss"}]
    path = campaign(tmp_path, rows, "send:\n  window: {hours: '09:00-20:00', "
                    "skip_holidays: true}\n", ", timezone_column: tz")
    plan, totals = dry_rows(path, tmp_path)
    assert {r: (plan[r]["timezone"], plan[r]["window_opens"]) for r in (2, 3, 4, 5)} == {
        2: ("America/New_York", "2026-11-27T14:00:00Z"),  # Thanksgiving: Friday 09:00
        3: ("America/Los_Angeles", "2026-11-27T17:00:00Z"),
        4: ("Europe/Copenhagen", "2026-11-26T14:30:00Z"),  # open now
        5: ("Australia/Sydney", "2026-11-26T22:00:00Z"),  # the column overrides the number
    }
    # every Australian zone: from 09:00 in Cocos (+06:30) to 20:00 in Sydney (+11)
    assert plan[6]["timezone"].count("|") == 7
    assert plan[6]["window_opens"] == "2026-11-27T02:30:00Z"
    assert (plan[7]["status"], plan[7]["reason_code"]) == ("skipped", "bad_timezone")
    assert "'Europe/Pariss' in column tz" in plan[7]["reason"]
    window = totals["by_window"]
    assert (window["now"], window["later"], window["never"]) == (1, 4, 0)
    assert (window["earliest"], window["latest"]) == ("2026-11-26T22:00:00Z",
                                                      "2026-11-27T17:00:00Z")
    assert window["several_zones"] == 1
    assert window["by_hour"] == {"2026-11-26T22:00:00Z": 1, "2026-11-27T02:00:00Z": 1,
                                 "2026-11-27T14:00:00Z": 1, "2026-11-27T17:00:00Z": 1}


def test_per_row_send_times_from_xlsx_cells_and_iso_text(tmp_path):
    rows = [
        {"phone": "+4520123401", "name": "cell", "remind_at": datetime(2026, 11, 27, 10, 0)},
        {"phone": "+4520123402", "name": "offset", "remind_at": "2026-11-28T08:15:00Z"},
        {"phone": "+12125550102", "name": "local", "remind_at": "2026-11-27 08:00"},
        {"phone": "+4520123404", "name": "past", "remind_at": "2026-11-26T13:00:00+00:00"},
        {"phone": "+4520123405", "name": "old", "remind_at": "2026-11-26T06:00:00+00:00"},
        {"phone": "+4520123406", "name": "junk", "remind_at": "next tuesday"},
        {"phone": "+4520123407", "name": "none", "remind_at": None},
        {"phone": "+4520123408", "name": "date", "remind_at": "2026-11-28"},
        {"phone": "+4520123409", "name": "fraction", "remind_at": "2026-11-28T10:00:00.5-05:00"},
    ]
    path = campaign(tmp_path, rows, "send:\n  window: {hours: '09:00-20:00'}\n"
                    "  max_late: 6h\n", ", send_at_column: remind_at", xlsx=True)
    plan, totals = dry_rows(path, tmp_path)
    assert {r: plan[r]["window_opens"] for r in (2, 3, 4, 5, 8, 10)} == {
        2: "2026-11-27T09:00:00Z",  # a date-time cell: 10:00 in Copenhagen
        3: "2026-11-28T08:15:00Z",  # with an offset: that instant
        4: "2026-11-27T14:00:00Z",  # 08:00 in New York, then the window opens at 09:00
        5: "2026-11-26T14:30:00Z",  # in the past, within max_late: at once
        8: "2026-11-26T14:30:00Z",  # no send time: the window alone
        10: "2026-11-28T15:00:00Z",  # an offset after fractional seconds
    }
    assert (plan[6]["reason_code"], plan[7]["reason_code"]) == ("too_late", "bad_send_at")
    # a date alone is local midnight (23:00Z in Copenhagen); 09:00 is then 9 h late
    assert plan[9]["reason_code"] == "too_late"
    assert "send time 2026-11-27T23:00:00Z would be missed by 9.0 hours" in plan[9]["reason"]
    assert "2026-11-26T06:00:00Z would be missed by 8 hours" in plan[6]["reason"].replace(
        "8.5 hours", "8 hours")
    assert "'next tuesday' in column remind_at" in plan[7]["reason"]
    assert totals["by_window"]["never"] == 2  # the two too late


def test_a_send_time_on_the_autumn_change_takes_its_second_occurrence(tmp_path):
    rows = [{"phone": "+4520123401", "name": "twice", "at": "2026-10-25 02:30"},
            {"phone": "+4520123402", "name": "gap", "at": "2027-03-28 02:30"}]
    path = campaign(tmp_path, rows, "", ", send_at_column: at")
    result = dry_run(path, tmp_path / "reports", now=at("2026-10-01T00:00:00+00:00"))
    with result.csv_path.open(encoding="utf-8") as f:  # type: ignore[union-attr]
        plan = {int(r["row"]): r["window_opens"] for r in csv.DictReader(f)}
    assert plan == {2: "2026-10-25T01:30:00Z",  # 02:30 CET, after the clocks went back
                    3: "2027-03-28T01:00:00Z"}  # 02:30 does not exist: 03:00 CEST, the gap's end


def test_not_before_holds_everyone_back(tmp_path):
    rows = [{"phone": "+4520123401", "name": "a"}, {"phone": "+12125550100", "name": "b"}]
    path = campaign(tmp_path, rows, "send: {not_before: '2026-12-01T09:00:00+01:00'}\n")
    plan, totals = dry_rows(path, tmp_path)
    assert [plan[2]["window_opens"], plan[3]["window_opens"]] == ["2026-12-01T08:00:00Z"] * 2
    assert (totals["by_window"]["now"], totals["by_window"]["later"]) == (0, 2)


def test_the_opt_out_line_is_appended_and_counted(tmp_path):
    rows = [{"phone": "+4520123401", "name": "x" * 150}, {"phone": "+4520123402", "name": "Bo"}]
    path = campaign(tmp_path, rows, "send: {opt_out: 'STOP to 1234'}\n")
    plan, totals = dry_rows(path, tmp_path)
    assert plan[3]["text"] == "Hi Bo\nSTOP to 1234"
    assert (plan[2]["segments"], plan[3]["segments"]) == ("2", "1")  # 153 + 13 > 160
    assert totals["opt_out"] == {"segments": 1, "cost": "0.05"}


def test_check_warns_about_a_window_without_an_opt_out_line(tmp_path, capsys):
    rows = [{"phone": "+4520123401", "name": "a"}]
    path = campaign(tmp_path, rows, "send: {window: {hours: '09:00-20:00'}}\n")
    assert main(["check", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "send.window is set but send.opt_out is not" in err
    assert json.loads(out)["warnings"] == [err.strip().removeprefix("warning: ")]
    path.write_text(path.read_text(encoding="utf-8").replace(
        "'09:00-20:00'}", "'09:00-20:00'}, opt_out: STOP"), encoding="utf-8")
    assert main(["check", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_report_html_shows_who_can_be_reached_now_and_when_the_rest_open(tmp_path):
    rows = [{"phone": "+4520123401", "name": "a"}, {"phone": "+12125550100", "name": "b"},
            {"phone": "+12125550101", "name": "c"}]
    path = campaign(tmp_path, rows, "send: {window: {hours: '09:00-20:00'}, opt_out: STOP}\n")
    dry_run(path, tmp_path / "reports", now=NOW)
    page = (tmp_path / "reports" / "quiet" / "report.html").read_text(encoding="utf-8")
    assert "Reachable now</span><strong>3</strong>" in page  # 15:30 Copenhagen, 09:30 NY
    path.write_text(path.read_text(encoding="utf-8").replace("09:00-20:00", "16:00-20:00"),
                    encoding="utf-8")
    dry_run(path, tmp_path / "reports", now=NOW)
    page = (tmp_path / "reports" / "quiet" / "report.html").read_text(encoding="utf-8")
    assert "Reachable now</span><strong>0</strong>" in page
    assert "Later</span><strong>3</strong>" in page
    assert "(UTC · America/New_York)" in page  # the most common zone is the second clock
    assert "Thu 26 Nov 15:00 · Thu 10:00" in page  # 16:00 Copenhagen
    assert "Thu 26 Nov 21:00 · Thu 16:00" in page  # 16:00 New York


def test_the_window_keys_of_inits_yaml_work_once_uncommented(tmp_path, capsys):
    from batchsms.scaffold import init_campaign

    path = init_campaign("quiet", tmp_path)
    text = path.read_text(encoding="utf-8")
    for key in ("not_before", "window", "hours", "days", "skip_holidays", "max_late",
                "opt_out"):
        text = text.replace(f"  # {key}:", f"  {key}:")
    text = text.replace("  #   hours", "    hours").replace("  #   days", "    days") \
        .replace("  #   skip_holidays", "    skip_holidays")
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == [] and "error" not in err
    plan = dry_run(path, tmp_path / "reports", now=NOW).totals.to_dict()
    assert plan["by_window"]["later"] == plan["sendable"] == 4  # before not_before
