"""Every provider's emulator misbehaving as real providers do, against `batchsms send` over HTTP.

The campaign runs as a user runs it (the CLI in its own process) against the emulators
served on a loopback port; the emulator's records are the truth about what was sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchsms.emulator.core import Script, ScriptedOutcome
from batchsms.emulator.rehearsal import base_urls, rehearsal_app
from batchsms.emulator.server import serve_in_thread
from batchsms.providers.registry import PROVIDERS

SENDERS = {"mailjet": "ShopDK", "mailersend": "+12015550100", "voximplant": "447443332211",
           "txty": "ShopDK", "txty6": "ShopDK"}
NUMBERS = {"mailersend": "+1201555{:04d}", "voximplant": "+4474001{:05d}"}
ACCOUNT_ERRORS = {"mailjet": "sms-0099", "mailersend": "text", "voximplant": 999,
                  "txty": "INVALID_KEY", "txty6": "INVALID_KEY"}
ROWS = 6


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict, dict]]:
    app, env = rehearsal_app(tmp_path_factory.mktemp("emulators"))
    with serve_in_thread(app) as root:
        yield root, env, app.state.emulators


def numbers(provider: str) -> list[str]:
    pattern = NUMBERS.get(provider, "+452012{:04d}")
    return [pattern.format(1000 + i) for i in range(ROWS)]


def campaign(folder: Path, provider: str, base_url: str) -> Path:
    (folder / "c.csv").write_text("phone\n" + "\n".join(numbers(provider)) + "\n",
                                  encoding="utf-8")
    path = folder / "c.yaml"
    path.write_text(f"name: c\ncontacts: {{path: c.csv}}\ntemplate: {{text: 'Hi there'}}\n"
                    f"provider: {{name: {provider}, sender: '{SENDERS[provider]}', "
                    f"base_url: '{base_url}'}}\n"
                    "pricing: {currency: EUR, default: 0.05}\nsend: {concurrency: 2}\n",
                    encoding="utf-8")
    return path


def send(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchsms", "send", str(path), "--yes",
                           "--reports", str(path.parent / "reports")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


@pytest.mark.parametrize("provider", list(SENDERS))
def test_an_unknown_account_error_leaves_everyone_pending_for_the_next_run(
        served, tmp_path: Path, provider: str) -> None:
    root, env, emulators = served
    state = emulators[provider]
    state.reset()
    state.accounts.update(rehearsal_accounts(provider, tmp_path))
    path = campaign(tmp_path, provider, base_urls(root)[provider])
    state.config["account_error"] = ACCOUNT_ERRORS[provider]

    first = send(path, env)

    assert first.returncode == 2, first.stderr[-2000:]
    assert "an error batchsms does not know" in first.stderr
    assert str(ACCOUNT_ERRORS[provider]) in first.stderr
    assert state.records == []
    state.config["account_error"] = None

    second = send(path, env)

    assert second.returncode == 0, second.stderr[-2000:]
    sent = Counter(r.to.lstrip("+") for r in state.records)
    assert sent == Counter(n.lstrip("+") for n in numbers(provider))  # each once


def rehearsal_accounts(provider: str, folder: Path) -> dict:
    """The accounts the rehearsal seeds for ``provider`` (a reset forgets them)."""
    app, _ = PROVIDERS[provider].emulator_module().rehearsal(folder)
    return app.state.emulator.accounts


def test_voximplant_515_after_processing_is_looked_up_never_resent(
        served, tmp_path: Path) -> None:
    root, env, emulators = served
    state = emulators["voximplant"]
    state.reset()
    state.accounts.update(rehearsal_accounts("voximplant", tmp_path))
    path = campaign(tmp_path, "voximplant", base_urls(root)["voximplant"])
    twice = numbers("voximplant")[2].lstrip("+")
    state.scripts[twice] = Script(ScriptedOutcome.ACCEPT_THEN_REJECT, "515")

    done = send(path, env)

    assert done.returncode == 0, done.stderr[-2000:]
    sent = Counter(r.to for r in state.records)
    assert sent[twice] == 1 and len(sent) == ROWS and set(sent.values()) == {1}
