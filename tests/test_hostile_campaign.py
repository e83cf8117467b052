"""Hostile campaign files: devices, alias bombs, deep nesting, NaN prices, a zero rate, a
template that is the sheet. Each must end at once with exit 2 and a message naming the file
and the line or key, and send nothing."""

from __future__ import annotations

import pytest
from hostile import campaign, run_capped

from batchsms.cli.commands import main
from batchsms.errors import CampaignError
from batchsms.plan.campaign import load_campaign


def errors_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_the_campaign_file_is_refused_at_once(device):
    done = run_capped("check", device, timeout=30)
    assert done.code == 2
    assert f"{device}: the campaign file is not a regular file" in done.err


def test_a_billion_laughs_alias_bomb_is_refused_before_it_expands(tmp_path):
    path = campaign(tmp_path)
    path.write_text(path.read_text() + BOMB)
    done = run_capped("check", path, timeout=30)
    assert done.code == 2
    assert f"{path}: line " in done.err
    assert "more than 10,000 values once its aliases (*name) are expanded" in done.err
    assert "BATCHSMS_MAX_YAML_NODES" in done.err


def test_yaml_nested_5000_deep_is_refused_with_its_line(tmp_path):
    path = campaign(tmp_path)
    path.write_text(path.read_text() + "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    done = run_capped("check", path, timeout=30)
    assert done.code == 2
    assert f"{path}: line 14: the YAML is nested more than 20 levels deep" in done.err


def test_a_few_aliases_are_still_fine(tmp_path):
    path = campaign(tmp_path, extra="send:\n  rate: &r 5/s\n")
    assert load_campaign(path).send.rate == "5/s"


def test_a_huge_campaign_file_is_refused_with_the_limit(tmp_path, capsys):
    path = campaign(tmp_path)
    path.write_text(path.read_text() + "#" * (2 << 20) + "\n")
    code, err = errors_of(["check", str(path)], capsys)
    assert code == 2
    assert f"{path}: the campaign file is larger than 1,048,576 bytes" in err
    assert "BATCHSMS_MAX_CAMPAIGN_BYTES" in err


def test_a_folder_or_binary_file_as_the_campaign(tmp_path, capsys):
    code, err = errors_of(["check", str(tmp_path)], capsys)
    assert code == 2 and "this is a folder, not a campaign file" in err
    binary = tmp_path / "c.yaml"
    binary.write_bytes(b"name: x\x00\x01\x02")
    code, err = errors_of(["check", str(binary)], capsys)
    assert code == 2 and f"{binary}: this is a binary file" in err


@pytest.mark.parametrize("price", [".nan", ".inf", "-.inf", "'NaN'", "Infinity", ".NaN"])
def test_nan_and_infinite_prices_name_the_key(tmp_path, capsys, price):
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace("default: 0.05", f"default: {price}"))
    code, err = errors_of(["check", str(path)], capsys)
    assert code == 2
    assert f"{path}: line 13: pricing.default: Input should be a finite number" in err


def test_a_yaml_1_1_base_60_price_is_read_not_crashed_on(tmp_path):
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace("default: 0.05", "default: 1:30.5"))
    assert load_campaign(path).pricing.default == 90.5  # 1 * 60 + 30.5, as YAML 1.1 reads it


@pytest.mark.parametrize("rate", ["0/s", "0/min", "00/h"])
def test_a_zero_rate_is_refused_by_check(tmp_path, capsys, rate):
    path = campaign(tmp_path, extra=f"send:\n  rate: {rate}\n")
    code, err = errors_of(["check", str(path)], capsys)
    assert code == 2
    assert "send.rate: the rate must be more than 0" in err


def test_the_template_cannot_be_the_contact_sheet(tmp_path, capsys):
    path = campaign(tmp_path, template="path: contacts.csv")
    code, err = errors_of(["dry-run", str(path), "--reports", str(tmp_path / "r")], capsys)
    assert code == 2
    assert f"{path}: template.path: the template {tmp_path / 'contacts.csv'} is the same " \
           "file as contacts.path" in err
    assert not (tmp_path / "r").exists()


def test_the_template_cannot_be_a_suppression_file(tmp_path):
    (tmp_path / "stop.csv").write_text("phone\n+4520123456\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "stop.csv")
    path = campaign(tmp_path, template="path: link.csv", extra="suppression: stop.csv\n")
    with pytest.raises(CampaignError, match=r"template.path: .* same file as suppression\[0\]"):
        load_campaign(path)


def test_a_device_as_contacts_or_template_is_not_read(tmp_path, capsys):
    path = campaign(tmp_path, template="path: /dev/zero")
    code, err = errors_of(["check", str(path)], capsys)
    assert code == 2
    assert "template.path: /dev/zero is not a regular file" in err


def test_a_binary_env_file_is_named_without_its_content(tmp_path, capsys):
    (tmp_path / "secrets.env").write_bytes(b"MJ_TOKEN=\xff\xfe\x00SECRETVALUE\n")
    path = campaign(tmp_path)
    path.write_text(path.read_text().replace("  sandbox: true\n",
                                             "  sandbox: true\n  env_file: secrets.env\n"))
    code, err = errors_of(["check", str(path)], capsys)
    assert code == 2
    assert "provider.env_file:" in err and "is not a text file of KEY=VALUE lines" in err
    assert "SECRETVALUE" not in err


def test_a_bad_limit_variable_is_a_clear_error(tmp_path):
    path = campaign(tmp_path)
    done = run_capped("check", path, env={"BATCHSMS_MAX_YAML_DEPTH": "lots"}, timeout=30)
    assert done.code == 2
    assert "BATCHSMS_MAX_YAML_DEPTH='lots' is not a positive number" in done.err
