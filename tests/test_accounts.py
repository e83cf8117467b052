"""Accounts: which sends count, as fingerprints that never hold a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchsms.emulator.rehearsal import rehearsal_app
from batchsms.providers.registry import PROVIDERS
from batchsms.send.accounts import REAL, REHEARSAL, account_for, parse_key, sandbox_account


def test_batchsms_emulators_credentials_are_a_rehearsal_account_for_every_provider(tmp_path):
    _, env = rehearsal_app(tmp_path)
    for name, entry in PROVIDERS.items():
        credentials = {k: env[k] for k in entry.rules.credentials}
        assert account_for(name, credentials).kind == REHEARSAL, name


def test_a_fingerprint_never_holds_the_secret_and_tells_accounts_apart():
    one = account_for("mailjet", {"MAILJET_SMS_TOKEN": "tok-SECRET-1"})
    two = account_for("mailjet", {"MAILJET_SMS_TOKEN": "tok-SECRET-2"})
    assert one.kind == two.kind == REAL
    assert one.fingerprint != two.fingerprint and len(one.fingerprint) == 16
    assert "SECRET" not in one.key and "SECRET" not in one.describe()
    assert parse_key(one.key) == one
    assert account_for("mailersend", {"MAILERSEND_API_KEY": "tok-SECRET-1"}) != one


@pytest.mark.parametrize(("provider", "before", "after"), [
    ("txty", {"TXTY_USER": "shop", "TXTY_KEY": "old"}, {"TXTY_USER": "shop", "TXTY_KEY": "new"}),
    ("txty6", {"TXTY_USERNAME": "shop", "TXTY_TOKEN": "a"},
     {"TXTY_USERNAME": "shop", "TXTY_TOKEN": "b"}),
])
def test_a_new_key_for_the_same_user_is_the_same_account(provider, before, after):
    assert account_for(provider, before) == account_for(provider, after)


def test_voximplant_is_identified_by_its_account_id_from_a_path_or_the_json(tmp_path: Path):
    data = {"account_id": 42, "key_id": "k1", "private_key": "-----BEGIN PRIVATE KEY-----x"}
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    by_path = account_for("voximplant", {"VOXIMPLANT_CREDENTIALS": str(path)})
    by_json = account_for("voximplant", {"VOXIMPLANT_CREDENTIALS": json.dumps(data)})
    assert by_path == by_json and by_path.kind == REAL
    assert "PRIVATE" not in by_path.key


def test_the_sandbox_never_counts():
    assert not sandbox_account("mailjet").counts
    assert account_for("mailjet", {"MAILJET_SMS_TOKEN": "live"}).counts
