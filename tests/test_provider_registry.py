"""The provider registry as data, and what it promises about imports."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from batchsms.providers.registry import PROVIDERS


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_entry_names_a_client_and_an_emulator_with_the_contract(name: str) -> None:
    entry = PROVIDERS[name]
    assert entry.rules.name == name and entry.rules.credentials
    client = entry.client_module()
    assert list(inspect.signature(client.create).parameters) == ["config", "env", "http"]
    emulator = entry.emulator_module()
    for function in ("create_app", "sandbox", "rehearsal", "make_account"):
        assert callable(getattr(emulator, function)), (name, function)
    with pytest.raises(ValidationError):
        entry.options.model_validate({"no_such_option": True})


def test_options_belong_to_their_providers_only() -> None:
    owners = {option: sorted(n for n, e in PROVIDERS.items() if option in e.options.model_fields)
              for e in PROVIDERS.values() for option in e.options.model_fields}
    assert owners == {"store_body": ["voximplant"], "flash": ["txty", "txty6"]}


def _imported(code: str, cwd: Path) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_a_client_imports_neither_the_campaign_nor_an_emulator(name: str, tmp_path) -> None:
    modules = _imported(f"import {PROVIDERS[name].client}", tmp_path)
    assert PROVIDERS[name].client in modules
    assert not {m for m in modules if m.startswith(("batchsms.plan", "batchsms.emulator"))}


def test_the_emulators_do_not_import_the_segment_count_they_referee(tmp_path) -> None:
    modules = _imported("import " + ", ".join(e.emulator for e in PROVIDERS.values()), tmp_path)
    assert "batchsms.emulator.segments" in modules
    assert "batchsms.plan.segments" not in modules and "batchsms.plan.charsets" not in modules


@pytest.mark.parametrize("command", ["dry-run", "send"])
def test_a_real_dry_run_or_send_never_imports_an_emulator(command: str, tmp_path) -> None:
    (tmp_path / "c.csv").write_text("phone\n+4520123456\n", encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "name: c\ncontacts: {path: c.csv}\ntemplate: {text: hi}\n"
        "provider: {name: mailjet, sender: ShopDK, base_url: 'http://127.0.0.1:9'}\n"
        "pricing: {currency: EUR, default: 0.05}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "batchsms", command, "c.yaml", "--reports",
         str(tmp_path / "reports"), *(["--yes"] if command == "send" else [])],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"MAILJET_SMS_TOKEN": "x", "PATH": "/usr/bin:/bin",
             "BATCHSMS_STATE_DIR": os.environ["BATCHSMS_STATE_DIR"]})  # the test's registry
    imported = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert any("batchsms.providers" in line for line in imported), done.stderr[-2000:]
    assert not [line for line in imported if "batchsms.emulator" in line]
    if command == "send":  # nothing listens on port 9: the run stops and names it
        assert done.returncode == 2
        assert "cannot connect to 127.0.0.1:9 (connection refused)" in done.stderr
