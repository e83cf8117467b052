"""``send`` keeps each recipient's window: Mailjet's emulator served on 127.0.0.1, a fake clock.

The runner, the --wait loop and the emulator all read one injected clock; sleeping moves
it forward instead of waiting. Each test asserts, from the emulator's record and its
timestamps, exactly who was sent when.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest

from batchsms.cli.commands import main
from batchsms.emulator.core import EmulatorState
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.plan.schedule import Waiting
from batchsms.report.dryrun import dry_run
from batchsms.send.journal import Journal
from batchsms.send.runner import RunResult
from batchsms.send.sending import JOURNAL, campaign_status, execute, prepare_send, settings_for

NY, LA, CPH = "+12125550100", "+13105550100", "+4520123456"
AU_MOBILE, SYDNEY = "+61412345678", "+61412345679"


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    """The one clock of a test: ``sleep`` moves it forward at once."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


class Served:
    def __init__(self, root: str, env: dict[str, str], state: EmulatorState) -> None:
        self.url = base_urls(root)["mailjet"]
        self.env = env
        self.state = state


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    app, env = rehearsal_app(tmp_path_factory.mktemp("emulator"))
    with serve_in_thread(app) as root:
        yield Served(root, env, app.state.emulators["mailjet"])


@pytest.fixture
def mailjet(served: Served) -> Iterator[Served]:
    seeded = dict(served.state.accounts)
    served.state.clock = time.time
    served.state.reset()
    served.state.accounts.update(seeded)
    yield served
    served.state.clock = time.time
    served.state.reset()
    served.state.accounts.update(seeded)


def write_campaign(folder: Path, url: str, rows: list[dict[str, str]], send: str,
                   contacts: str = "") -> Path:
    with (folder / "contacts.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    path = folder / "quiet.yaml"
    path.write_text(f"""\
name: quiet
contacts: {{path: contacts.csv{contacts}}}
template: {{text: "Hi << name >>"}}
provider: {{name: mailjet, sender: Shop, base_url: "{url}"}}
pricing: {{currency: EUR, default: 0.05}}
send:
  opt_out: STOP to 1234
{send}
""", encoding="utf-8")
    return path


async def send(path: Path, reports: Path, served: Served, clock: Clock, *, wait: bool = False,
               tick: float | None = None, waits: list[Waiting] | None = None
               ) -> tuple[RunResult, Waiting | None]:
    """prepare_send + execute on the test's clock (``tick``: seconds that pass before each
    window check, one request at a time)."""
    served.state.clock = clock.time
    prepared = prepare_send(path, reports, now=clock.now, environ=served.env)
    try:
        if tick is not None:
            assert prepared.gate is not None
            admit = prepared.gate.admit

            def ticking(recipients: list[Any], now: float) -> list[Any]:
                clock.now += tick
                return admit(recipients, clock.now)

            prepared.gate.admit = ticking  # type: ignore[method-assign]
        settings = replace(settings_for(prepared.campaign), rate=None,
                           concurrency=1 if tick else 8)
        result = await execute(prepared, served.env, settings=settings, clock=clock.time,
                               sleep=clock.sleep, wait=wait,
                               on_wait=waits.append if waits is not None else None)
        return result, prepared.waiting(clock.now)
    finally:
        prepared.close()


def sent_at(served: Served) -> dict[str, str]:
    """Each number the emulator accepted → when (UTC); no number twice."""
    counted = Counter(r.to for r in served.state.records)
    assert max(counted.values(), default=1) == 1, counted
    return {r.to: utc(r.at) for r in served.state.records}


def predicted(path: Path, reports: Path, now: float) -> dict[str, str]:
    result = dry_run(path, reports, now=now)
    with result.csv_path.open(encoding="utf-8", newline="") as f:  # type: ignore[union-attr]
        return {r["e164"]: r["window_opens"] for r in csv.DictReader(f) if r["status"] == "ok"}


def inside(seconds: float, zones: list[str], hours: tuple[int, int], days: range,
           country: str | None = None) -> bool:
    for name in zones:
        local = datetime.fromtimestamp(seconds, ZoneInfo(name))
        if not (hours[0] <= local.hour < hours[1] and local.weekday() in days):
            return False
        if country and local.date() in holidays.country_holidays(country, years=local.year):
            return False
    return True


# -- across zones, days and a holiday --------------------------------------------------------
@pytest.mark.anyio
async def test_send_wait_reaches_each_recipient_at_their_own_opening(mailjet, tmp_path):
    rows = [{"phone": NY, "name": "NY", "tz": ""}, {"phone": LA, "name": "LA", "tz": ""},
            {"phone": CPH, "name": "CPH", "tz": ""},
            {"phone": SYDNEY, "name": "Sydney", "tz": "Australia/Sydney"},
            {"phone": AU_MOBILE, "name": "AU", "tz": ""}]
    path = write_campaign(tmp_path, mailjet.url, rows, "  window: {hours: '09:00-20:00', "
                          "days: [mon, tue, wed, thu, fri], skip_holidays: true}",
                          ", timezone_column: tz")
    start = at("2026-11-26T14:30:00+00:00")  # Thanksgiving: a US holiday, not a Danish one
    plan = predicted(path, tmp_path / "dry", start)
    clock, waits = Clock(start), []

    result, left = await send(path, tmp_path / "reports", mailjet, clock, wait=True,
                              waits=waits)

    assert sent_at(mailjet) == plan == {
        CPH: "2026-11-26T14:30:00Z",  # open now
        SYDNEY: "2026-11-26T22:00:00Z",  # Friday 09:00 in Sydney (the column's zone)
        AU_MOBILE: "2026-11-27T02:30:00Z",  # 09:00 in Cocos, the last of Australia's zones
        NY: "2026-11-27T14:00:00Z",  # Friday 09:00: Thursday was Thanksgiving
        LA: "2026-11-27T17:00:00Z",
    }
    for record in mailjet.state.records:
        zones = {SYDNEY: ["Australia/Sydney"], NY: ["America/New_York"],
                 LA: ["America/Los_Angeles"], CPH: ["Europe/Copenhagen"]}.get(
            record.to, ["Australia/Perth", "Australia/Sydney", "Indian/Cocos"])
        country = "US" if record.to.startswith("+1") else None
        assert inside(record.at, zones, (9, 20), range(5), country), record.to
    assert [(w.count, utc(w.next_opening or 0)) for w in waits] == [
        (4, "2026-11-26T22:00:00Z"), (3, "2026-11-27T02:30:00Z"),
        (2, "2026-11-27T14:00:00Z"), (1, "2026-11-27T17:00:00Z")]
    assert result.stats.sent == 5 and not result.interrupted
    assert left == Waiting(0, None, 0)
    assert all(r.text.endswith("\nSTOP to 1234") for r in mailjet.state.records)


# -- a window that closes, and one that opens, during a send -----------------------------------
@pytest.mark.anyio
async def test_a_window_closing_during_the_send_stops_it_and_the_rest_wait(mailjet, tmp_path):
    rows = [{"phone": f"+452012{i:04d}", "name": str(i)} for i in range(20)]
    path = write_campaign(tmp_path, mailjet.url, rows, "  window: {hours: '09:00-20:00'}")
    reports = tmp_path / "reports"
    clock = Clock(at("2026-12-01T19:50:00+01:00"))

    result, left = await send(path, reports, mailjet, clock, tick=60.0)

    first = sent_at(mailjet)
    assert 5 <= len(first) < 20
    assert all(v < "2026-12-01T19:00:00Z" for v in first.values())  # before 20:00 CET
    assert left is not None and left.count == 20 - len(first) == result.stats.waiting
    assert utc(left.next_opening or 0) == "2026-12-02T08:00:00Z"
    journal = Journal.open(reports / "quiet" / JOURNAL)
    assert (journal.counts()["sent"], journal.counts()["pending"]) == (len(first),
                                                                       20 - len(first))
    journal.close()

    clock.now = at("2026-12-02T07:59:00+00:00")  # one minute before the window: nothing
    result, left = await send(path, reports, mailjet, clock)
    assert result.stats.requests == 0 and len(sent_at(mailjet)) == len(first)
    clock.now = at("2026-12-02T08:00:00+00:00")
    result, left = await send(path, reports, mailjet, clock)
    after = sent_at(mailjet)
    assert set(after) == {row["phone"] for row in rows}
    assert {after[n] for n in set(after) - set(first)} == {"2026-12-02T08:00:00Z"}
    assert left == Waiting(0, None, 0)


@pytest.mark.anyio
async def test_a_window_opening_during_a_waiting_send_is_used_at_once(mailjet, tmp_path):
    rows = [{"phone": f"+452013{i:04d}", "name": str(i)} for i in range(8)]
    path = write_campaign(tmp_path, mailjet.url, rows, "  window: {hours: '09:00-20:00'}")
    clock = Clock(at("2026-12-01T08:57:00+01:00"))

    await send(path, tmp_path / "reports", mailjet, clock, wait=True, tick=30.0)

    times = sent_at(mailjet)
    assert len(times) == 8
    assert min(times.values()) >= "2026-12-01T08:00:00Z"  # 09:00 CET
    assert max(times.values()) <= "2026-12-01T08:05:00Z"


# -- daylight-saving changes ---------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("number", "start", "expected"), [
    (NY, "2027-03-14T01:30:00+00:00", "2027-03-14T13:00:00Z"),  # US spring: 09:00 EDT
    (NY, "2026-11-01T01:30:00+00:00", "2026-11-01T14:00:00Z"),  # US autumn: 09:00 EST
    (CPH, "2027-03-27T20:30:00+00:00", "2027-03-28T07:00:00Z"),  # EU spring: 09:00 CEST
    (CPH, "2026-10-24T20:30:00+00:00", "2026-10-25T08:00:00Z"),  # EU autumn: 09:00 CET
])
async def test_the_wait_across_a_daylight_saving_change_ends_at_local_nine(
        mailjet, tmp_path, number, start, expected):
    path = write_campaign(tmp_path, mailjet.url, [{"phone": number, "name": "x"}],
                          "  window: {hours: '09:00-20:00'}")
    await send(path, tmp_path / "reports", mailjet, Clock(at(start)), wait=True)
    assert sent_at(mailjet) == {number: expected}


# -- not_before and per-row send times -------------------------------------------------------------
@pytest.mark.anyio
async def test_not_before_in_the_future_sends_nothing_until_then(mailjet, tmp_path):
    rows = [{"phone": CPH, "name": "a"}, {"phone": NY, "name": "b"}]
    path = write_campaign(tmp_path, mailjet.url, rows,
                          "  not_before: 2026-12-01T09:00:00+01:00")
    reports = tmp_path / "reports"
    clock = Clock(at("2026-11-26T12:00:00+00:00"))

    result, left = await send(path, reports, mailjet, clock)
    assert result.stats.requests == 0 and mailjet.state.records == []
    assert left == Waiting(2, at("2026-12-01T08:00:00+00:00"), 0)

    await send(path, reports, mailjet, clock, wait=True)
    assert sent_at(mailjet) == {CPH: "2026-12-01T08:00:00Z", NY: "2026-12-01T08:00:00Z"}


@pytest.mark.anyio
async def test_reminders_go_out_at_their_own_times_inside_the_window(mailjet, tmp_path):
    rows = [{"phone": CPH, "name": "offset", "remind_at": "2026-12-01T10:15:00+01:00"},
            {"phone": NY, "name": "local", "remind_at": "2026-12-01 07:30"},
            {"phone": LA, "name": "past", "remind_at": "2026-12-01T09:00:00Z"},
            {"phone": "+4520123457", "name": "stale", "remind_at": "2026-11-30T10:00:00Z"},
            {"phone": "+4520123458", "name": "evening", "remind_at": "2026-12-01 21:30"}]
    path = write_campaign(tmp_path, mailjet.url, rows, "  window: {hours: '08:00-21:00'}\n"
                          "  max_late: 12h", ", send_at_column: remind_at")
    clock = Clock(at("2026-12-01T09:30:00+00:00"))

    await send(path, tmp_path / "reports", mailjet, clock, wait=True)

    assert sent_at(mailjet) == {
        CPH: "2026-12-01T09:30:00Z",  # 10:15 CET had passed: at once
        "+4520123458": "2026-12-02T07:00:00Z",  # 21:30 is after the window: 08:00 next day
        NY: "2026-12-01T13:00:00Z",  # 07:30 New York, but the window opens at 08:00
        LA: "2026-12-01T16:00:00Z",  # in the past (01:00 LA); the window opens at 08:00
    }  # the stale one, a day late with max_late 12h, is skipped


@pytest.mark.anyio
async def test_a_reminder_whose_time_passed_while_nobody_ran_send_fails_with_its_reason(
        mailjet, tmp_path):
    rows = [{"phone": CPH, "name": "now", "remind_at": "2026-12-01T09:00:00Z"},
            {"phone": NY, "name": "soon", "remind_at": "2026-12-01T11:00:00Z"}]
    path = write_campaign(tmp_path, mailjet.url, rows, "  max_late: 2h",
                          ", send_at_column: remind_at")
    reports = tmp_path / "reports"
    await send(path, reports, mailjet, Clock(at("2026-12-01T09:30:00+00:00")))
    assert set(sent_at(mailjet)) == {CPH}  # NY waits for 11:00; nobody runs send until 20:00

    await send(path, reports, mailjet, Clock(at("2026-12-01T20:00:00+00:00")))

    assert set(sent_at(mailjet)) == {CPH}  # 9 hours late with max_late 2h: never sent
    status = campaign_status(path, reports)
    assert (status.counts["sent"], status.counts["failed"], status.counts["pending"]) == (
        1, 1, 0)
    assert status.complete
    journal = Journal.open(reports / "quiet" / "journal.sqlite", readonly=True)
    try:
        error = journal.frame().set_index("e164").loc[NY, "error"]
    finally:
        journal.close()
    assert error.startswith("not sent: ") and "max_late" in error


# -- without --wait, the CLI, status ------------------------------------------------------------
def test_send_without_wait_exits_0_and_says_who_waits(mailjet, tmp_path, capsys, monkeypatch):
    rows = [{"phone": CPH, "name": "a"}, {"phone": "+4520123457", "name": "b"}]
    path = write_campaign(tmp_path, mailjet.url, rows, "  not_before: 2099-01-01T00:00:00Z")
    monkeypatch.setenv("MAILJET_SMS_TOKEN", mailjet.env["MAILJET_SMS_TOKEN"])
    reports = str(tmp_path / "reports")

    code = main(["send", str(path), "--yes", "--reports", reports])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "This run sends 0 messages now; 2 recipients wait for their window; the next " \
        "opens at 2099-01-01 00:00 UTC." in out
    # who waits is said once, with when to run again; not a bare "run it again now"
    assert "Run send again then" in out
    assert "Not everything was sent" not in out
    assert mailjet.state.records == []
    assert main(["status", str(path), "--json", "--reports", reports]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["pending"], status["waiting"], status["next_opening"]) == (
        2, 2, "2099-01-01T00:00:00Z")
    assert status["complete"] is False


# -- a kill while recipients wait ------------------------------------------------------------------
def test_a_send_killed_while_waiting_resumes_exactly(mailjet, tmp_path):
    later = datetime.fromtimestamp(time.time() + 7200, UTC).isoformat()
    rows = [*({"phone": f"+452014{i:04d}", "name": str(i), "at": ""} for i in range(4)),
            *({"phone": f"+452015{i:04d}", "name": str(i), "at": later} for i in range(3))]
    path = write_campaign(tmp_path, mailjet.url, rows, "", ", send_at_column: at")
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchsms", "send", str(path), "--yes", "--wait", "--reports",
         str(reports)], env={**os.environ, **mailjet.env}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _journal_counts(reports).get("sent", 0) < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first round did not finish"
            time.sleep(0.05)
        time.sleep(0.3)  # into the wait for the next opening
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert sorted(r.to for r in mailjet.state.records) == [f"+452014{i:04d}" for i in range(4)]
    assert _journal_counts(reports)["pending"] == 3

    clock = Clock(datetime.fromisoformat(later).timestamp() + 60)
    result, left = asyncio.run(send(path, reports, mailjet, clock))

    times = sent_at(mailjet)
    assert set(times) == {r["phone"] for r in rows}
    assert result.stats.sent == 3 and left == Waiting(0, None, 0)


def _journal_counts(reports: Path) -> dict[str, int]:
    path = reports / "quiet" / JOURNAL
    if not path.is_file():
        return {}
    journal = Journal.open(path)
    try:
        return journal.counts()
    except Exception:  # the sender is still creating it
        return {}
    finally:
        journal.close()


@pytest.mark.anyio
async def test_ctrl_c_during_the_wait_stops_at_once_and_the_next_run_resumes(mailjet, tmp_path):
    rows = [{"phone": CPH, "name": "now"}, {"phone": NY, "name": "later"}]
    path = write_campaign(tmp_path, mailjet.url, rows, "  window: {hours: '09:00-20:00'}")
    reports = tmp_path / "reports"
    clock = Clock(at("2026-12-01T10:00:00+00:00"))  # 11:00 Copenhagen, 05:00 New York
    mailjet.state.clock = clock.time
    runners: list[Any] = []

    async def interrupted_sleep(seconds: float) -> None:
        runners[-1].interrupt()  # Ctrl-C while waiting for New York's morning
        await clock.sleep(seconds)

    prepared = prepare_send(path, reports, now=clock.now, environ=mailjet.env)
    try:
        result = await execute(prepared, mailjet.env, clock=clock.time, sleep=interrupted_sleep,
                               wait=True, on_runner=runners.append,
                               settings=replace(settings_for(prepared.campaign), rate=None))
    finally:
        prepared.close()
    assert result.interrupted and result.stats.sent == 1
    assert clock.now < at("2026-12-01T14:00:00+00:00")  # it did not sleep on
    assert sent_at(mailjet) == {CPH: "2026-12-01T10:00:00Z"}

    await send(path, reports, mailjet, clock, wait=True)
    assert sent_at(mailjet) == {CPH: "2026-12-01T10:00:00Z", NY: "2026-12-01T14:00:00Z"}
