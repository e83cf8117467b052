"""Exactly once across processes, working folders, modes and versions (issue 9).

Real ``batchsms`` processes send to ``batchsms emulator``'s Mailjet served on 127.0.0.1,
through an account created over the emulator's control interface (a *real* account to
batchsms: not the emulator's well-known rehearsal credentials). The emulator's record
of accepted messages is the ground truth: every recipient must appear exactly once.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    OTHER_TOKEN,
    REAL_TOKEN,
    Served,
    dk_e164,
    edit_campaign,
    finish,
    processes,
    read_csv,
    real_env,
    start,
    wait_for,
    write_campaign,
)

from batchsms.send.journal import SCHEMA_VERSION

SLOW = {"concurrency": 1}  # one request at a time, so an emulator delay holds a send open


def everyone_once(sms_emulator: Served, count: int, account: str | None = REAL_TOKEN) -> bool:
    return sms_emulator.per_number(account) == {dk_e164(i): 1 for i in range(count)}


def journal_of(campaign: Path, name: str = "spring") -> Path:
    return campaign.parent / "reports" / name / "journal.sqlite"


def states(journal: Path) -> dict[str, int]:
    with sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True) as db:
        found = dict(db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
    db.close()
    return found


# -- one sender at a time ----------------------------------------------------------------------
@pytest.mark.parametrize("gap", [0.1, 2.0])
def test_a_second_send_refuses_naming_the_first_and_status_shows_it_running(
        batchsms_cli, sms_emulator, tmp_path, gap):
    count = 30
    campaign = write_campaign(tmp_path, sms_emulator.url, count, send=SLOW)
    sms_emulator.slow(0.1)
    with processes() as started:
        first = start(["send", str(campaign), "--yes"], tmp_path, real_env())
        started.append(first)
        time.sleep(gap)  # how far apart the two commands are started (not an assertion)
        began = time.monotonic()
        second = start(["send", str(campaign), "--yes"], tmp_path, real_env())
        started.append(second)
        # whichever took the lock first sends; the other refuses while it still runs
        wait_for(lambda: first.poll() is not None or second.poll() is not None, 30,
                 "one of the two sends to end")
        refused_after = time.monotonic() - began
        loser, winner = (first, second) if first.poll() is not None else (second, first)
        # while the winner sends: status reads the journal; a test send is refused too
        wait_for(lambda: len(sms_emulator.state.records) >= 1, 30, "the send to be under way")
        status = batchsms_cli(["status", str(campaign), "--json"], tmp_path)
        test_send = batchsms_cli(["send", str(campaign), "--test-to", "+4520999999"], tmp_path,
                                 real_env())
        assert winner.poll() is None, "the other run finished before the checks"
        sms_emulator.fast()
        lost, won = finish(loser), finish(winner)
    assert lost.code == 2, lost.err
    assert f"PID {winner.pid}" in lost.err and "batchsms send" in lost.err
    assert "being sent right now" in lost.err and "Traceback" not in lost.err
    assert won.code == 0, won.err
    assert everyone_once(sms_emulator, count)
    assert status.code == 0, status.err
    running = json.loads(status.out)
    assert running["complete"] is False and f"PID {winner.pid}" in running["running"]
    assert test_send.code == 2 and f"PID {winner.pid}" in test_send.err
    after = json.loads(batchsms_cli(["status", str(campaign), "--json"], tmp_path).out)
    assert after["complete"] is True and after["running"] is None and after["sent"] == count
    print(f"gap {gap}s: refused {refused_after:.2f}s after the second started")


def test_two_sends_at_once_into_two_report_folders_message_everyone_once(
        sms_emulator, tmp_path):
    """Two locks (one per journal), one registry: whichever registers first sends."""
    count = 20
    campaign = write_campaign(tmp_path, sms_emulator.url, count, send=SLOW)
    sms_emulator.slow(0.05)
    with processes() as started:
        for folder in ("a", "b"):
            started.append(start(["send", str(campaign), "--yes", "--reports", folder],
                                 tmp_path, real_env()))
            time.sleep(0.1)
        runs = [finish(p) for p in started]
    codes = sorted(d.code for d in runs)
    assert codes == [0, 2], [d.err for d in runs]
    refused = next(d for d in runs if d.code == 2)
    assert "already has a journal" in refused.err and "--message-everyone-again" in refused.err
    assert everyone_once(sms_emulator, count)


def test_sigkill_mid_send_then_send_again_resumes_at_once_exactly_once(
        batchsms_cli, sms_emulator, tmp_path):
    count = 30
    campaign = write_campaign(tmp_path, sms_emulator.url, count, send=SLOW)
    sms_emulator.slow(0.1)
    with processes() as started:
        victim = start(["send", str(campaign), "--yes"], tmp_path, real_env())
        started.append(victim)
        wait_for(lambda: len(sms_emulator.state.records) >= 5, 30, "the send to be under way")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    before = len(sms_emulator.state.records)
    assert 5 <= before < count
    assert (journal_of(campaign).with_name("journal.sqlite.lock")).exists()  # left behind
    # killed before its results: the folder says they are older than the journal
    assert journal_of(campaign).with_name("results-stale.txt").is_file()
    stale = json.loads(batchsms_cli(["status", str(campaign), "--json"], tmp_path).out)
    assert stale["results_stale"] is True
    sms_emulator.fast()
    again = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    assert again.code == 0, again.err
    assert "Resuming" in again.out
    assert not journal_of(campaign).with_name("results-stale.txt").exists()
    assert everyone_once(sms_emulator, count)
    assert states(journal_of(campaign)) == {"sent": count}


def test_a_deleted_lock_file_still_lets_no_one_be_messaged_twice(
        batchsms_cli, sms_emulator, tmp_path):
    """The lock keeps a second run out; if it is deleted mid-send, the journal's claims
    (a recipient is claimed only while pending, in one write transaction) still do."""
    count = 30
    campaign = write_campaign(tmp_path, sms_emulator.url, count, send=SLOW)
    sms_emulator.slow(0.1)
    lock = journal_of(campaign).with_name("journal.sqlite.lock")
    with processes() as started:
        first = start(["send", str(campaign), "--yes"], tmp_path, real_env())
        started.append(first)
        wait_for(lambda: len(sms_emulator.state.records) >= 3, 30, "the send to be under way")
        lock.unlink()  # what someone tidying the folder might do
        second = start(["send", str(campaign), "--yes"], tmp_path, real_env())
        started.append(second)
        runs = [finish(first), finish(second)]
    stopped = [run for run in runs if run.code == 2]
    assert stopped, [run.err for run in runs]  # the two met: one had to give way
    for run in stopped:
        assert "another batchsms process is sending this campaign" in run.err, run.err
        assert "Traceback" not in run.err
    assert max(sms_emulator.per_number(REAL_TOKEN).values()) == 1  # nobody twice
    sms_emulator.fast()
    again = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    assert again.code in (0, 1), again.err  # 1: an in-doubt request left unknown
    assert max(sms_emulator.per_number(REAL_TOKEN).values()) == 1
    assert states(journal_of(campaign)).get("pending", 0) == 0


# -- one journal wherever it is run from -------------------------------------------------------
def test_the_same_campaign_from_another_working_folder_finds_its_journal(
        batchsms_cli, sms_emulator, tmp_path):
    count = 6
    folder = tmp_path / "campaign"
    campaign = write_campaign(folder, sms_emulator.url, count)
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()
    first = batchsms_cli(["send", "campaign.yaml", "--yes"], folder, real_env())
    assert first.code == 0, first.err
    status = batchsms_cli(["status", str(campaign), "--json"], elsewhere)
    assert json.loads(status.out)["complete"] is True
    second = batchsms_cli(["send", "../campaign/campaign.yaml", "--yes"], elsewhere, real_env())
    assert second.code == 0, second.err
    assert "Nothing left to send" in second.out
    assert everyone_once(sms_emulator, count)
    assert not (elsewhere / "reports").exists()


def test_another_reports_folder_or_a_copy_is_refused_naming_the_first_journal(
        batchsms_cli, sms_emulator, tmp_path):
    count = 5
    campaign = write_campaign(tmp_path / "a", sms_emulator.url, count)
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    first_journal = journal_of(campaign).resolve()

    other = batchsms_cli(["send", str(campaign), "--yes", "--reports", "elsewhere"], tmp_path,
                real_env())
    copy = write_campaign(tmp_path / "b", sms_emulator.url, count)  # the same campaign, copied
    copied = batchsms_cli(["send", str(copy), "--yes"], tmp_path, real_env())
    for refused in (other, copied):
        assert refused.code == 2, refused.err
        assert str(first_journal) in refused.err and f"{count} sent" in refused.err
        assert "--message-everyone-again" in refused.err and "Traceback" not in refused.err
    # the same file elsewhere is the same campaign; another file may be another campaign
    assert "name of its own" not in other.err
    assert f"started from {campaign.resolve()}" in " ".join(copied.err.split())
    assert "name of its own" in copied.err
    assert everyone_once(sms_emulator, count)

    again = batchsms_cli(["send", str(copy), "--yes", "--message-everyone-again"], tmp_path,
                         real_env())
    assert again.code == 0, again.err
    assert sms_emulator.per_number() == {dk_e164(i): 2 for i in range(count)}


def test_starting_over_messages_say_that_everyone_is_messaged_again(
        batchsms_cli, sms_emulator, tmp_path):
    campaign = write_campaign(tmp_path, sms_emulator.url, 3)
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    (tmp_path / "template.txt").write_text("Changed << name >>", encoding="utf-8")
    changed = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    assert changed.code == 2
    assert "message everyone again" in changed.err
    assert everyone_once(sms_emulator, 3)


# -- rehearsals never count --------------------------------------------------------------------
def go_real(campaign: Path, url: str) -> None:
    def change(data: dict[str, Any]) -> None:
        data["provider"].pop("sandbox", None)
        data["provider"]["base_url"] = url

    edit_campaign(campaign, change)


def test_a_sandbox_rehearsal_then_the_real_send_messages_everyone_once(
        batchsms_cli, sms_emulator, tmp_path):
    count = 7
    campaign = write_campaign(tmp_path, None, count, sandbox=True)
    rehearsed = batchsms_cli(["send", str(campaign), "--yes"], tmp_path)
    assert rehearsed.code == 0, rehearsed.err
    assert sms_emulator.per_number(None) == {}  # the sandbox is in-process
    go_real(campaign, sms_emulator.url)
    real = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], tmp_path, real_env())
    assert real.code == 0, real.err
    assert f"{count} earlier sends went to a rehearsal account" in real.out
    assert everyone_once(sms_emulator, count, None)
    status = json.loads(batchsms_cli(["status", str(campaign), "--json"], tmp_path).out)
    assert status["complete"] and status["sent"] == count
    assert status["rehearsal_messages"] == count


def test_a_rehearsal_against_batchsms_emulator_then_a_real_account(
        batchsms_cli, sms_emulator, tmp_path):
    count = 5
    campaign = write_campaign(tmp_path, sms_emulator.url, count)
    rehearsed = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, sms_emulator.rehearsal_env)
    assert rehearsed.code == 0, rehearsed.err
    assert everyone_once(sms_emulator, count, "rehearsal-token")
    real = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    assert real.code == 0, real.err
    assert f"{count} earlier sends went to a rehearsal account" in real.out
    assert everyone_once(sms_emulator, count, REAL_TOKEN)
    # and a rehearsal after real messages went out is refused: it would mark nobody as sent
    after = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, sms_emulator.rehearsal_env)
    assert after.code == 2 and "rehearsal" in after.err
    assert len(sms_emulator.state.records) == 2 * count


def test_only_base_url_changed_resends_nothing(batchsms_cli, sms_emulator, tmp_path):
    count = 4
    campaign = write_campaign(tmp_path, sms_emulator.url, count)
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    proxy = sms_emulator.url.replace("127.0.0.1", "localhost")
    edit_campaign(campaign, lambda d: d["provider"].update(base_url=proxy))
    again = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], tmp_path, real_env())
    assert again.code == 0, again.err
    assert "Nothing left to send" in again.out
    assert everyone_once(sms_emulator, count)


def test_another_real_account_is_refused_unless_same_account(batchsms_cli, sms_emulator, tmp_path):
    count = 4
    campaign = write_campaign(tmp_path, sms_emulator.url, count)  # 4 now, 2 more later
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    write_campaign(tmp_path, sms_emulator.url, count + 2)
    other = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], tmp_path,
                real_env(OTHER_TOKEN))
    assert other.code == 2, other.err
    assert "--same-account" in other.err and OTHER_TOKEN not in other.err
    assert len(sms_emulator.state.records) == count
    same = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes", "--same-account"],
                    tmp_path, real_env(OTHER_TOKEN))
    assert same.code == 0, same.err
    assert sms_emulator.per_number(None) == {dk_e164(i): 1 for i in range(count + 2)}
    assert sms_emulator.per_number(OTHER_TOKEN) == {dk_e164(i): 1 for i in (count, count + 1)}


def test_test_sends_alone_never_make_a_campaign_complete(batchsms_cli, sms_emulator, tmp_path):
    campaign = write_campaign(tmp_path, sms_emulator.url, 1)
    tested = batchsms_cli(["send", str(campaign), "--test-to", "+4520999999"], tmp_path, real_env())
    assert tested.code == 0, tested.err
    status = batchsms_cli(["status", str(campaign), "--json"], tmp_path)
    data = json.loads(status.out)
    assert data["complete"] is False and data["test_sends"] == 1 and data["sent"] == 0
    assert sms_emulator.per_number() == {"+4520999999": 1}


# -- the journal of the previous release -------------------------------------------------------
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    e164 TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    country TEXT,
    encoding TEXT,
    text TEXT NOT NULL,
    segments INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,
    provider_status TEXT,
    reported_segments INTEGER,
    reported_cost TEXT,
    currency TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS recipients_state ON recipients (state, row);
CREATE TABLE IF NOT EXISTS events (
    at REAL NOT NULL, e164 TEXT NOT NULL, state TEXT NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, result TEXT
);
CREATE TABLE IF NOT EXISTS tests (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, row INTEGER, e164 TEXT NOT NULL, text TEXT NOT NULL,
    state TEXT NOT NULL, message_id TEXT, error TEXT
);
"""  # copied from the previous release (git show d5ab8ed:batchsms/journal.py)


def write_v1_journal(campaign: Path, count: int, sent: int) -> None:
    """What the previous release left after sending ``sent`` of ``count``: cost as integer
    units of the price list's smallest decimal (0.04 EUR → 4 units of 0.01)."""
    from batchsms.plan.campaign import load_campaign
    from batchsms.send.sending import fingerprints

    path = journal_of(campaign)
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    rows = []
    for i in range(count):
        done = i < sent
        rows.append((dk_e164(i), i + 2, "DK", "GSM-7", f"Hi P{i}!", 1, 4,
                     "sent" if done else "pending", int(done), f"v1-{i}" if done else None,
                     None, None, None, None, None, 1_700_000_000.0 if done else None,
                     1_700_000_001.0 if done else None))
    db.executemany("INSERT INTO recipients VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO runs VALUES (1, 1700000000.0, 1700000100.0, 'interrupted')")
    prints = fingerprints(load_campaign(campaign))
    db.execute("INSERT INTO meta VALUES ('fingerprints', ?)", (json.dumps(prints),))
    db.execute("INSERT INTO meta VALUES ('campaign', '\"spring\"')")
    db.commit()
    db.close()


def test_a_journal_of_the_previous_release_opens_resumes_and_keeps_its_money(
        batchsms_cli, sms_emulator, tmp_path):
    count, sent = 6, 4
    campaign = write_campaign(tmp_path, sms_emulator.url, count)
    write_v1_journal(campaign, count, sent)

    status = batchsms_cli(["status", str(campaign), "--json"], tmp_path)
    assert status.code == 0, status.err
    before = json.loads(status.out)
    assert (before["sent"], before["pending"], before["cost_so_far"]) == (sent, 2, "0.16")

    resumed = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    assert resumed.code == 0, resumed.err
    assert sms_emulator.per_number() == {dk_e164(i): 1 for i in range(sent, count)}
    with sqlite3.connect(journal_of(campaign)) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == \
            str(SCHEMA_VERSION)
    db.close()
    summary = json.loads((journal_of(campaign).parent / "summary.json").read_text())
    assert summary["sent"] == count and summary["estimated_cost"] == "0.24"
    rows = {r["e164"]: r for r in read_csv(journal_of(campaign).parent / "results.csv")}
    assert rows[dk_e164(0)]["provider_message_id"] == "v1-0"
    assert {r["cost"] for r in rows.values()} == {"0.04"}
    after = json.loads(batchsms_cli(["status", str(campaign), "--json"], tmp_path).out)
    assert after["cost_so_far"] == "0.24" and after["complete"] is True


# -- what was sent stays as it was sent --------------------------------------------------------
def test_a_price_or_template_change_after_sending_changes_nothing_recorded(
        batchsms_cli, sms_emulator, tmp_path):
    count = 4
    campaign = write_campaign(tmp_path, sms_emulator.url, count)
    write_campaign(tmp_path, sms_emulator.url, 2)  # send the first two only
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    folder = journal_of(campaign).parent
    money_before = json.loads((folder / "summary.json").read_text())["estimated_cost"]
    assert money_before == "0.08"

    write_campaign(tmp_path, sms_emulator.url, count, template="New text for << name >>",
                   pricing={"currency": "EUR", "default": "0.05",
                            "countries": {"DK": "0.0375"}})
    again = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], tmp_path, real_env())
    assert again.code == 0, again.err
    rows = {r["e164"]: r for r in read_csv(folder / "results.csv")}
    assert [rows[dk_e164(i)]["text"] for i in range(count)] == \
        ["Hi P0!", "Hi P1!", "New text for P2", "New text for P3"]
    assert [Decimal(rows[dk_e164(i)]["cost"]) for i in range(count)] == \
        [Decimal("0.04")] * 2 + [Decimal("0.0375")] * 2
    summary = json.loads((folder / "summary.json").read_text())
    assert Decimal(summary["estimated_cost"]) == Decimal("0.155")
    status = json.loads(batchsms_cli(["status", str(campaign), "--json"], tmp_path).out)
    assert Decimal(status["cost_so_far"]) == Decimal("0.155")
    assert everyone_once(sms_emulator, count)
