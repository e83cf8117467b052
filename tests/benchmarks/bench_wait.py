"""Benchmark: the waits a person sees around a send, as ratios measured in one run.

Not a test (pytest does not collect this folder): it measures and prints.

    python tests/benchmarks/bench_wait.py                         # everything (long)
    python tests/benchmarks/bench_wait.py --only startup ctrl-c
    python tests/benchmarks/bench_wait.py --send-rows 50000       # skip the 1,000,000 send

- ``startup``: ``batchsms --help``, ``batchsms send --help``, a mistyped flag and
  ``batchsms status`` against a bare ``python -c pass`` of the same interpreter (median of
  --repeat runs each; target 15x).
- ``send``: ``batchsms send --yes`` of --send-rows MailerSend recipients (50 per request)
  to the emulator served on 127.0.0.1 with every rate limit lifted, against the dry run
  of the same campaign (target 4x), and the peak memory of each (target < 1 GB); then
  --single-rows recipients one per request (Mailjet) with --latency seconds of emulated
  latency per request.
- ``ctrl-c``: a send of --ctrl-c-rows MailerSend recipients (with --latency, so it is
  still sending) gets a Ctrl-C (SIGINT) a second after it starts sending; the time from
  the signal to the exit (target 2 s, exit code 130), then the same with a second Ctrl-C
  0.2 s after the first.

The load average is printed before and after: other processes on the machine slow the
runs down, and the ratios only mean something when the load is low.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_send import CREDENTIALS, emulator, write_campaign

from batchsms.plan.campaign import load_campaign
from batchsms.send.sending import JOURNAL

BATCHSMS = [sys.executable, "-m", "batchsms"]
ENV = {**os.environ, **CREDENTIALS}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """Wall seconds and peak memory (MiB) of one subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        raise RuntimeError(f"{' '.join(args[2:])} exited {code}: {err[-2000:]!r}")
    return elapsed, usage.ru_maxrss / 1024


def median_of(args: list[str], repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    return statistics.median(run(args, ok)[0] for _ in range(repeat))


def startup(folder: Path, repeat: int) -> None:
    print("\n== start-up (median of each) ==")
    with emulator() as emu:  # a small sent campaign, for `status`
        campaign = write_campaign(folder, "mailersend", emu.url("mailersend"), 100, 8)
        run([*BATCHSMS, "send", str(campaign), "--yes", "--reports", str(folder / "reports")])
    bare = median_of([sys.executable, "-c", "pass"], repeat)
    print(f"  python -c pass                {bare * 1000:7.0f} ms")
    for label, args, ok in (
            ("batchsms --help", ["--help"], (0,)),
            ("batchsms send --help", ["send", "--help"], (0,)),
            ("batchsms send --mistyped", ["send", "--mistyped", str(campaign)], (2,)),
            ("batchsms status", ["status", str(campaign), "--reports", str(folder / "reports")],
             (0,))):
        took = median_of([*BATCHSMS, *args], repeat, ok)
        verdict = "met" if took <= 15 * bare else "NOT met"
        print(f"  {label:<29} {took * 1000:7.0f} ms  {took / bare:5.1f}x bare Python "
              f"(target 15x: {verdict})")


def send_vs_dry_run(folder: Path, provider: str, rows: int, latency: float,
                    concurrency: int) -> None:
    where = folder / f"{provider}-{rows}"
    where.mkdir()
    with emulator(latency) as emu:
        campaign = write_campaign(where, provider, emu.url(provider), rows, concurrency)
        reports = where / "reports"
        dry, dry_peak = run([*BATCHSMS, "dry-run", str(campaign), "--reports", str(reports)])
        sent, sent_peak = run([*BATCHSMS, "send", str(campaign), "--yes", "--reports",
                               str(reports)])
    per_request = "50 per request" if provider == "mailersend" else "one per request"
    lag = f", {latency * 1000:.0f} ms latency" if latency else ", rate lifted"
    print(f"  {provider} {rows:,} recipients ({per_request}{lag}, concurrency {concurrency})")
    print(f"    dry run {dry:7.2f} s  peak {dry_peak:6.0f} MiB")
    print(f"    send    {sent:7.2f} s  peak {sent_peak:6.0f} MiB  = {sent / dry:.1f}x its dry run, "
          f"{rows / sent:,.0f} msg/s end to end")


def ctrl_c(folder: Path, rows: int, latency: float, presses: int) -> None:
    where = folder / f"ctrl-c-{presses}"
    where.mkdir()
    with emulator(latency) as emu:
        campaign = write_campaign(where, "mailersend", emu.url("mailersend"), rows, 8)
        proc = subprocess.Popen([*BATCHSMS, "send", str(campaign), "--yes", "--reports",
                                 str(where / "reports")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=ENV, text=True)
        assert proc.stderr is not None
        lines: list[tuple[float, str]] = []
        reader = threading.Thread(target=lambda: lines.extend(
            (time.perf_counter(), line) for line in proc.stderr), daemon=True)  # type: ignore[union-attr]
        reader.start()
        journal = where / "reports" / load_campaign(campaign).name / JOURNAL
        while sent_so_far(journal) < rows // 20 and proc.poll() is None:
            time.sleep(0.05)  # pressed once a twentieth is sent: requests are in flight
        pressed = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        if presses == 2:
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=600)
        took = time.perf_counter() - pressed
        reader.join(timeout=10)
    writing = [at for at, line in lines if line.startswith("Writing results")]
    stopped = f"{writing[0] - pressed:5.2f} s to stop sending, " if writing else ""
    if proc.returncode != 130:
        print(f"  (stderr: {''.join(line for _, line in lines)[-1500:]!r})")
    sent = sent_so_far(journal)
    verdict = "met" if took <= 2.0 and proc.returncode == 130 else "NOT met"
    what = "Ctrl-C" if presses == 1 else "double Ctrl-C"
    print(f"  {what:<14} on {rows:,} recipients: exit {proc.returncode} {took:5.2f} s after the "
          f"first signal ({stopped}{sent:,} sent; target 2 s: {verdict})")


def sent_so_far(journal: Path) -> int:
    if not journal.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM recipients WHERE state = 'sent'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet, or busy
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=["startup", "send", "ctrl-c"],
                        default=["startup", "send", "ctrl-c"])
    parser.add_argument("--repeat", type=int, default=9, help="runs of each start-up command")
    parser.add_argument("--send-rows", type=int, nargs="+", default=[50_000, 1_000_000])
    parser.add_argument("--single-rows", type=int, default=50_000)
    parser.add_argument("--ctrl-c-rows", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(f"batchsms waits, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"load average before: {load()}")
    with tempfile.TemporaryDirectory(prefix="batchsms-bench-wait-") as tmp:
        folder = Path(tmp)
        if "startup" in args.only:
            startup(folder, args.repeat)
        if "send" in args.only:
            print("\n== send vs its dry run ==")
            for rows in args.send_rows:
                send_vs_dry_run(folder, "mailersend", rows, 0.0, args.concurrency)
            if args.single_rows:
                send_vs_dry_run(folder, "mailjet", args.single_rows, args.latency,
                                args.concurrency)
        if "ctrl-c" in args.only:
            print("\n== Ctrl-C ==")
            for presses in (1, 2):
                ctrl_c(folder, args.ctrl_c_rows, args.latency, presses)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
