from decimal import Decimal
from pathlib import Path

import pytest

from batchsms.errors import CampaignError
from batchsms.plan.campaign import load_campaign, parse_campaign
from batchsms.providers.rules import Rate

GOOD = """\
name: spring
contacts:
  path: contacts.csv
  default_region: dk
template:
  text: "Hi << name >>"
provider:
  name: mailjet
  sender: MJPilot
pricing:
  currency: EUR
  default: 0.05
  countries: {DK: 0.04, fr: 0.0079}
"""


def problems(text: str, source: str = "c/camp.yaml") -> str:
    with pytest.raises(CampaignError) as caught:
        parse_campaign(text, Path(source))
    return str(caught.value)


def test_good_campaign_is_typed_and_paths_are_relative_to_the_yaml():
    campaign = parse_campaign(GOOD, Path("some/dir/camp.yaml"))
    assert campaign.contacts.path == Path("some/dir/contacts.csv")
    assert campaign.contacts.default_region == "DK"
    assert campaign.pricing.countries == {"DK": Decimal("0.04"), "FR": Decimal("0.0079")}
    assert campaign.send.chunk_size == 50
    assert campaign.send.encoding == "auto"


def test_prices_are_exact_decimals_not_floats():
    campaign = parse_campaign(GOOD.replace("0.05", "0.100001"), Path("c.yaml"))
    assert campaign.pricing.default == Decimal("0.100001")


@pytest.mark.parametrize("price, why", [
    ("5e16", "must be 1000 or less (got 5e16)"), ("1e20", "must be 1000 or less (got 1e20)"),
    ("1e-30", "may have at most 6 decimal places"), (".nan", "finite"), (".inf", "finite"),
    ("-0.05", "must be 0 or more (got -0.05)")])
def test_prices_out_of_a_sane_range_are_refused_with_the_key(price, why):
    message = problems(GOOD.replace("0.05", price))
    assert "pricing.default" in message and why in message


def test_unknown_key_names_file_line_key_and_suggests():
    text = GOOD.replace("  default_region: dk\n", "  default_region: dk\n  phone_colum: x\n")
    message = problems(text)
    assert "c/camp.yaml: line 5: contacts.phone_colum: unknown key 'phone_colum'" in message
    assert "did you mean 'phone_column'?" in message


def test_unknown_top_level_key():
    message = problems(GOOD + "sned:\n  rate: 1/s\n")
    assert "sned" in message and "did you mean 'send'?" in message


def test_every_problem_is_listed_at_once():
    text = GOOD.replace("MJPilot", "MJ").replace("currency: EUR", "currency: euro")
    with pytest.raises(CampaignError) as caught:
        parse_campaign(text, Path("c.yaml"))
    keys = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 2
    assert "provider.sender" in keys and "pricing.currency" in keys


@pytest.mark.parametrize(
    ("provider", "sender", "fragment"),
    [
        ("mailjet", "MJ", "3 to 11 letters or digits"),
        ("mailjet", "TwelveChars1", "3 to 11 letters or digits"),
        ("mailjet", "MJ Pilot", "3 to 11 letters or digits"),
        ("mailersend", "19191234567", "E.164"),
        ("voximplant", "Shop", "a phone number bought from Voximplant"),
        ("txty", "Shop-DK", "letters and digits only"),
        ("txty", "ABCDEFGHIJKL", "at most 11 characters"),
        ("txty", "1234567890123456", "15 digits"),
    ],
)
def test_bad_sender_is_a_campaign_error_naming_the_rule(provider, sender, fragment):
    text = GOOD.replace("name: mailjet", f"name: {provider}").replace("MJPilot", f"'{sender}'")
    message = problems(text)
    assert "line 9: provider.sender" in message
    assert fragment in message
    assert repr(sender) in message


@pytest.mark.parametrize(
    ("provider", "sender"),
    [("mailjet", "MJPilot"), ("mailersend", "+19191234567"), ("voximplant", "447443332211"),
     ("txty", "ShopDK"), ("txty", "123456789012345")],
)
def test_good_senders_pass(provider, sender):
    text = GOOD.replace("name: mailjet", f"name: {provider}").replace("MJPilot", f"'{sender}'")
    assert parse_campaign(text, Path("c.yaml")).provider.sender == sender


def test_bad_yaml_names_line_and_column():
    message = problems("name: [spring\ncontacts: {\n")
    assert message.startswith("c/camp.yaml: line ")
    assert "not valid YAML" in message


def test_duplicate_keys_are_errors():
    message = problems(GOOD + "name: other\n")
    assert "name: this key is given twice" in message


def test_not_a_mapping():
    assert "must be a YAML mapping" in problems("- a\n- b\n")


def test_missing_required_key():
    message = problems(GOOD.replace("name: spring\n", ""))
    assert "name: this key is required" in message


def test_template_needs_exactly_one_of_path_and_text():
    message = problems(GOOD.replace('  text: "Hi << name >>"\n', "  path: null\n"))
    assert "exactly one of template.path and template.text" in message


def test_bad_region_and_rate_and_chunk_size():
    text = (GOOD.replace("default_region: dk", "default_region: Denmark")
            + "send:\n  rate: fast\n  chunk_size: 51\n")
    message = problems(text)
    assert "'Denmark' is not an ISO 3166 country code" in message
    assert "'fast' is not a rate" in message
    assert "send.chunk_size" in message


def test_rate_parses():
    campaign = parse_campaign(GOOD + "send:\n  rate: 60/min\n", Path("c.yaml"))
    assert campaign.send.parsed_rate == Rate(60, 60.0)


def test_provider_option_of_another_provider_is_rejected():
    text = GOOD.replace("sender: MJPilot", "sender: MJPilot\n  flash: true")
    assert "flash is an option of the txty and txty6 providers only" in problems(text)


def test_load_campaign_reports_missing_files_with_their_keys(tmp_path):
    path = tmp_path / "camp.yaml"
    path.write_text(GOOD + "suppression: optouts.csv\n", encoding="utf-8")
    with pytest.raises(CampaignError) as caught:
        load_campaign(path)
    message = str(caught.value)
    assert f"{path}: contacts.path: file not found: {tmp_path / 'contacts.csv'}" in message
    assert "suppression[0]: file not found" in message


def test_load_campaign_missing_file():
    with pytest.raises(CampaignError, match="no such campaign file"):
        load_campaign("does/not/exist.yaml")


def test_rate_over_a_documented_limit_is_refused_against_the_real_api():
    text = (GOOD.replace("name: mailjet", "name: mailersend").replace("MJPilot", "'+12015550100'")
            + "send:\n  rate: 5/s\n")
    assert "send.rate 5/s is faster than MailerSend allows (60/min)" in problems(text)
    sandboxed = text.replace("  sender: '+12015550100'", "  sender: '+12015550100'\n"
                             "  sandbox: true")
    assert parse_campaign(sandboxed, Path("c.yaml")).send.rate == "5/s"
