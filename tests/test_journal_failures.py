"""Journal, disk and money failures (issue 9): each a clear exit 2 that says what to do,
never exit 4 or a traceback, and never a lost or doubled message.

Real files throughout: damaged journals are real SQLite files cut or overwritten, a full
disk is a small tmpfs mounted for the test (or SQLite's own ``max_page_count`` in this
process), a read-only folder is a read-only bind mount. Sends go to ``batchsms
emulator``'s Mailjet served on 127.0.0.1 through a real (non-rehearsal) account.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import dk_e164, edit_campaign, real_env, write_campaign

from batchsms.providers.connect import connect
from batchsms.report.results import write_results
from batchsms.send.journal import Journal
from batchsms.send.runner import Runner
from batchsms.send.sending import execute, prepare_send, settings_for

ONE_AT_A_TIME = {"concurrency": 1, "rate": "500/s"}  # the emulator has no limit


def journal_of(campaign: Path, name: str = "spring") -> Path:
    return campaign.parent / "reports" / name / "journal.sqlite"


def journal_states(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
    finally:
        db.close()


def clear_error(done, *words: str) -> None:
    """Exit 2, one ``error:`` message with ``words`` in it, no traceback or crash log."""
    assert done.code == 2, (done.code, done.out, done.err)
    assert "\nerror: " in "\n" + done.err, done.err  # after a progress bar, if any
    assert "Traceback" not in done.err and "internal error" not in done.err
    for word in words:
        assert word in done.err, (word, done.err)


def everyone_once(emulator, count: int) -> bool:
    return emulator.per_number() == {dk_e164(i): 1 for i in range(count)}


# -- money -----------------------------------------------------------------------------------
PRICED = """name: spring
contacts: {{path: contacts.csv}}
template: {{path: template.txt}}
provider: {{name: mailjet, sandbox: true, sender: ShopDK}}
pricing:
  currency: EUR
  default: 0.05
  countries:
    DK: {price}
"""


@pytest.mark.parametrize("price", ["5e16", "1e20", "1e-30", "50000000000000000"])
@pytest.mark.parametrize("command", ["check", "dry-run", "send"])
def test_an_out_of_range_price_is_refused_with_its_key_and_line(batchsms_cli, tmp_path, price,
                                                                command):
    campaign = write_campaign(tmp_path, None, 3, sandbox=True)
    campaign.write_text(PRICED.format(price=price), encoding="utf-8")
    done = batchsms_cli([command, str(campaign), *(["--yes"] if command == "send" else [])],
                        tmp_path)
    clear_error(done, "campaign.yaml", "line 9", "pricing.countries.DK")
    assert not journal_of(campaign).exists()


def test_the_highest_price_times_many_rows_totals_exactly(batchsms_cli, tmp_path):
    rows, segments, price = 1500, 3, Decimal("999.999999")
    campaign = write_campaign(tmp_path, None, rows, sandbox=True, template="x" * 400,
                              pricing={"currency": "EUR", "default": "1",
                                       "countries": {"DK": str(price)}})
    done = batchsms_cli(["dry-run", str(campaign), "--json"], tmp_path)
    assert done.code == 0, done.err
    data = json.loads(done.out)
    assert data["segments"] == rows * segments
    assert Decimal(data["cost"]) == rows * segments * price == Decimal("4499999.995500")


def test_the_budget_holds_to_the_last_decimal(batchsms_cli, tmp_path):
    campaign = write_campaign(tmp_path, None, 10, sandbox=True, send={"budget": "0.399999"})
    over = batchsms_cli(["send", str(campaign), "--yes"], tmp_path)
    clear_error(over, "send.budget", "0.40", "0.000001")
    assert not journal_of(campaign).exists()
    edit_campaign(campaign, lambda d: d["send"].update(budget="0.40"))
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path).code == 0


def test_the_budget_counts_what_was_sent_at_the_price_it_was_sent(batchsms_cli, sms_emulator,
                                                                  tmp_path):
    """A cheaper price list after sending does not make room for more than the budget."""
    campaign = write_campaign(tmp_path, sms_emulator.url, 4,
                              send={"budget": "0.20"},
                              pricing={"currency": "EUR", "default": "0.05",
                                       "countries": {"DK": "0.05"}})
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    write_campaign(tmp_path, sms_emulator.url, 8, send={"budget": "0.20"},
                   pricing={"currency": "EUR", "default": "0.025",
                            "countries": {"DK": "0.025"}})
    # the new plan alone says 8 × 0.025 = 0.20, but 4 × 0.05 already went out
    more = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], tmp_path,
                        real_env())
    clear_error(more, "send.budget", "0.30")
    assert everyone_once(sms_emulator, 4)


def test_resending_unknown_outcomes_counts_them_again_against_the_budget(
        batchsms_cli, sms_emulator, tmp_path):
    campaign = write_campaign(tmp_path, sms_emulator.url, 4, send={"budget": "0.16"})
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    with sqlite3.connect(journal_of(campaign)) as db:  # one outcome the provider never told
        db.execute(f"UPDATE recipients SET state = 'unknown' WHERE e164 = '{dk_e164(0)}'")
    db.close()
    resend = batchsms_cli(["send", str(campaign), "--yes", "--resend-unknown"], tmp_path,
                          real_env())
    clear_error(resend, "send.budget", "EUR 0.20", "EUR 0.16 of it already went out")
    assert journal_states(journal_of(campaign)) == {"sent": 3, "unknown": 1}
    edit_campaign(campaign, lambda d: d["send"].update(budget="0.20"))
    resent = batchsms_cli(["send", str(campaign), "--yes", "--resend-unknown",
                           "--accept-changes"], tmp_path, real_env())
    assert resent.code == 0, resent.err
    assert sms_emulator.per_number()[dk_e164(0)] == 2  # what --resend-unknown means


# -- damaged, foreign and newer journals ---------------------------------------------------------
@pytest.fixture
def half_sent(batchsms_cli, sms_emulator, tmp_path) -> Path:
    """A campaign of 6 with 3 sent (the sheet had 3 rows at its first send)."""
    campaign = write_campaign(tmp_path, sms_emulator.url, 3)
    assert batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env()).code == 0
    write_campaign(tmp_path, sms_emulator.url, 6)
    return campaign


def resume_is_exact(batchsms_cli, emulator, campaign: Path, count: int = 6) -> None:
    done = batchsms_cli(["send", str(campaign), "--yes", "--accept-changes"], campaign.parent,
                        real_env())
    assert done.code == 0, done.err
    assert everyone_once(emulator, count)
    assert journal_states(journal_of(campaign)) == {"sent": count}


def test_a_corrupted_journal_is_refused_and_nothing_is_sent(batchsms_cli, sms_emulator,
                                                            half_sent):
    journal = journal_of(half_sent)
    kept = journal.read_bytes()
    damaged = bytearray(kept)
    damaged[100:4096] = os.urandom(4096 - 100)  # the header's tail and the schema page
    journal.write_bytes(bytes(damaged))
    before = sms_emulator.send_requests()
    for args in (["send", str(half_sent), "--yes", "--accept-changes"],
                 ["status", str(half_sent)]):
        clear_error(batchsms_cli(args, half_sent.parent, real_env()), str(journal), "damaged",
                    "Do not delete it")
    assert sms_emulator.send_requests() == before
    journal.write_bytes(kept)  # restored from a backup
    resume_is_exact(batchsms_cli, sms_emulator, half_sent)


def test_a_truncated_journal_is_refused_and_nothing_is_sent(batchsms_cli, sms_emulator,
                                                            half_sent):
    journal = journal_of(half_sent)
    kept = journal.read_bytes()
    assert len(kept) > 8192
    journal.write_bytes(kept[: len(kept) // 2 + 17])
    before = sms_emulator.send_requests()
    for args in (["send", str(half_sent), "--yes", "--accept-changes"],
                 ["status", str(half_sent)]):
        clear_error(batchsms_cli(args, half_sent.parent, real_env()), str(journal), "damaged")
    assert sms_emulator.send_requests() == before
    journal.write_bytes(kept)
    resume_is_exact(batchsms_cli, sms_emulator, half_sent)


def test_a_folder_where_the_journal_should_be_is_refused(batchsms_cli, sms_emulator, tmp_path):
    campaign = write_campaign(tmp_path, sms_emulator.url, 3)
    journal_of(campaign).mkdir(parents=True)
    for args in (["send", str(campaign), "--yes"], ["status", str(campaign)]):
        clear_error(batchsms_cli(args, tmp_path, real_env()), str(journal_of(campaign)),
                    "is a folder")
    assert sms_emulator.send_requests() == 0


def test_a_journal_of_a_newer_batchsms_is_refused(batchsms_cli, sms_emulator, half_sent):
    journal = journal_of(half_sent)
    with sqlite3.connect(journal) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.close()
    before = sms_emulator.send_requests()
    for args in (["send", str(half_sent), "--yes", "--accept-changes"],
                 ["status", str(half_sent)]):
        clear_error(batchsms_cli(args, half_sent.parent, real_env()), "newer batchsms",
                    "version 99", "pip install -U batchsms")
    assert sms_emulator.send_requests() == before


def test_another_campaigns_journal_is_refused_naming_both(batchsms_cli, sms_emulator, tmp_path):
    autumn = write_campaign(tmp_path / "autumn", sms_emulator.url, 4, name="autumn")
    assert batchsms_cli(["send", str(autumn), "--yes"], tmp_path, real_env()).code == 0
    spring = write_campaign(tmp_path / "spring", sms_emulator.url, 4)
    journal_of(spring).parent.mkdir(parents=True)
    shutil.copy(journal_of(autumn, "autumn"), journal_of(spring))
    for args in (["send", str(spring), "--yes"], ["status", str(spring)]):
        clear_error(batchsms_cli(args, tmp_path, real_env()), "'autumn'", "'spring'")
    assert everyone_once(sms_emulator, 4)  # autumn's four, nobody twice


def test_an_unusable_registry_of_journals_is_a_clear_error(batchsms_cli, sms_emulator,
                                                            tmp_path, monkeypatch):
    campaign = write_campaign(tmp_path / "c", sms_emulator.url, 3)
    (tmp_path / "not-a-folder").write_text("x", encoding="utf-8")
    monkeypatch.setenv("BATCHSMS_STATE_DIR", str(tmp_path / "not-a-folder" / "state"))
    done = batchsms_cli(["send", str(campaign), "--yes"], tmp_path, real_env())
    clear_error(done, "registry of journals", "BATCHSMS_STATE_DIR")
    assert sms_emulator.send_requests() == 0
    assert not journal_of(campaign).exists()  # the journal this run made is gone again


# -- read-only and full disks ------------------------------------------------------------------
def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Mount points to unmount after the test (lazily, whatever happened)."""
    mounted: list[Path] = []
    yield mounted
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


def tmpfs(mounts: list[Path], point: Path, size: str) -> Path:
    point.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()}); the in-process "
                    "max_page_count tests cover a full journal")
    mounts.append(point)
    return point


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of ``folder`` up to ``leave`` bytes free; returns the filler."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free - leave
    with filler.open("wb") as f:
        try:
            f.write(b"\0" * max(free, 0))
            f.flush()
        except OSError:
            pass
    return filler


def test_a_read_only_report_folder_is_a_clear_error_and_the_resume_is_exact(
        batchsms_cli, sms_emulator, half_sent, mounts):
    folder = journal_of(half_sent).parent
    # chmod does not stop root (this suite runs as root in CI containers); a read-only
    # bind mount stops everyone
    done = _mount("--bind", str(folder), str(folder))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip()})")
    mounts.append(folder)
    assert _mount("-o", "remount,ro,bind", str(folder)).returncode == 0
    before = sms_emulator.send_requests()
    refused = batchsms_cli(["send", str(half_sent), "--yes", "--accept-changes"],
                           half_sent.parent, real_env())
    clear_error(refused, str(folder))
    assert "writable" in refused.err or "read-only" in refused.err
    assert sms_emulator.send_requests() == before
    status = batchsms_cli(["status", str(half_sent), "--json"], half_sent.parent)
    assert status.code == 0, status.err  # reading needs no write access
    assert json.loads(status.out)["sent"] == 3
    subprocess.run(["umount", str(folder)], check=True, timeout=30)
    mounts.remove(folder)
    resume_is_exact(batchsms_cli, sms_emulator, half_sent)


def test_a_full_disk_before_the_send_is_a_clear_error(batchsms_cli, sms_emulator, tmp_path,
                                                      mounts):
    campaign = write_campaign(tmp_path, sms_emulator.url, 5)
    disk = tmpfs(mounts, tmp_path / "disk", "256k")
    filler = fill(disk)
    full = batchsms_cli(["send", str(campaign), "--yes", "--reports", str(disk)], tmp_path,
                        real_env())
    clear_error(full, "full", "Free some space")
    assert sms_emulator.send_requests() == 0
    filler.unlink()
    again = batchsms_cli(["send", str(campaign), "--yes", "--reports", str(disk)], tmp_path,
                         real_env())
    assert again.code == 0, again.err
    assert everyone_once(sms_emulator, 5)


def test_a_disk_full_in_the_middle_of_a_send_loses_and_doubles_nothing(batchsms_cli,
                                                                       sms_emulator, tmp_path,
                                                                       mounts):
    count = 120
    campaign = write_campaign(tmp_path, sms_emulator.url, count, send=ONE_AT_A_TIME)
    disk = tmpfs(mounts, tmp_path / "disk", "8m")  # room for the WAL once space is freed
    reports = ["--reports", str(disk)]
    filler = fill(disk, leave=200 * 1024)  # room for the plan and the first messages
    full = batchsms_cli(["send", str(campaign), "--yes", *reports], tmp_path, real_env())
    clear_error(full, "full", "resumes")
    journal = disk / "spring" / "journal.sqlite"
    states = journal_states(journal)
    went_out = sum(sms_emulator.per_number().values())
    assert 0 < went_out < count, (went_out, states)
    # every message the provider has is in the journal as sent or in doubt (looked up next)
    assert states.get("sent", 0) + states.get("sending", 0) >= went_out
    assert states.get("sent", 0) <= went_out
    filler.unlink()
    again = batchsms_cli(["send", str(campaign), "--yes", *reports], tmp_path, real_env())
    assert again.code == 0, again.err
    assert everyone_once(sms_emulator, count)
    assert journal_states(journal) == {"sent": count}


# -- the journal's own failure paths (SQLite's max_page_count: a full journal anywhere) ---------
def cap_journal(journal: Journal, extra_pages: int, *, brim: bool = False) -> None:
    """Let the journal grow by ``extra_pages`` pages at most (then SQLITE_FULL); with
    ``brim``, first fill the room left in its pages, so that the next change fails."""
    db = journal.db
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + extra_pages}")
    for size in (1000, 100, 10, 0) if brim else ():
        with suppress(sqlite3.OperationalError):
            while True:  # one row per commit, each kept, until no page can take it
                db.execute("INSERT INTO events VALUES (0, 'filler', 'filler', ?)",
                           ("x" * size,))


@pytest.mark.anyio
async def test_a_failing_sending_commit_means_no_request_goes_out(sms_emulator, tmp_path):
    campaign = write_campaign(tmp_path, sms_emulator.url, 200, template="y" * 150,
                              send=ONE_AT_A_TIME)
    prepared = prepare_send(campaign, environ=real_env())
    try:
        cap_journal(prepared.journal, 0, brim=True)
        result = await execute(prepared, real_env())
    finally:
        prepared.close()
    assert result.stopped and "full" in result.stopped
    assert sms_emulator.send_requests() == 0
    assert journal_states(journal_of(campaign)) == {"pending": 200}


@pytest.mark.anyio
async def test_a_failing_commit_is_never_reported_as_done(sms_emulator, tmp_path):
    count = 300
    campaign = write_campaign(tmp_path, sms_emulator.url, count, template="z" * 150,
                              send=ONE_AT_A_TIME)
    prepared = prepare_send(campaign, environ=real_env())
    try:
        cap_journal(prepared.journal, 3)
        async with connect(prepared.campaign.provider, real_env()) as connection:
            runner = Runner(prepared.journal, connection.provider,
                            settings_for(prepared.campaign))
            result = await runner.run()
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
    finally:
        prepared.close()
    states = journal_states(journal_of(campaign))
    went_out = sum(sms_emulator.per_number().values())
    assert result.stopped and "full" in result.stopped
    assert 0 < went_out < count
    assert states.get("sent", 0) + states.get("sending", 0) == went_out
    # what the user is told comes from the journal: a commit that failed is not "sent"
    summary = files.summary_data
    assert summary["sent"] == states["sent"]
    assert summary["unknown"] == states.get("sending", 0)  # a failed 'sent' commit: in doubt
    assert summary["complete"] is False
    # the next run (a new connection: the cap is gone, as after freeing space) is exact
    prepared = prepare_send(campaign, environ=real_env())
    try:
        await execute(prepared, real_env())
    finally:
        prepared.close()
    assert everyone_once(sms_emulator, count)
    assert journal_states(journal_of(campaign)) == {"sent": count}


def test_the_journal_is_wal_with_synchronous_full(tmp_path):
    """A 'sending' mark must survive a crash and a power cut before its request goes out:
    WAL (readers never block the writer: status during a send) with synchronous=FULL."""
    journal = Journal.open(tmp_path / "journal.sqlite")
    try:
        assert journal.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        journal.close()
    reader = Journal.open(tmp_path / "journal.sqlite", readonly=True)
    try:
        assert reader.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        reader.close()
