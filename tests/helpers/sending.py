"""Campaign folders, served emulators and sends: shared by the end-to-end send tests."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsms.cli.commands import main
from batchsms.emulator.core import (
    Account,
    EmulatorState,
)
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.providers.connect import connect
from batchsms.report.dryrun import dry_run
from batchsms.report.results import ResultFiles, write_results
from batchsms.send.journal import Journal
from batchsms.send.runner import Runner, RunResult
from batchsms.send.sending import (
    JOURNAL,
    execute,
    prepare_send,
    settings_for,
)

PROVIDERS = ("mailjet", "mailersend", "voximplant", "txty")
SENDERS = {"mailjet": "ShopDK", "mailersend": "+12015550100", "voximplant": "447443332211",
           "txty": "ShopDK"}
SEND_PATHS = {"mailjet": "/mailjet/v4/sms-send", "mailersend": "/mailersend/v1/sms",
              "voximplant": "/voximplant/platform_api/SendSmsMessage",
              "txty": "/txty/api/4/sms/api.json"}
NAMES = ["Søren", "Zoë", "Ann {{ x }}", "Bo", "Łukasz", "Ann {{ x }}", "Mette"]
TEMPLATE = "Hi << name >>, spring sale: {{ code }} gives 20% off!"
ROOT = Path(__file__).resolve().parent.parent


# -- campaign folders ----------------------------------------------------------------------
def phone(provider: str, i: int) -> str:
    """A valid mobile number as a person writes it (US for MailerSend, Danish otherwise)."""
    return f"+1 201 555 {100 + i:04d}" if provider == "mailersend" else f"+45 20 12 {i:04d}"


def e164(provider: str, i: int) -> str:
    return "+" + "".join(c for c in phone(provider, i) if c.isdigit())


def contacts(provider: str, count: int, start: int = 0) -> list[dict[str, str]]:
    return [{"phone": phone(provider, i), "name": NAMES[i % len(NAMES)]}
            for i in range(start, start + count)]


def write_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_campaign(folder: Path, provider: str, url: str, rows: list[dict[str, str]], *,
                   send: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                   template: str = TEMPLATE, name: str = "spring") -> Path:
    """A campaign YAML, its sheet and template in ``folder``; returns the YAML's path."""
    write_sheet(folder / "contacts.csv", rows)
    (folder / "template.txt").write_text(template, encoding="utf-8")
    campaign = {
        "name": name,
        "contacts": {"path": "contacts.csv"},
        "template": {"path": "template.txt"},
        "provider": {"name": provider, "sender": SENDERS[provider], "base_url": url,
                     **(options or {})},
        "pricing": {"currency": "EUR", "default": 0.05, "countries": {"DK": 0.04}},
        "send": send or {},
    }
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def planned(campaign: Path, reports: Path) -> list[tuple[str, str]]:
    """(e164, text) of every row the dry run would send, from dry-run.csv."""
    rows = read_csv(dry_run(campaign, reports).csv_path)  # type: ignore[arg-type]
    return sorted((r["e164"], r["text"]) for r in rows if r["status"] == "ok")


def received(state: EmulatorState) -> list[tuple[str, str]]:
    """(e164, text) of every message the emulated provider accepted, duplicates included."""
    return sorted(("+" + r.to.lstrip("+"), r.text) for r in state.records)


def send_requests(state: EmulatorState, provider: str) -> list[Any]:
    return [r for r in state.requests if r.path == SEND_PATHS[provider]]


def statuses(files: ResultFiles) -> dict[str, str]:
    """e164 → status of every sendable row in results.csv."""
    return {r["e164"]: r["status"] for r in read_csv(files.csv) if r["status"] != "skipped"}


def journal_counts(reports: Path, name: str = "spring") -> dict[str, int]:
    journal = Journal.open(reports / name / JOURNAL)
    try:
        return journal.counts()
    finally:
        journal.close()


# -- the emulators and sending ---------------------------------------------------------------
@dataclass
class Rehearsal:
    """The four emulators served on one port, with their seeded accounts' credentials."""

    states: dict[str, EmulatorState]
    urls: dict[str, str]
    env: dict[str, str]
    seeds: dict[str, dict[str, Account]]

    def reset(self) -> Rehearsal:
        """Forget every request, record, fault and setting; restore the seeded accounts."""
        for name, state in self.states.items():
            state.reset()
            state.accounts.update({key: _fresh(account)
                                   for key, account in self.seeds[name].items()})
        return self


def _fresh(account: Account) -> Account:
    extra = {k: set(v) if isinstance(v, set) else v for k, v in account.extra.items()}
    return replace(account, extra=extra)


@contextmanager
def rehearsal(folder: Path) -> Iterator[Rehearsal]:
    """Serve the rehearsal emulators on 127.0.0.1 while the block runs."""
    app, env = rehearsal_app(folder)
    states: dict[str, EmulatorState] = app.state.emulators
    seeds = {name: dict(state.accounts) for name, state in states.items()}
    with serve_in_thread(app) as root:
        yield Rehearsal(states, base_urls(root), env, seeds).reset()


async def send(campaign: Path, env: dict[str, str], reports: Path, *,
               settings: dict[str, Any] | None = None, **options: Any
               ) -> tuple[RunResult, ResultFiles]:
    """prepare_send + execute + write_results, as ``batchsms send --yes`` does.

    ``settings`` overrides the runner's SendSettings (e.g. a short ``lookup_wait``); the
    run then goes through the Runner directly, on the same connection ``execute`` makes.
    """
    prepared = prepare_send(campaign, reports, environ=env, **options)
    try:
        if settings is None:
            result = await execute(prepared, env)
        else:
            chosen = replace(settings_for(prepared.campaign), **settings)
            async with connect(prepared.campaign.provider, env) as connection:
                result = await Runner(prepared.journal, connection.provider, chosen).run()
        files = write_results(prepared.campaign, prepared.journal, prepared.folder)
    finally:
        prepared.close()
    return result, files


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
