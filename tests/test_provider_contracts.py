"""Contract tests: the providers' documented answers (and the awkward ones) replayed
against each client through an in-process transport, independent of our emulators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import over_httpx

from batchsms.providers.base import Message, Outcome
from batchsms.providers.registry import PROVIDERS
from batchsms.providers.settings import ProviderConfig

pytestmark = pytest.mark.anyio

CASES = json.loads((Path(__file__).parent / "fixtures/providers/contracts.json")
                   .read_text(encoding="utf-8"))
SENDERS = {"mailjet": "ShopDK", "mailersend": "+12015550100", "voximplant": "447443332211",
           "txty": "ShopDK", "txty6": "ShopDK"}
TO = {"mailersend": "+12015550123", "voximplant": "+447400123456"}


def env(provider: str, tmp_path: Path) -> dict[str, str]:
    if provider == "voximplant":
        return PROVIDERS[provider].emulator_module().rehearsal(tmp_path)[1]
    return {name: "secret-value" for name in PROVIDERS[provider].rules.credentials}


def answer(case: dict[str, Any]) -> httpx.MockTransport:
    def reply(request: httpx.Request) -> httpx.Response:
        if case.get("closed"):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(case["status"], headers=case["headers"],
                              content=case["body"].encode())
    return httpx.MockTransport(reply)


def replayed() -> list[tuple[str, dict[str, Any]]]:
    return [(provider, {**case, **case.get("overrides", {}).get(provider, {})})
            for provider in PROVIDERS for case in CASES.get(provider, []) + CASES["any"]]


@pytest.mark.parametrize(("provider", "case"), replayed(),
                         ids=[f"{p}: {c['name']}" for p, c in replayed()])
async def test_each_documented_answer_means_what_the_contract_says(provider, case, tmp_path):
    config = ProviderConfig(name=provider, sender=SENDERS[provider],
                            base_url="https://provider.example")
    async with over_httpx(transport=answer(case)) as http:
        client = PROVIDERS[provider].client_module().create(config, env(provider, tmp_path),
                                                            http)
        [result] = await client.send([Message(7, TO.get(provider, "+4512345678"), "hi")])
    assert result.outcome is Outcome(case["outcome"]), result
    if "message_id" in case:
        assert result.message_id == case["message_id"]
    if result.outcome is not Outcome.SENT:
        assert result.message_id is None or provider == "mailjet"
    if "stop" in case:
        assert (result.stop is not None) == case["stop"], result
    assert (result.unrecognised is not None) == case.get("unrecognised", False), result
    assert "secret-value" not in f"{result.error} {result.stop}"


def test_every_provider_has_documented_cases():
    assert set(PROVIDERS) <= set(CASES)
