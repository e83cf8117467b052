"""Secrets never echoed: a credential variable holding the wrong kind of value is named, not
printed, and the emulator's request log redacts every credential field (the TXTY user too)."""

from __future__ import annotations

import pytest
from hostile import YAML, campaign

from batchsms.cli.commands import main
from batchsms.emulator.core import redact_params

KEY = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC-SECRET\n"
       "-----END PRIVATE KEY-----")


@pytest.mark.parametrize("value", [KEY, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-SECRET-one-line"])
def test_voximplant_credentials_holding_key_text_is_named_never_printed(tmp_path, capsys,
                                                                        monkeypatch, value):
    path = campaign(tmp_path)
    path.write_text(YAML.format(sheet="contacts.csv", template='text: "Hi"').replace(
        "  name: mailjet\n  sender: Shop\n  sandbox: true\n",
        '  name: voximplant\n  sender: "4520000000"\n  base_url: http://127.0.0.1:9\n'))
    monkeypatch.setenv("VOXIMPLANT_CREDENTIALS", value)
    code = main(["send", str(path), "--yes", "--reports", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 2
    assert "VOXIMPLANT_CREDENTIALS holds text that is not a path or JSON" in captured.err
    assert "SECRET" not in captured.err + captured.out


def test_a_credentials_path_that_does_not_exist_is_still_named_with_its_path(tmp_path, capsys,
                                                                             monkeypatch):
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace(
        "  name: mailjet\n  sender: Shop\n  sandbox: true\n",
        '  name: voximplant\n  sender: "4520000000"\n  base_url: http://127.0.0.1:9\n'))
    monkeypatch.setenv("VOXIMPLANT_CREDENTIALS", str(tmp_path / "missing.json"))
    assert main(["send", str(path), "--yes", "--reports", str(tmp_path / "r")]) == 2
    assert f"{tmp_path / 'missing.json'}: no such file" in capsys.readouterr().err


def test_the_emulator_log_redacts_every_credential_parameter():
    logged = redact_params("user=acme&key=k3y&USERNAME=u&password=p&apikey=a&msisdn=4520&"
                           "text=user%3Dme")
    assert logged == ("user=<redacted>&key=<redacted>&USERNAME=<redacted>&password=<redacted>&"
                      "apikey=<redacted>&msisdn=4520&text=user%3Dme")


@pytest.mark.parametrize("body", [b"[" * 10_000 + b"]" * 10_000,
                                  b'{"a":' * 10_000 + b"1" + b"}" * 10_000])
def test_a_provider_answer_nested_10000_deep_is_not_json_rather_than_a_crash(body):
    from batchsms.providers import wire

    assert wire.json_object(body) is None


def test_a_token_with_a_line_break_is_named_not_blamed_on_the_base_url(tmp_path, capsys,
                                                                       monkeypatch):
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace("  sandbox: true\n",
                                             "  base_url: http://127.0.0.1:9\n"))
    monkeypatch.setenv("MAILJET_SMS_TOKEN", "tok-SECRET\r\nX-Injected: 1")
    assert main(["send", str(path), "--yes", "--reports", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "MAILJET_SMS_TOKEN holds a line break or another control character" in err
    assert "SECRET" not in err and "base_url" not in err
