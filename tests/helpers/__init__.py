"""Shared test helpers: campaigns on disk, the served emulators, batchsms as a real process.

Test modules import from here (``from helpers import ...``), never from each other.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from batchsms.emulator.core import EmulatorState, Fault, FaultKind
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread

REAL_TOKEN = "real-token-of-a-customer"  # a Mailjet account that is not batchsms emulator's
OTHER_TOKEN = "another-real-token"
PROCESS_TIMEOUT = 60.0  # no batchsms process of a test may outlive this


# -- campaigns ------------------------------------------------------------------------------
def dk_phone(i: int) -> str:
    return f"+45 20 12 {i:04d}"


def dk_e164(i: int) -> str:
    return f"+452012{i:04d}"


def write_campaign(folder: Path, url: str | None, count: int, *, name: str = "spring",
                   sandbox: bool = False, send: dict[str, Any] | None = None,
                   pricing: dict[str, Any] | None = None, template: str = "Hi << name >>!",
                   extra: dict[str, Any] | None = None) -> Path:
    """A Mailjet campaign of ``count`` Danish recipients in ``folder``; returns the YAML."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "contacts.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name"])
        writer.writerows([dk_phone(i), f"P{i}"] for i in range(count))
    (folder / "template.txt").write_text(template, encoding="utf-8")
    provider: dict[str, Any] = {"name": "mailjet", "sender": "ShopDK"}
    if sandbox:
        provider["sandbox"] = True
    else:
        provider["base_url"] = url
    campaign = {"name": name, "contacts": {"path": "contacts.csv"},
                "template": {"path": "template.txt"}, "provider": provider,
                "pricing": pricing or {"currency": "EUR", "default": "0.05",
                                       "countries": {"DK": "0.04"}},
                "send": send or {}, **(extra or {})}
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign, sort_keys=False), encoding="utf-8")
    return path


def edit_campaign(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- the served emulators -----------------------------------------------------------------------
@dataclass
class Served:
    """``batchsms emulator``'s four providers on one port; Mailjet is the one these tests use."""

    root: str
    state: EmulatorState  # Mailjet's
    rehearsal_env: dict[str, str]

    @property
    def url(self) -> str:
        return base_urls(self.root)["mailjet"]

    def add_account(self, token: str) -> None:
        """A real (non-rehearsal) account, created through the control interface."""
        answer = httpx.post(f"{self.url}/__emulator/accounts",
                            json={"credential": token, "balance": None, "daily_limit": None})
        answer.raise_for_status()

    def reset(self) -> Served:
        seeded = {k: v for k, v in self.state.accounts.items() if k == "rehearsal-token"}
        self.state.reset()
        self.state.accounts.update(seeded)
        self.add_account(REAL_TOKEN)
        self.add_account(OTHER_TOKEN)
        return self

    def slow(self, delay: float) -> None:
        """Every send request is recorded, then answered only after ``delay`` seconds."""
        self.state.add_fault(Fault(FaultKind.SLOW, None, delay=delay))

    def fast(self) -> None:
        self.state.faults.clear()

    def per_number(self, account: str | None = REAL_TOKEN) -> Counter[str]:
        """Messages the emulator accepted per destination (through ``account``; None: all)."""
        return Counter("+" + r.to.lstrip("+") for r in self.state.records
                       if account is None or r.account == account)

    def send_requests(self) -> int:
        return sum(1 for r in self.state.requests if r.path.endswith("/sms-send"))


@contextmanager
def served_emulator(folder: Path) -> Iterator[Served]:
    app, env = rehearsal_app(folder)
    with serve_in_thread(app) as root:
        yield Served(root, app.state.emulators["mailjet"], env).reset()


def real_env(token: str = REAL_TOKEN) -> dict[str, str]:
    return {"MAILJET_SMS_TOKEN": token}


# -- batchsms as a real process ---------------------------------------------------------------
def _environ(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILJET_")}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``batchsms ARGS`` as a child process (its own process group, for a clean kill)."""
    return subprocess.Popen([sys.executable, "-m", "batchsms", *args], cwd=cwd,
                            env=_environ(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


@dataclass
class Done:
    code: int
    out: str
    err: str


def finish(process: subprocess.Popen[str], timeout: float = PROCESS_TIMEOUT) -> Done:
    """Wait for ``process`` (killing it after ``timeout``) and collect what it printed."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        out, err = process.communicate()
        raise AssertionError(f"batchsms did not finish within {timeout} s:\n{out}\n{err}"
                             ) from None
    return Done(process.returncode, out, err)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Done:
    return finish(start(args, cwd, env))


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL the process (and its group) if it still runs."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """A list to put started processes in; every one still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            kill(process)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``condition`` until it holds (a bound on waiting, never an assertion on time)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
