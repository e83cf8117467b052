"""A campaign reaches its provider: the sandbox in process, or emulators served on a port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import free_port, serve_in_thread
from batchsms.errors import CampaignError
from batchsms.plan.campaign import parse_campaign
from batchsms.providers.base import Message, Outcome
from batchsms.providers.connect import connect
from batchsms.providers.registry import PROVIDERS

SENDERS = {"mailjet": "ShopDK", "mailersend": "+12015550100", "voximplant": "447443332211",
           "txty": "ShopDK", "txty6": "ShopDK"}
TO = {"mailjet": "+4520123456", "mailersend": "+12015550123", "voximplant": "+447400123456",
      "txty": "+4520123456", "txty6": "+4520123456"}
NO_LOOKUP = {"txty6"}  # TXTY v6 documents no status lookup


def test_every_registered_provider_is_covered_here():
    assert set(SENDERS) == set(PROVIDERS)


def campaign(provider: str, extra: str = "", sandbox: bool = True):
    text = (f"name: c\ncontacts: {{path: c.csv}}\ntemplate: {{text: hi}}\n"
            f"provider:\n  name: {provider}\n  sender: '{SENDERS[provider]}'\n"
            f"  sandbox: {str(sandbox).lower()}\n{extra}"
            "pricing: {currency: EUR, default: 0.05}\n")
    return parse_campaign(text, Path("c.yaml"))


@pytest.mark.anyio
@pytest.mark.parametrize("provider", list(SENDERS))
async def test_sandbox_campaign_reaches_its_emulator(provider):
    message = Message(key=2, to=TO[provider], text="Hi Zoë, spring sale {{ not a var }} €5!")
    async with connect(campaign(provider).provider, environ={}) as connection:
        [result] = await connection.provider.send([message])
        assert connection.emulator is not None
        records = connection.emulator.records
    assert result.outcome is Outcome.SENT, result
    assert result.message_id
    assert [(r.to.lstrip("+"), r.text) for r in records] == [(TO[provider][1:], message.text)]


@pytest.mark.anyio
@pytest.mark.parametrize(("provider", "variable"), [
    ("mailjet", "MAILJET_SMS_TOKEN"), ("mailersend", "MAILERSEND_API_KEY"),
    ("voximplant", "VOXIMPLANT_CREDENTIALS"), ("txty", "TXTY_USER"),
    ("txty6", "TXTY_USERNAME")])
async def test_missing_credentials_name_the_variable(provider, variable):
    with pytest.raises(CampaignError, match=f"needs the environment variable {variable}"):
        async with connect(campaign(provider, sandbox=False).provider, environ={}):
            pass


@pytest.mark.anyio
async def test_renamed_variable_and_env_file(tmp_path):
    (tmp_path / "secrets.env").write_text("export ACME_TOKEN='from-file'\n", encoding="utf-8")
    extra = f"  env: {{MAILJET_SMS_TOKEN: ACME_TOKEN}}\n  env_file: {tmp_path / 'secrets.env'}\n"
    config = campaign("mailjet", extra, sandbox=False).provider
    with pytest.raises(CampaignError, match="needs the environment variable ACME_TOKEN"):
        async with connect(config.model_copy(update={"env_file": None}), environ={}):
            pass
    async with connect(config, environ={}) as connection:
        assert connection.provider is not None


@pytest.mark.anyio
async def test_rehearsal_app_serves_every_provider_over_http(tmp_path):
    app, env = rehearsal_app(tmp_path)
    with serve_in_thread(app) as root:
        urls = base_urls(root)
        for provider in SENDERS:
            extra = f"  base_url: {urls[provider]}\n"
            config = campaign(provider, extra, sandbox=False).provider
            since = datetime.now(UTC) - timedelta(seconds=5)
            async with connect(config, environ=env) as connection:
                [result] = await connection.provider.send([Message(3, TO[provider], "Hello")])
                assert result.outcome is Outcome.SENT, (provider, result)
                found = await connection.provider.lookup(Message(3, TO[provider], "Hello"),
                                                         None, since)
                expected = Outcome.UNKNOWN if provider in NO_LOOKUP else Outcome.SENT
                assert found.outcome is expected, (provider, found)
            assert len(app.state.emulators[provider].records) == 1


def test_batchsms_emulator_command_serves_on_a_port(tmp_path):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "batchsms", "emulator", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/mailjet/v4/sms-send",
                                      json={"From": "ShopDK", "To": "+4520123456", "Text": "x"})
                break
            except httpx.ConnectError:
                time.sleep(0.2)
        else:
            pytest.fail("batchsms emulator did not start")
        assert response.status_code == 401  # no token: Mailjet's own answer
        assert response.json()["ErrorCode"] == "mj-0015"
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert f"mailjet     provider.base_url: http://127.0.0.1:{port}/mailjet" in out
    assert "export MAILJET_SMS_TOKEN=rehearsal-token" in out
