"""Credentials files (provider.env_file) read as python-dotenv reads them."""

from __future__ import annotations

import pytest

from batchsms.errors import CampaignError
from batchsms.providers.credentials import read_env_file


def test_export_quotes_comments_and_escapes(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text('# the shop\nexport MAILJET_SMS_TOKEN="tok en"  # live\n'
                    "TXTY_USER='shop'\nTXTY_KEY=k\\\\ey\nEMPTY=\n", encoding="utf-8")
    assert read_env_file(path) == {"MAILJET_SMS_TOKEN": "tok en", "TXTY_USER": "shop",
                                   "TXTY_KEY": "k\\\\ey", "EMPTY": ""}


def test_a_line_that_is_not_key_value_is_named_but_never_shown(tmp_path):
    path = tmp_path / "secrets.env"
    path.write_text("A=1\nsk_live_SECRETVALUE\n", encoding="utf-8")
    with pytest.raises(CampaignError) as error:
        read_env_file(path)
    assert "line 2: expected KEY=VALUE" in str(error.value)
    assert "SECRET" not in str(error.value)
