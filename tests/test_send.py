"""``batchsms send`` end to end: campaign files in tmp_path, the emulators served over HTTP.

Every test writes a real campaign (YAML, CSV sheet, template), points ``provider.base_url``
at the rehearsal emulators served on 127.0.0.1, sends, and checks what the emulated
provider recorded against the plan the dry run wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from helpers.sending import (
    PROVIDERS,
    ROOT,
    SENDERS,
    TEMPLATE,
    cli,
    contacts,
    e164,
    journal_counts,
    phone,
    planned,
    read_csv,
    received,
    send,
    send_requests,
    statuses,
    write_campaign,
    write_sheet,
)
from helpers.timing import most_in_a_window

from batchsms.emulator.core import (
    EmulatorState,
    Fault,
    FaultKind,
    Script,
    ScriptedOutcome,
)
from batchsms.emulator.server import free_port
from batchsms.errors import CampaignError
from batchsms.send.sending import (
    JOURNAL,
    BudgetExceeded,
    ChangedInputs,
    prepare_send,
)


# -- 1. every provider gets exactly the plan ------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_each_provider_receives_exactly_the_planned_texts(provider, emulators, tmp_path,
                                                                reports):
    rows = [*contacts(provider, 9), {"phone": "not a phone", "name": "Nora"},
            {"phone": phone(provider, 3), "name": "Again"}, {"phone": phone(provider, 40),
                                                              "name": ""}]
    campaign = write_campaign(tmp_path, provider, emulators.urls[provider], rows,
                              send={"chunk_size": 4})
    plan = planned(campaign, reports)
    assert len(plan) == 9
    state = emulators.states[provider]

    result, files = await send(campaign, emulators.env, reports)

    assert result.stopped is None and result.stats.sent == 9
    assert received(state) == plan
    assert len(send_requests(state, provider)) == (3 if provider == "mailersend" else 9)
    by_row = {int(r["row"]): r for r in read_csv(files.csv)}
    assert [by_row[row]["status"] for row in range(2, 14)] == ["sent"] * 9 + ["skipped"] * 3
    assert sorted(r["e164"] for r in by_row.values() if r["status"] == "sent") == \
        [e for e, _ in plan]
    assert all(by_row[row]["provider_message_id"] and by_row[row]["sent_at"]
               for row in range(2, 11))
    summary = json.loads(files.summary.read_text(encoding="utf-8"))
    assert summary["complete"] is True
    assert (summary["sent"], summary["skipped"], summary["failed"]) == (9, 3, 0)


@pytest.mark.anyio
async def test_a_second_run_of_a_finished_campaign_sends_nothing(emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, "txty", emulators.urls["txty"], contacts("txty", 4))
    await send(campaign, emulators.env, reports)
    result, files = await send(campaign, emulators.env, reports)
    assert result.stats.requests == 0
    assert len(emulators.states["txty"].records) == 4
    assert set(statuses(files).values()) == {"sent"}


# -- 2. chunks and rate -----------------------------------------------------------------------
def mailersend_bodies(state: EmulatorState) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in send_requests(state, "mailersend")]


def texts_by_number(body: dict[str, Any]) -> dict[str, str]:
    if "personalization" in body:
        assert body["text"] == "{{ text }}"
        return {p["phone_number"]: p["data"]["text"] for p in body["personalization"]}
    return dict.fromkeys(body["to"], body["text"])


@pytest.mark.anyio
@pytest.mark.parametrize(("chunk_size", "sizes"), [(50, [50, 50, 20]), (7, [7, 7, 6])])
async def test_mailersend_sends_a_chunk_per_request_with_each_recipients_text(
        emulators, tmp_path, reports, chunk_size, sizes):
    count = sum(sizes)
    campaign = write_campaign(tmp_path, "mailersend", emulators.urls["mailersend"],
                              contacts("mailersend", count), send={"chunk_size": chunk_size})
    plan = planned(campaign, reports)
    state = emulators.states["mailersend"]

    result, _ = await send(campaign, emulators.env, reports)

    assert result.stats.sent == count
    bodies = mailersend_bodies(state)
    assert sorted(len(b["to"]) for b in bodies) == sorted(sizes)
    assert all("personalization" in b for b in bodies)  # mixed texts in every chunk
    sent = {number: text for b in bodies for number, text in texts_by_number(b).items()}
    assert sorted(sent.items()) == plan
    assert received(state) == plan  # what the emulator rendered is the planned text


@pytest.mark.anyio
async def test_mailersend_chunk_with_equal_plain_texts_goes_out_as_plain_text(emulators,
                                                                               tmp_path,
                                                                               reports):
    rows = [{"phone": phone("mailersend", i), "name": "Bo"} for i in range(3)]
    campaign = write_campaign(tmp_path, "mailersend", emulators.urls["mailersend"], rows,
                              template="Hi << name >>, 20% off today!")
    await send(campaign, emulators.env, reports)
    [body] = mailersend_bodies(emulators.states["mailersend"])
    assert body == {"from": SENDERS["mailersend"], "to": [e164("mailersend", i) for i in range(3)],
                    "text": "Hi Bo, 20% off today!"}


@pytest.mark.anyio
async def test_one_per_request_provider_never_exceeds_the_rate_in_any_window(emulators,
                                                                             tmp_path, reports):
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 45), send={"rate": "20/s"})
    state = emulators.states["mailjet"]
    state.rate = (20, 1.0)  # the emulator refuses anything faster, so a slip shows as a 429

    result, _ = await send(campaign, emulators.env, reports)

    assert result.stats.sent == 45 and result.stats.requests == 45
    times = [r.at for r in send_requests(state, "mailjet")]
    assert most_in_a_window(times, 1.0) == 20  # held, and reached: the limiter is not idle
    assert max(times) - min(times) >= 2.0  # 45 at 20 per second take more than two windows
    assert len(state.records) == 45


@pytest.mark.anyio
async def test_mailersend_holds_a_campaign_rate_over_every_window(emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, "mailersend", emulators.urls["mailersend"],
                              contacts("mailersend", 14), send={"rate": "5/s", "chunk_size": 2})
    state = emulators.states["mailersend"]

    result, _ = await send(campaign, emulators.env, reports)

    assert result.stats.sent == 14 and result.stats.requests == 7
    assert max(len(b["to"]) for b in mailersend_bodies(state)) == 2
    times = [r.at for r in send_requests(state, "mailersend")]
    assert most_in_a_window(times, 1.0) == 5
    assert received(state) == planned(campaign, reports)


# -- 3. faults ----------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "kind"), [
    ("mailjet", FaultKind.ACCEPT_THEN_ERROR), ("mailersend", FaultKind.ACCEPT_THEN_ERROR),
    ("voximplant", FaultKind.ACCEPT_THEN_ERROR), ("txty", FaultKind.ACCEPT_THEN_ERROR),
    ("mailjet", FaultKind.ACCEPT_THEN_DROP), ("voximplant", FaultKind.ACCEPT_THEN_DROP),
    ("txty", FaultKind.SLOW), ("mailersend", FaultKind.SLOW)])
async def test_a_processed_request_without_an_answer_is_confirmed_by_lookup(
        provider, kind, emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, provider, emulators.urls[provider],
                              contacts(provider, 6), send={"chunk_size": 3},
                              options={"timeout": 0.5})
    state = emulators.states[provider]
    state.add_fault(Fault(kind, nth=2, delay=1.5))

    result, files = await send(campaign, emulators.env, reports)

    assert received(state) == planned(campaign, reports)  # once each: nothing resent
    assert set(statuses(files).values()) == {"sent"}
    confirmed = [r for r in read_csv(files.csv) if "status lookup" in r["error"]]
    assert len(confirmed) == (3 if provider == "mailersend" else 1)
    assert all(r["provider_message_id"] for r in confirmed)
    assert result.stats.unknown == 0


@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "kind"), [
    ("mailjet", FaultKind.ERROR), ("mailersend", FaultKind.ERROR),
    ("voximplant", FaultKind.DROP), ("txty", FaultKind.DROP)])
async def test_an_unknown_outcome_the_provider_never_saw_is_reported_not_resent(
        provider, kind, emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, provider, emulators.urls[provider],
                              contacts(provider, 6), send={"chunk_size": 3})
    state = emulators.states[provider]
    state.add_fault(Fault(kind, nth=1))
    fast = {"lookup_wait": 0.3}

    result, files = await send(campaign, emulators.env, reports, settings=fast)

    lost = sorted(e for e, s in statuses(files).items() if s == "unknown")
    assert len(lost) == result.stats.unknown == (3 if provider == "mailersend" else 1)
    assert result.stats.sent == 6 - len(lost)
    assert not {to for to, _ in received(state)} & set(lost)
    assert all("not resent" in r["error"] for r in read_csv(files.csv) if r["e164"] in lost)

    requests = len(send_requests(state, provider))
    result, files = await send(campaign, emulators.env, reports, settings=fast)
    assert result.stats.requests == 0 and len(send_requests(state, provider)) == requests
    assert sorted(e for e, s in statuses(files).items() if s == "unknown") == lost

    result, files = await send(campaign, emulators.env, reports, resend_unknown=True)
    assert result.stats.sent == len(lost)
    assert received(state) == planned(campaign, reports)  # the lost ones, exactly once
    assert set(statuses(files).values()) == {"sent"}


@pytest.mark.anyio
async def test_a_429_storm_is_waited_out_and_every_message_goes_out_once(emulators, tmp_path,
                                                                         reports):
    campaign = write_campaign(tmp_path, "txty", emulators.urls["txty"], contacts("txty", 8))
    state = emulators.states["txty"]
    state.config["retry_after"] = 0.2
    state.add_fault(Fault(FaultKind.THROTTLE, nth=1, times=12))

    result, files = await send(campaign, emulators.env, reports)

    assert result.stats.sent == 8 and result.stats.failed == 0
    assert len(send_requests(state, "txty")) == 20
    assert received(state) == planned(campaign, reports)
    times = sorted(r.at for r in send_requests(state, "txty"))
    assert times[-1] - times[0] >= 0.2  # the wait TXTY asked for was kept
    rows = read_csv(files.csv)
    assert sum(int(r["attempts"]) for r in rows) == 20
    assert {r["status"] for r in rows} == {"sent"}


@pytest.mark.anyio
async def test_an_unreachable_provider_stops_naming_it_and_nothing_is_lost(emulators, tmp_path,
                                                                           reports):
    port = free_port()
    closed = f"http://127.0.0.1:{port}"
    campaign = write_campaign(tmp_path, "mailjet", closed, contacts("mailjet", 3))

    result, files = await send(campaign, emulators.env, reports,
                               settings={"backoff": 0.02, "max_throttles": 2})

    assert result.stopped == (f"cannot connect to 127.0.0.1:{port} (connection refused): is "
                              "the server running? check provider.base_url")
    assert result.stats.requests <= 3  # not retried: the run stops at the first refusal
    assert set(statuses(files).values()) == {"pending"}

    campaign.write_text(campaign.read_text(encoding="utf-8").replace(
        closed, emulators.urls["mailjet"]), encoding="utf-8")
    result, _ = await send(campaign, emulators.env, reports, accept_changes=True)
    assert received(emulators.states["mailjet"]) == planned(campaign, reports)


@pytest.mark.anyio
async def test_a_mailersend_recipient_refused_alone_fails_and_its_chunk_still_goes(
        emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, "mailersend", emulators.urls["mailersend"],
                              contacts("mailersend", 5))
    state = emulators.states["mailersend"]
    state.scripts[e164("mailersend", 2)] = Script(ScriptedOutcome.REJECT)

    result, files = await send(campaign, emulators.env, reports)

    assert (result.stats.sent, result.stats.failed) == (4, 1)
    assert len(send_requests(state, "mailersend")) == 2  # refused whole, then without it
    assert received(state) == [p for p in planned(campaign, reports)
                               if p[0] != e164("mailersend", 2)]
    failed = [r for r in read_csv(files.csv) if r["status"] == "failed"]
    assert [r["e164"] for r in failed] == [e164("mailersend", 2)]
    assert "invalid number" in failed[0]["error"]


# -- 4. stops -----------------------------------------------------------------------------------
def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_a_refused_credential_stops_the_run_and_leaves_everyone_pending(
        emulators, tmp_path, reports, monkeypatch, capsys):
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 10))
    use_env(monkeypatch, {**emulators.env, "MAILJET_SMS_TOKEN": "not-the-token"})
    args = ["send", str(campaign), "--yes", "--reports", str(reports)]

    code, out, err = cli(args, capsys)

    assert code == 2
    assert "check the credentials in MAILJET_SMS_TOKEN" in err
    assert "not-the-token" not in out + err
    state = emulators.states["mailjet"]
    assert state.records == []
    assert len(send_requests(state, "mailjet")) <= 8  # only what was in flight
    assert journal_counts(reports) == {"pending": 10, "sending": 0, "sent": 0, "failed": 0,
                                       "unknown": 0}

    monkeypatch.setenv("MAILJET_SMS_TOKEN", emulators.env["MAILJET_SMS_TOKEN"])
    code, out, err = cli(args, capsys)
    assert code == 0, err
    assert received(state) == planned(campaign, reports)


@pytest.mark.anyio
@pytest.mark.parametrize(("limit", "value", "advice"), [
    ("balance", Decimal("0.0036"), "top up the Mailjet SMS wallet"),
    ("daily_limit", 3, "daily SMS limit is reached")])
async def test_funds_or_daily_quota_stop_the_run_and_a_resume_sends_the_rest_once(
        emulators, tmp_path, reports, limit, value, advice):
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 10), send={"concurrency": 2})
    state = emulators.states["mailjet"]
    account = state.accounts[emulators.env["MAILJET_SMS_TOKEN"]]
    setattr(account, limit, value)  # 3 one-part messages at EUR 0.0012

    result, files = await send(campaign, emulators.env, reports)

    assert result.stopped is not None and advice in result.stopped
    assert len(state.records) == 3
    assert Counter(statuses(files).values()) == {"sent": 3, "pending": 7}
    assert json.loads(files.summary.read_text(encoding="utf-8"))["complete"] is False

    setattr(account, limit, None)
    result, files = await send(campaign, emulators.env, reports)
    assert result.stopped is None and result.stats.sent == 7
    assert received(state) == planned(campaign, reports)
    assert set(statuses(files).values()) == {"sent"}


@pytest.mark.anyio
async def test_a_paused_sender_stops_the_run_and_keeps_what_went_out(emulators, tmp_path,
                                                                     reports):
    campaign = write_campaign(tmp_path, "mailersend", emulators.urls["mailersend"],
                              contacts("mailersend", 12), send={"chunk_size": 4,
                                                                 "concurrency": 1})
    state = emulators.states["mailersend"]
    account = state.accounts[emulators.env["MAILERSEND_API_KEY"]]
    account.extra["paused"] = {SENDERS["mailersend"]}

    result, files = await send(campaign, emulators.env, reports)

    assert result.stopped is not None and "paused" in result.stopped
    went_out = len(state.records)
    assert went_out == 4  # one request at a time: the one that saw the pause, then none
    assert Counter(statuses(files).values()) == {"sent": went_out, "pending": 12 - went_out}

    account.extra["paused"] = set()
    result, _ = await send(campaign, emulators.env, reports)
    assert result.stats.sent == 12 - went_out
    assert received(state) == planned(campaign, reports)


# -- 5. refusals before sending ---------------------------------------------------------------
def test_over_budget_refuses_says_by_how_much_and_leaves_nothing(emulators, tmp_path,
                                                                  reports, capsys, monkeypatch):
    for key, value in emulators.env.items():
        monkeypatch.setenv(key, value)
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 5), send={"budget": 0.15})
    code, _, err = cli(["send", str(campaign), "--yes", "--reports", str(reports)], capsys)
    assert code == 2
    assert "the estimate is EUR 0.20, over the budget of EUR 0.15 by EUR 0.05." in err
    assert emulators.states["mailjet"].requests == []
    assert not (reports / "spring" / JOURNAL).exists()
    with pytest.raises(BudgetExceeded):
        prepare_send(campaign, reports, environ=emulators.env)


@pytest.mark.anyio
async def test_changed_inputs_are_refused_then_accepted_without_messaging_anyone_twice(
        emulators, tmp_path, reports):
    state = emulators.states["mailjet"]
    account = state.accounts[emulators.env["MAILJET_SMS_TOKEN"]]
    account.balance = Decimal("0.0036")  # the first run sends 3 of 5, then stops
    rows = contacts("mailjet", 5)
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"], rows,
                              send={"concurrency": 1})
    await send(campaign, emulators.env, reports)
    first = received(state)
    assert [to for to, _ in first] == [e164("mailjet", i) for i in range(3)]

    edited = [{**r, "name": "Changed"} for r in rows[:4]] + contacts("mailjet", 1, start=7)
    write_sheet(tmp_path / "contacts.csv", edited)  # row 5 removed, row 4 changed, one new
    with pytest.raises(ChangedInputs, match=r"changed since this campaign was first sent: "
                                            r"contact sheet\. .*--accept-changes"):
        prepare_send(campaign, reports, environ=emulators.env)
    assert received(state) == first

    account.balance = None
    result, files = await send(campaign, emulators.env, reports, accept_changes=True)

    assert result.stats.sent == 2
    new = sorted(received(state)[i] for i in range(5) if received(state)[i] not in first)
    assert new == sorted([(e164("mailjet", 3), TEMPLATE.replace("<< name >>", "Changed")),
                          (e164("mailjet", 7), TEMPLATE.replace("<< name >>", "Søren"))])
    assert e164("mailjet", 4) not in statuses(files)  # removed before it was sent
    assert Counter(to for to, _ in received(state)).most_common(1)[0][1] == 1


@pytest.mark.anyio
async def test_a_changed_template_is_named(emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, "txty", emulators.urls["txty"], contacts("txty", 2))
    await send(campaign, emulators.env, reports)
    (tmp_path / "template.txt").write_text("Bye << name >>", encoding="utf-8")
    with campaign.open("a", encoding="utf-8") as f:
        f.write("# a comment changes the file too\n")
    with pytest.raises(ChangedInputs, match=r"first sent: campaign file, template\."):
        prepare_send(campaign, reports, environ=emulators.env)
    result, _ = await send(campaign, emulators.env, reports, accept_changes=True)
    assert result.stats.requests == 0  # everyone was messaged already


@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "variable"), [
    ("mailjet", "MAILJET_SMS_TOKEN"), ("voximplant", "VOXIMPLANT_CREDENTIALS"),
    ("txty", "TXTY_KEY")])
async def test_missing_credentials_name_the_variable_and_send_nothing(
        provider, variable, emulators, tmp_path, reports):
    campaign = write_campaign(tmp_path, provider, emulators.urls[provider],
                              contacts(provider, 2))
    env = {k: v for k, v in emulators.env.items() if k != variable}
    with pytest.raises(CampaignError, match=f"needs the environment variable {variable}"):
        await send(campaign, env, reports)
    assert emulators.states[provider].requests == []
    assert not (reports / "spring" / JOURNAL).exists()  # refused before anything was planned


def test_send_without_a_terminal_and_without_yes_refuses(emulators, tmp_path, reports,
                                                          monkeypatch, capsys):
    campaign = write_campaign(tmp_path, "txty", emulators.urls["txty"], contacts("txty", 3))
    env = {**os.environ, **emulators.env, "PYTHONPATH": str(ROOT)}
    args = ["send", str(campaign), "--reports", str(reports)]
    refused = subprocess.run([sys.executable, "-m", "batchsms", *args],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env,
                             timeout=120)
    assert refused.returncode == 2, refused.stderr
    assert "there is no terminal to ask on" in refused.stderr
    assert "pass --yes" in refused.stderr
    assert emulators.states["txty"].requests == []
    assert not (reports / "spring" / JOURNAL).exists()

    use_env(monkeypatch, emulators.env)
    code, _, err = cli([*args, "--yes"], capsys)
    assert code == 0, err
    assert received(emulators.states["txty"]) == planned(campaign, reports)


# -- 7. status ----------------------------------------------------------------------------------
def test_status_after_a_partial_and_after_a_complete_run(emulators, tmp_path, reports,
                                                         monkeypatch, capsys):
    campaign = write_campaign(tmp_path, "mailjet", emulators.urls["mailjet"],
                              contacts("mailjet", 5), send={"concurrency": 1})
    account = emulators.states["mailjet"].accounts[emulators.env["MAILJET_SMS_TOKEN"]]
    account.balance = Decimal("0.0024")
    use_env(monkeypatch, emulators.env)
    status = ["status", str(campaign), "--reports", str(reports)]

    code, _, err = cli(status, capsys)
    assert code == 2 and "has not been sent yet" in err

    code, _, err = cli(["send", str(campaign), "--yes", "--reports", str(reports)], capsys)
    assert code == 2 and "top up the Mailjet SMS wallet" in err
    code, out, _ = cli([*status, "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert (data["complete"], data["sent"], data["pending"], data["failed"]) == (False, 2, 3, 0)
    assert data["cost_so_far"] == "0.08" and data["currency"] == "EUR"
    assert [r["result"] for r in data["runs"]] == ["stopped"]
    code, out, _ = cli(status, capsys)
    assert "spring: not complete" in out and "a resumed run would look up 0 and send 3" in out

    account.balance = None
    assert cli(["send", str(campaign), "--yes", "--reports", str(reports)], capsys)[0] == 0
    code, out, _ = cli([*status, "--json"], capsys)
    data = json.loads(out)
    assert (data["complete"], data["sent"], data["pending"]) == (True, 5, 0)
    assert [r["result"] for r in data["runs"]] == ["stopped", "finished"]
    code, out, _ = cli(status, capsys)
    assert code == 0 and "spring: complete" in out and "sent 5" in out
