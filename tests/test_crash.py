"""Crash safety of `batchsms send`: SIGKILL at random moments, Ctrl-C, and a double Ctrl-C.

`batchsms send` runs as a subprocess against the provider emulators served by this test
process on 127.0.0.1, so the emulators (and their record of every accepted message)
survive each kill. The emulator's record is the truth of what reached the provider: no
number may appear in it twice, and every sendable number either appears once and is
reported ``sent``, or is reported ``unknown`` (appearing at most once).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from batchsms.cli.commands import main
from batchsms.emulator.core import EmulatorState
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.errors import CampaignError
from batchsms.send.sending import campaign_status

SEED = 20240611
RUN_TIMEOUT = 240.0  # a hang guard for one `batchsms send` that is not killed (a lookup may
# wait 30 s, and a loaded 2-core machine runs a send several times slower than an idle one)
SENDERS = {"mailjet": "CrashTest", "mailersend": "+12015550100"}


@dataclass
class Rehearsal:
    root: str
    env: dict[str, str]
    emulators: dict[str, EmulatorState]


@dataclass
class Campaign:
    path: Path
    reports: Path
    numbers: list[str]
    emulator: EmulatorState
    env: dict[str, str]

    @property
    def folder(self) -> Path:
        return self.reports / "crash"

    @contextmanager
    def running(self) -> Iterator[subprocess.Popen[str]]:
        """`batchsms send --yes` in the background; killed on the way out if still running."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchsms", "send", str(self.path), "--yes", "--reports",
             str(self.reports)],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()

    def send(self) -> subprocess.CompletedProcess[str]:
        with self.running() as proc:
            try:
                out, err = proc.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"send did not finish in {RUN_TIMEOUT} s") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def status(self) -> dict[str, object]:
        done = subprocess.run(
            [sys.executable, "-m", "batchsms", "status", str(self.path), "--json", "--reports",
             str(self.reports)], env=self.env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def results(self) -> dict[str, dict[str, str]]:
        with (self.folder / "results.csv").open(encoding="utf-8", newline="") as f:
            return {row["e164"]: row for row in csv.DictReader(f)}

    def received(self) -> Counter[str]:
        return Counter(record.to for record in list(self.emulator.records))


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    app, env = rehearsal_app(tmp_path / "emulator")
    with serve_in_thread(app) as root:
        yield Rehearsal(root, {**os.environ, **env}, app.state.emulators)


def make_campaign(folder: Path, rehearsal: Rehearsal, provider: str, recipients: int,
                  send: str) -> Campaign:
    numbers = [f"+1212{2_000_000 + i:07d}" for i in range(recipients)]
    lines = ["phone,name", *(f"{n},Name{i}" for i, n in enumerate(numbers))]
    (folder / "contacts.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "campaign.yaml"
    path.write_text(f"""\
name: crash
contacts:
  path: contacts.csv
template:
  text: "Hi << name >>, the sale starts today."
provider:
  name: {provider}
  sender: "{SENDERS[provider]}"
  base_url: {base_urls(rehearsal.root)[provider]}
  timeout: 10
pricing:
  currency: USD
  default: 0.01
send:
{send}
""", encoding="utf-8")
    return Campaign(path, folder / "reports", numbers, rehearsal.emulators[provider],
                    rehearsal.env)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str],
             timeout: float = 30.0) -> None:
    """Return once ``condition`` holds or ``proc`` has exited."""
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None:
        assert time.monotonic() < deadline, "timed out waiting for the send to get going"
        time.sleep(0.01)


def kill_at_random(campaign: Campaign, rng: random.Random, window: float) -> bool:
    """Start a send and SIGKILL it at a random moment; whether it was still running.

    The moment is drawn after the run's first request (a send or a status lookup), so
    that most kills land while requests are in flight, from 0 to ``window`` seconds later.
    """
    before = len(campaign.emulator.requests)
    with campaign.running() as proc:
        wait_for(lambda: len(campaign.emulator.requests) > before, proc)
        time.sleep(rng.uniform(0.0, window))
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=RUN_TIMEOUT)
    return running and proc.returncode == -signal.SIGKILL


def resume_until_complete(campaign: Campaign, tries: int = 3) -> None:
    for _ in range(tries):
        done = campaign.send()
        assert done.returncode in (0, 1), done.stderr
        if campaign_status(campaign.path, campaign.reports).complete:
            return
    raise AssertionError(f"not complete after {tries} resumed runs: {campaign.status()}")


def assert_each_sent_once(campaign: Campaign) -> dict[str, dict[str, str]]:
    """No duplicates at the provider; every number sent once or reported unknown."""
    received = campaign.received()
    results = campaign.results()
    twice = sorted(n for n, times in received.items() if times > 1)
    assert not twice, f"messaged more than once: {twice[:10]}"
    assert set(received) <= set(campaign.numbers)
    ids = {record.to: record.id for record in campaign.emulator.records}
    for number in campaign.numbers:
        row = results[number]
        assert row["status"] in ("sent", "unknown"), (number, row)
        if row["status"] == "sent":
            assert received[number] == 1, (number, row)
            assert row["provider_message_id"] == ids[number]
        else:
            assert row["error"], (number, row)
    summary = json.loads((campaign.folder / "summary.json").read_text(encoding="utf-8"))
    counted = Counter(row["status"] for row in results.values())
    assert (summary["sent"], summary["unknown"]) == (counted["sent"], counted["unknown"])
    return results


def assert_complete(campaign: Campaign, results: dict[str, dict[str, str]]) -> None:
    status = campaign.status()
    counted = Counter(row["status"] for row in results.values())
    assert status["complete"] is True
    assert (status["pending"], status["sending"], status["failed"]) == (0, 0, 0)
    assert (status["sent"], status["unknown"]) == (counted["sent"], counted["unknown"])
    assert status["sent"] + status["unknown"] == len(campaign.numbers)


def crash_and_resume(campaign: Campaign, kills: int, seed: int, window: float) -> None:
    """SIGKILL ``kills`` runs at random moments, resume to the end, check the record."""
    rng = random.Random(seed)
    hits = [kill_at_random(campaign, rng, window) for _ in range(kills)]
    assert sum(hits) >= 2, "at least two kills should land while the send was running"
    resume_until_complete(campaign)
    results = assert_each_sent_once(campaign)
    assert_complete(campaign, results)


def test_random_kills_never_lose_or_duplicate(tmp_path: Path, rehearsal: Rehearsal) -> None:
    """Mailjet (one recipient a request) and MailerSend (50 a request), side by side.

    They run at the same time because each final run may spend ``lookup_wait`` (30 s)
    asking the provider about messages whose request never went out before the kill.
    MailerSend answers slowly here, so that its few requests keep a run going a while.
    """
    (tmp_path / "mailjet").mkdir()
    (tmp_path / "mailersend").mkdir()
    one = make_campaign(tmp_path / "mailjet", rehearsal, "mailjet", 300, "  rate: 50/s")
    fifty = make_campaign(tmp_path / "mailersend", rehearsal, "mailersend", 300,
                          "  chunk_size: 50\n  rate: 20/s\n  concurrency: 1")
    rehearsal.emulators["mailersend"].rate = None
    slow = {"kind": "slow", "delay": 0.3}
    httpx.post(f"{base_urls(rehearsal.root)['mailersend']}/__emulator/faults", json=slow,
               timeout=5).raise_for_status()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(crash_and_resume, one, 5, SEED, 1.5),
                pool.submit(crash_and_resume, fifty, 3, SEED + 1, 1.5)]
        for run in runs:
            run.result()


def test_ctrl_c_stops_cleanly_and_resume_completes(tmp_path: Path,
                                                   rehearsal: Rehearsal) -> None:
    campaign = make_campaign(tmp_path, rehearsal, "mailjet", 300, "  rate: 100/s")
    with campaign.running() as proc:
        wait_for(lambda: len(campaign.emulator.records) >= 20, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Stopping" in err
    status = campaign.status()
    assert status["complete"] is False
    assert status["sending"] == 0
    assert status["sent"] == len(campaign.received()) > 0
    assert status["pending"] == len(campaign.numbers) - status["sent"]
    assert status["runs"][-1]["result"] == "interrupted"
    partial = Counter(row["status"] for row in campaign.results().values())
    assert partial == {"sent": status["sent"], "pending": status["pending"]}
    assert (campaign.folder / "summary.json").is_file()
    assert (campaign.folder / "results.xlsx").is_file()

    done = campaign.send()
    assert done.returncode == 0, done.stderr
    results = assert_each_sent_once(campaign)
    assert set(campaign.received()) == set(campaign.numbers)
    assert_complete(campaign, results)


def test_double_ctrl_c_aborts_and_reports_in_flight_as_unknown(
        tmp_path: Path, rehearsal: Rehearsal) -> None:
    campaign = make_campaign(tmp_path, rehearsal, "mailjet", 100,
                             "  rate: 100/s\n  concurrency: 4")
    fault = {"kind": "slow", "delay": 3, "nth": 1, "times": 4}
    httpx.post(f"{base_urls(rehearsal.root)['mailjet']}/__emulator/faults", json=fault,
               timeout=5).raise_for_status()
    with campaign.running() as proc:
        wait_for(lambda: len(campaign.emulator.records) >= 4, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Aborting" in err and "results files were not rewritten" in err
    in_flight = set(campaign.received())
    assert len(in_flight) == 4
    # out at once: the journal says it all, the results files are not written but marked
    status = campaign.status()
    assert status["unknown"] == 4 and status["results_stale"] is True
    assert (campaign.folder / "results-stale.txt").is_file()
    assert not (campaign.folder / "results.csv").exists()
    assert not list(campaign.folder.glob(".*.partial"))

    done = campaign.send()
    assert done.returncode == 1, done.stderr  # finished, with unknown outcomes
    assert not (campaign.folder / "results-stale.txt").exists()
    assert campaign.status()["results_stale"] is False
    results = assert_each_sent_once(campaign)
    assert {n for n, row in results.items() if row["status"] == "unknown"} == in_flight
    assert set(campaign.received()) == set(campaign.numbers)
    assert_complete(campaign, results)


def test_a_send_that_is_not_confirmed_leaves_no_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())  # no terminal to ask on
    (tmp_path / "contacts.csv").write_text("phone\n+12122000000\n", encoding="utf-8")
    path = tmp_path / "campaign.yaml"
    path.write_text("name: crash\ncontacts: {path: contacts.csv}\ntemplate: {text: Hi}\n"
                    "provider: {name: mailjet, sender: CrashTest, sandbox: true}\n"
                    "pricing: {currency: USD, default: 0.01}\n", encoding="utf-8")
    reports = tmp_path / "reports"
    assert main(["send", str(path), "--reports", str(reports)]) == 2
    assert not (reports / "crash" / "journal.sqlite").exists()
    with pytest.raises(CampaignError, match="has not been sent yet"):
        campaign_status(path, reports)
