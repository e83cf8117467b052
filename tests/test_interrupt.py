"""Ctrl-C on the runner's side: the first stops new requests without waiting for a rate
window or a provider's pause, the second aborts requests in flight; the journal stays
consistent. Sleeps are injected and never end by themselves, so only the interrupt can end
these runs (the timeouts below only turn a hang into a failure)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from helpers.journals import PRICES, plan_of
from helpers.runners import ROWS, FakeProvider, states

from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.rules import Rate
from batchsms.send.journal import PENDING, SENDING, SENT, UNKNOWN, Journal
from batchsms.send.runner import Runner, RunResult, SendSettings

HANG_GUARD = 30.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal.open(tmp_path / "journal.sqlite")
    journal.add_planned(plan_of({row: (f"+452012{row:04d}", f"Hi {row}") for row in ROWS}),
                        PRICES)
    yield journal
    journal.close()


async def forever(seconds: float) -> None:
    """An injected sleep that never ends: time passes only when the test says so."""
    await asyncio.Event().wait()


class Waits:
    """An injected sleep that never ends and tells when someone started waiting."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.started.set()
        await asyncio.Event().wait()


async def interrupted_run(runner: Runner, when: asyncio.Event, times: int = 1) -> RunResult:
    async def press_ctrl_c() -> None:
        await when.wait()
        for _ in range(times):
            runner.interrupt()

    _, result = await asyncio.wait_for(asyncio.gather(press_ctrl_c(), runner.run()), HANG_GUARD)
    return result


@pytest.mark.anyio
async def test_a_first_ctrl_c_does_not_wait_for_the_rate_window(journal: Journal) -> None:
    provider, sleep = FakeProvider(), Waits()
    runner = Runner(journal, provider, SendSettings(rate=Rate(2, 60.0), chunk_size=1),
                    sleep=sleep)
    result = await interrupted_run(runner, sleep.started)  # pressed while the window is full
    assert result.interrupted and not result.aborted
    assert len(provider.requests) == 2
    assert sorted(states(journal).values()) == [PENDING] * (len(ROWS) - 2) + [SENT] * 2


@pytest.mark.anyio
async def test_a_first_ctrl_c_does_not_wait_out_a_providers_pause(journal: Journal) -> None:
    def throttled(message: Message, attempt: int) -> Result:
        return Result(message.key, Outcome.THROTTLED, error="slow down", retry_after=3600.0)

    provider, sleep = FakeProvider(answer=throttled), Waits()
    runner = Runner(journal, provider, SendSettings(rate=None, chunk_size=1, concurrency=1),
                    sleep=sleep)
    made: list[int] = []

    async def when_paused() -> None:
        await sleep.started.wait()
        made.append(len(provider.requests))
        paused.set()

    paused = asyncio.Event()
    watcher = asyncio.ensure_future(when_paused())
    result = await interrupted_run(runner, paused)  # pressed while waiting out the pause
    await watcher
    assert result.interrupted and len(provider.requests) == made[0] >= 1  # none after
    assert set(states(journal).values()) == {PENDING}  # nothing lost, nothing in doubt


@pytest.mark.anyio
async def test_a_first_ctrl_c_lets_requests_in_flight_finish(journal: Journal) -> None:
    release = asyncio.Event()

    class Slow(FakeProvider):
        async def send(self, batch: Sequence[Message]) -> list[Result]:
            self.requests.append((0.0, list(batch)))
            if len(self.requests) == 2:
                started.set()
            await release.wait()
            return [Result(m.key, Outcome.SENT, message_id=f"id-{m.key}") for m in batch]

    started = asyncio.Event()
    provider = Slow()
    runner = Runner(journal, provider, SendSettings(rate=None, chunk_size=1, concurrency=2),
                    sleep=forever)

    async def finish_later() -> None:
        await started.wait()
        await asyncio.sleep(0)
        release.set()  # the two requests in flight answer after the Ctrl-C

    asyncio.get_running_loop().call_soon(asyncio.ensure_future, finish_later())
    result = await interrupted_run(runner, started)
    assert result.interrupted and not result.aborted
    assert sorted(states(journal).values()) == [PENDING] * (len(ROWS) - 2) + [SENT] * 2


@pytest.mark.anyio
async def test_a_second_ctrl_c_aborts_requests_in_flight_at_once(journal: Journal) -> None:
    class Stuck(FakeProvider):
        async def send(self, batch: Sequence[Message]) -> list[Result]:
            self.requests.append((0.0, list(batch)))
            if len(self.requests) == 3:
                stuck.set()
            await asyncio.Event().wait()  # no answer, ever
            raise AssertionError("unreachable")

    stuck = asyncio.Event()
    provider = Stuck()
    runner = Runner(journal, provider, SendSettings(rate=Rate(3, 60.0), chunk_size=1),
                    sleep=forever)
    result = await interrupted_run(runner, stuck, times=2)
    assert result.interrupted and result.aborted
    final = states(journal)
    assert SENDING not in final.values()  # consistent: in doubt is 'unknown', not 'sending'
    in_flight = {m.key for _, batch in provider.requests for m in batch}
    assert {row for row, state in final.items() if state == UNKNOWN} == in_flight
    assert {row for row, state in final.items() if state == PENDING} == set(ROWS) - in_flight


def test_send_says_it_is_writing_results(tmp_path: Path) -> None:
    # The results take a moment on a big campaign: a person is told what the wait is.
    import subprocess
    import sys

    def batchsms(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "batchsms", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    assert batchsms("init", "demo").returncode == 0
    done = batchsms("send", "demo/demo.yaml", "--yes", "--reports", "reports")
    assert done.returncode == 0, done.stderr
    assert "Writing results…" in done.stderr
    assert (tmp_path / "reports" / "demo" / "results.csv").is_file()


def test_ctrl_c_while_results_are_written_exits_at_once_and_marks_them_stale(
        tmp_path: Path) -> None:
    # A real process: the handler must end it even where a KeyboardInterrupt would be
    # swallowed (this one arrives while the process sleeps inside the guarded block).
    import subprocess
    import sys

    from batchsms.report.stale import MARK, mark_stale

    mark_stale(tmp_path)
    (tmp_path / "results.csv").write_text("row\n2\n", encoding="utf-8")  # an older one
    others = tmp_path / ".results.csv.1.partial"  # another process's half file: not ours
    others.write_text("row\n", encoding="utf-8")
    code = ("import os, signal, sys, time\n"
            "from pathlib import Path\n"
            "from batchsms.cli.commands import _interrupt_exits_at_once\n"
            "from batchsms.report.stale import partial_of\n"
            "folder = Path(sys.argv[1])\n"
            "with _interrupt_exits_at_once(folder):\n"
            "    partial_of(folder / 'results.xlsx').write_bytes(b'half a workbook')\n"
            "    os.kill(os.getpid(), signal.SIGINT)\n"
            "    time.sleep(60)\n"
            "print('the guard let the run go on')\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 130, done.stderr
    assert "the guard let the run go on" not in done.stdout
    assert MARK in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [others.name, MARK, "results.csv"]
