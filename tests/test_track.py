"""``batchsms track``: late confirmations and deliveries, over HTTP, from the journal.

A real (non-rehearsal) Mailjet account on the served emulator; the emulator's lookups lag
behind its sends, one request is processed but its answer is lost, and one number's
delivery fails: track must turn the unknown into sent once the provider shows it, and
fill in every recipient's delivery, never sending anything.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from batchsms.cli.commands import main
from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.mailjet import make_account
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.providers.connect import connect
from batchsms.send.runner import Runner, SendSettings
from batchsms.send.sending import prepare_send

TOKEN = "live-token-track"
NUMBERS = [f"+45201200{i:02d}" for i in range(6)]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorState, str]]:
    app, _ = rehearsal_app(tmp_path_factory.mktemp("emulator"))
    with serve_in_thread(app) as root:
        yield app.state.emulators["mailjet"], base_urls(root)["mailjet"]


@pytest.fixture
def mailjet(served: tuple[EmulatorState, str], monkeypatch: pytest.MonkeyPatch
            ) -> tuple[EmulatorState, str]:
    state, url = served
    state.reset()
    state.accounts[TOKEN] = make_account({"credential": TOKEN, "daily_limit": None})
    state.config.update({"sent_after": 0, "delivered_after": 0})
    monkeypatch.setenv("MAILJET_SMS_TOKEN", TOKEN)
    return state, url


def campaign(folder: Path, url: str, sandbox: bool = False) -> Path:
    (folder / "contacts.csv").write_text(
        "phone,name\n" + "".join(f"{n},N{i}\n" for i, n in enumerate(NUMBERS)), encoding="utf-8")
    provider = {"name": "mailjet", "sender": "ShopDK"}
    provider.update({"sandbox": True} if sandbox else {"base_url": url})
    path = folder / "campaign.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tracked", "contacts": {"path": "contacts.csv"},
        "template": {"text": "Hi << name >>"}, "provider": provider,
        "pricing": {"currency": "EUR", "default": 0.05}}), encoding="utf-8")
    return path


async def send_with_short_lookups(path: Path) -> None:
    """What `batchsms send --yes` does, with the runner's lookups given up after 0.3 s."""
    prepared = prepare_send(path)
    try:
        async with connect(prepared.campaign.provider) as connection:
            await Runner(prepared.journal, connection.provider,
                         SendSettings(rate=None, lookup_wait=0.3)).run()
    finally:
        prepared.close()


def results(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "reports" / "tracked" / "results.csv").open(encoding="utf-8") as f:
        return {r["e164"]: r for r in csv.DictReader(f)}


def track(path: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, dict]:
    code = main(["track", str(path), "--json", *more])
    return code, json.loads(capsys.readouterr().out)


def test_track_confirms_a_lost_answer_after_the_lag_and_records_every_delivery(
        mailjet, tmp_path, capsys):
    state, url = mailjet
    path = campaign(tmp_path, url)
    state.config["lookup_lag"] = 3600  # the provider's statistics lag behind its sends
    state.add_fault(Fault(FaultKind.ACCEPT_THEN_DROP, nth=2))
    state.scripts[NUMBERS[4]] = Script(ScriptedOutcome.FAIL, "13")
    asyncio.run(send_with_short_lookups(path))
    assert len(state.records) == len(NUMBERS)  # the provider has every message, once
    sends_before = len(state.records)

    code, early = track(path, capsys)  # still lagging: nothing to confirm yet
    assert code == 1 and early["confirmed"] == 0 and early["still_unknown"] == 1

    state.config["lookup_lag"] = 0  # the lag has passed
    code, data = track(path, capsys)

    assert len(state.records) == sends_before  # track never sends
    assert data["confirmed"] == 1 and data["still_unknown"] == 0
    rows = results(tmp_path)
    assert {r["status"] for r in rows.values()} == {"sent"}
    assert {n: rows[n]["delivery"] for n in NUMBERS} == {
        **{n: "delivered" for n in NUMBERS}, NUMBERS[4]: "undelivered"}
    assert rows[NUMBERS[4]]["delivery_reason"]
    # Mailjet's statistics carry no delivery time: the column stays empty, never made up
    assert {rows[n]["delivered_at"] for n in NUMBERS} == {""}
    assert {r.id for r in state.records} == {r["provider_message_id"] for r in rows.values()}
    assert code == 0 and data["resolved"] is True
    summary = json.loads((tmp_path / "reports" / "tracked" / "summary.json").read_text())
    assert summary["delivery"]["delivered"] == 5 and summary["delivery"]["undelivered"] == 1
    assert summary["delivery"]["delivered_rate"] == "0.8333"
    assert summary["delivery"]["undelivered_by_reason"] == {
        rows[NUMBERS[4]]["delivery_reason"]: 1}


def test_pending_deliveries_leave_track_open_and_a_second_run_changes_nothing_sent(
        mailjet, tmp_path, capsys):
    state, url = mailjet
    state.config.update({"delivered_after": 10_000})  # no final report for a long while
    path = campaign(tmp_path, url)
    asyncio.run(send_with_short_lookups(path))
    first, data = track(path, capsys, "--wait", "--max-wait", "0")
    assert first == 1 and data["deliveries"] == {"pending": len(NUMBERS)}
    again, _ = track(path, capsys)
    assert again == 1 and len(state.records) == len(NUMBERS)
    assert {r["status"] for r in results(tmp_path).values()} == {"sent"}


def test_a_sandbox_campaign_has_nothing_to_track(tmp_path, capsys):
    path = campaign(tmp_path, "", sandbox=True)
    assert main(["send", str(path), "--yes"]) == 0
    capsys.readouterr()
    code, data = track(path, capsys)
    assert code == 0 and "rehearsal" in data["note"]


def test_track_before_any_send_says_so(tmp_path, capsys):
    path = campaign(tmp_path, "", sandbox=True)
    assert main(["track", str(path)]) == 2
    assert "has not been sent yet" in capsys.readouterr().err
