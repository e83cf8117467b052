"""Benchmark: `batchsms send` of 100,000 recipients to the emulators served on 127.0.0.1.

Not a test (pytest does not collect this folder): it measures and prints.

    python tests/benchmarks/bench_send.py                      # both providers, 100,000 rows
    python tests/benchmarks/bench_send.py --provider mailjet --concurrency 2 4 8
    python tests/benchmarks/bench_send.py --rows 20000 --profile   # where the time goes
    python tests/benchmarks/bench_send.py --rows 20000 --latency 0.05 --sample 200

The emulators run in their own process (`batchsms emulator`), so the runner and the
emulator do not share one GIL; a fresh one serves each measurement. Every rate limit is
lifted: the campaign's ``send.rate``, and MailerSend's own 60 requests a minute (through
the emulator's control interface). For each provider it reports messages per second of:

- ``send``: `batchsms send --yes` as a user runs it (start-up, plan, journal, results);
- ``sending``: the sending phase alone (the run's start and end in the journal);
- ``client only``: the provider client's ``send`` with the same concurrency, without the
  runner and journal (the ceiling that httpx and the emulator allow);
- ``journal only``: the journal's commits as the runner makes them, without any request;
- ``sequential``: a plain loop of the same requests, one after another, with
  ``httpx.Client``, on a sample (``--sample`` requests), extrapolated.

Targets: at least 2,000 messages/s one per request, 20,000 messages/s with MailerSend's
50 per request, and at least 5x the sequential loop. On 127.0.0.1 a request waits for
nothing but CPU, so concurrency can at best overlap our CPU with the emulator's: the 5x
is only meaningful with ``--latency`` (a provider across the internet).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from batchsms.emulator.rehearsal import base_urls
from batchsms.emulator.server import free_port
from batchsms.plan.campaign import load_campaign
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.connect import connect
from batchsms.providers.registry import PROVIDERS
from batchsms.send.journal import SENDING, SENT, Change, Journal, Recipient
from batchsms.send.sending import JOURNAL, execute, prepare_send

SENDERS = {"mailjet": "BenchShop", "mailersend": "+12015550100"}
CREDENTIALS = {"MAILJET_SMS_TOKEN": "rehearsal-token", "MAILERSEND_API_KEY": "rehearsal-key"}
TEMPLATE = "Hi << name >>, your order << order >> is ready for pickup today."
TARGETS = {"mailjet": 2_000.0, "mailersend": 20_000.0}


def numbers(rows: int) -> Iterator[str]:
    """Valid US numbers (MailerSend sends to US and CA only)."""
    for i in range(rows):
        yield f"+1{212 + i // 8_000_000}{2_000_000 + i % 8_000_000:07d}"


def write_campaign(folder: Path, provider: str, base_url: str, rows: int,
                   concurrency: int, tag: str = "") -> Path:
    sheet = folder / "contacts.csv"
    if not sheet.exists():
        lines = (f"{n},Name{i},{100000 + i}\n" for i, n in enumerate(numbers(rows)))
        sheet.write_text("phone,name,order\n" + "".join(lines), encoding="utf-8")
    name = f"bench-{provider}-{concurrency}{tag}"
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
contacts:
  path: contacts.csv
template:
  text: "{TEMPLATE}"
provider:
  name: {provider}
  sender: "{SENDERS[provider]}"
  base_url: {base_url}
pricing:
  currency: USD
  default: 0.0079
send:
  rate: 1000000/s
  chunk_size: 50
  concurrency: {concurrency}
""", encoding="utf-8")
    return path


@dataclass
class Emulator:
    root: str
    pid: int
    latency: float

    def url(self, provider: str) -> str:
        return base_urls(self.root)[provider]

    def cpu(self) -> float:
        """CPU seconds the emulator process has used so far (Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def emulator(latency: float = 0.0) -> Iterator[Emulator]:
    """A fresh `batchsms emulator` process with every rate limit lifted.

    ``latency`` > 0 makes every send request answer that many seconds late (the
    emulator's SLOW fault), as a provider across the internet would.
    """
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "batchsms", "emulator", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                for name in ("mailjet", "mailersend"):
                    httpx.post(f"{root}/{name}/__emulator/config", json={"rate": None},
                               timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)
        if latency > 0:
            for name in ("mailjet", "mailersend"):
                httpx.post(f"{root}/{name}/__emulator/faults",
                           json={"kind": "slow", "delay": latency}, timeout=5).raise_for_status()
        yield Emulator(root, proc.pid, latency)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Measure:
    label: str
    messages: int
    seconds: float
    cpu: float  # CPU seconds on our side: the send process, or this one
    emulator_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self) -> str:
        where = f"CPU {self.cpu:6.1f} s" + (
            "" if self.emulator_cpu is None else f", emulator {self.emulator_cpu:6.1f} s")
        return (f"  {self.label:<40} {self.rate:>9,.0f} msg/s  {self.seconds:7.2f} s  "
                f"{self.messages:>7,} msgs  {where}")


def own_cpu(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def time_send(campaign: Path, reports: Path, emu: Emulator, rows: int) -> tuple[Measure, Measure]:
    """`batchsms send --yes` end to end, and its sending phase (the run in the journal)."""
    cpu, emu_cpu, started = own_cpu(resource.RUSAGE_CHILDREN), emu.cpu(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "batchsms", "send", str(campaign), "--yes",
                           "--reports", str(reports)], env={**os.environ, **CREDENTIALS},
                          capture_output=True, text=True, timeout=3600)
    total = time.perf_counter() - started
    cpu, emu_cpu = own_cpu(resource.RUSAGE_CHILDREN) - cpu, emu.cpu() - emu_cpu
    if done.returncode != 0:
        raise RuntimeError(f"send exited {done.returncode}:\n{done.stderr[-3000:]}")
    name = load_campaign(campaign).name
    with sqlite3.connect(reports / name / JOURNAL) as db:
        begin, end = db.execute("SELECT started_at, finished_at FROM runs").fetchone()
    summary = json.loads((reports / name / "summary.json").read_text(encoding="utf-8"))
    if summary["sent"] != rows:
        raise RuntimeError(f"only {summary['sent']:,} of {rows:,} sent: {summary}")
    concurrency = load_campaign(campaign).send.concurrency
    return (Measure(f"send, concurrency {concurrency}", rows, total, cpu, emu_cpu),
            Measure(f"  sending phase, concurrency {concurrency}", rows, end - begin, cpu))


def messages(count: int) -> list[Message]:
    """The first ``count`` messages as the runner builds them (row, number, rendered text)."""
    return [Message(i + 2, number, TEMPLATE.replace("<< name >>", f"Name{i}")
                    .replace("<< order >>", str(100000 + i)))
            for i, number in enumerate(numbers(count))]


def batches(provider: str, items: list[Message]) -> list[list[Message]]:
    size = PROVIDERS[provider].rules.recipients_per_request
    return [items[i:i + size] for i in range(0, len(items), size)]


def client_only(campaign: Path, provider: str, rows: int, emu: Emulator) -> Measure:
    """The provider client alone, as many requests in flight as the campaign's concurrency
    (no runner, no journal, no limiter): the ceiling httpx and the emulator allow."""
    loaded = load_campaign(campaign)
    work = batches(provider, messages(rows))

    async def main() -> float:
        slots = asyncio.Semaphore(loaded.send.concurrency)
        async with connect(loaded.provider, CREDENTIALS) as connection:
            async def one(batch: list[Message]) -> None:
                async with slots:
                    results = await connection.provider.send(batch)
                if any(r.outcome is not Outcome.SENT for r in results):
                    raise RuntimeError(f"not sent: {results[0]}")

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in work))
            return time.perf_counter() - started

    cpu, emu_cpu = own_cpu(), emu.cpu()
    seconds = asyncio.run(main())
    return Measure(f"client only, concurrency {loaded.send.concurrency}", rows, seconds,
                   own_cpu() - cpu, emu.cpu() - emu_cpu)


def journal_only(folder: Path, provider: str, rows: int, concurrency: int) -> Measure:
    """The journal committing ``sending`` then ``sent`` for ``rows`` recipients, in groups
    as large as the runner's group commit makes them with ``concurrency`` requests."""
    journal = Journal.open(folder / f"journal-only-{provider}.sqlite")
    recipients = [Recipient(m.to, m.key, m.text) for m in messages(rows)]
    with journal.transaction() as db:
        db.executemany("INSERT INTO recipients (e164, row, text, segments, price, cost, "
                       "currency, state) VALUES (?, ?, ?, 1, '0.0079', '0.0079', 'USD', "
                       "'pending')",
                       ((r.e164, r.row, r.text) for r in recipients))
    group = PROVIDERS[provider].rules.recipients_per_request * concurrency
    result = Result(0, Outcome.SENT, message_id="x" * 36, status="sent_pending", segments=1)
    cpu, started = own_cpu(), time.perf_counter()
    for i in range(0, rows, group):
        now = time.time()
        journal.apply([Change(r, SENDING, now) for r in recipients[i:i + group]])
        journal.apply([Change(r, SENT, now, result) for r in recipients[i:i + group]])
    seconds = time.perf_counter() - started
    journal.close()
    return Measure(f"journal only, {group} per commit", rows, seconds, own_cpu() - cpu)


def sequential(provider: str, emu: Emulator, requests: int) -> Measure:
    """A plain loop of the same requests (the clients' payloads), one after another."""
    url, sender = emu.url(provider), SENDERS[provider]
    work = batches(provider, messages(requests * PROVIDERS[provider].rules.recipients_per_request))
    cpu, emu_cpu = own_cpu(), emu.cpu()
    with httpx.Client(timeout=30) as http:
        started = time.perf_counter()
        for batch in work:
            if provider == "mailjet":
                response = http.post(f"{url}/v4/sms-send", json={
                    "From": sender, "To": batch[0].to, "Text": batch[0].text},
                    headers={"Authorization": "Bearer rehearsal-token"})
            else:
                response = http.post(f"{url}/v1/sms", json={
                    "from": sender, "to": [m.to for m in batch], "text": "{{ text }}",
                    "personalization": [{"phone_number": m.to, "data": {"text": m.text}}
                                        for m in batch]},
                    headers={"Authorization": "Bearer rehearsal-key"})
            response.raise_for_status()
        seconds = time.perf_counter() - started
    return Measure("sequential httpx.Client loop (sample)", sum(map(len, work)), seconds,
                   own_cpu() - cpu, emu.cpu() - emu_cpu)


def profile(campaign: Path, reports: Path, top: int) -> None:
    """The sending phase in process (prepare_send, then execute) under cProfile.

    cProfile sees the event loop's thread only: the journal's commits run on their own
    thread and appear as the time the loop waits for them.
    """
    prepared = prepare_send(campaign, reports, environ={**os.environ, **CREDENTIALS})
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    result = asyncio.run(execute(prepared, {**os.environ, **CREDENTIALS}))
    profiler.disable()
    seconds = time.perf_counter() - started
    prepared.close()
    print(f"\n  cProfile of the sending phase: {result.stats.sent:,} sent in {seconds:.2f} s")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def bench(provider: str, args: argparse.Namespace, folder: Path) -> None:
    rows, latency = args.rows, args.latency
    per_request = PROVIDERS[provider].rules.recipients_per_request
    print(f"\n== {provider}: {rows:,} recipients, {per_request} per request"
          + (f", {latency * 1000:.0f} ms latency ==" if latency else " =="))
    best: Measure | None = None
    for run, concurrency in enumerate(args.concurrency):
        with emulator(latency) as emu:
            campaign = write_campaign(folder, provider, emu.url(provider), rows, concurrency,
                                      f"-{run}")
            whole, sending = time_send(campaign, folder / "reports", emu, rows)
        print(whole.line())
        print(sending.line())
        if best is None or sending.rate > best.rate:
            best, best_campaign = sending, campaign
    assert best is not None
    with emulator(latency) as emu:
        campaign = write_campaign(folder, provider, emu.url(provider), rows,
                                  load_campaign(best_campaign).send.concurrency, "-client")
        print(client_only(campaign, provider, rows, emu).line())
    print(journal_only(folder, provider, rows, args.concurrency[0]).line())
    with emulator(latency) as emu:
        loop = sequential(provider, emu, args.sample)
    print(loop.line())
    ratio = best.rate / loop.rate
    target = TARGETS[provider]
    verdict = "met" if best.rate >= target and ratio >= 5 else "NOT met"
    print(f"  best sending rate {best.rate:,.0f} msg/s ({best.label.strip()}) = {ratio:.1f}x "
          f"the sequential loop; target {target:,.0f} msg/s and 5x: {verdict}")
    if args.profile:
        with emulator(latency) as emu:
            campaign = write_campaign(folder, provider, emu.url(provider), rows,
                                      load_campaign(best_campaign).send.concurrency, "-profile")
            profile(campaign, folder / "reports", args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--provider", choices=["mailjet", "mailersend", "both"], default="both")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--sample", type=int, default=2000,
                        help="requests in the sequential loop")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds every send request takes at the emulator (e.g. 0.05)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the sending phase in process (cProfile)")
    parser.add_argument("--top", type=int, default=30, help="functions the profile lists")
    args = parser.parse_args()
    providers = ["mailjet", "mailersend"] if args.provider == "both" else [args.provider]
    print(f"batchsms send benchmark on {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"httpx {httpx.__version__}")
    with tempfile.TemporaryDirectory(prefix="batchsms-bench-send-") as tmp:
        for provider in providers:
            folder = Path(tmp) / provider
            folder.mkdir()
            bench(provider, args, folder)


if __name__ == "__main__":
    main()
