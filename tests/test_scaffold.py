from __future__ import annotations

import pytest

from batchsms.errors import CampaignError
from batchsms.plan.campaign import load_campaign
from batchsms.report.dryrun import dry_run
from batchsms.scaffold import init_campaign


def test_init_creates_a_campaign_that_check_and_dry_run_accept(tmp_path):
    path = init_campaign("autumn", tmp_path)
    assert path == tmp_path / "autumn" / "autumn.yaml"
    campaign = load_campaign(path)
    assert campaign.provider.sandbox is True
    result = dry_run(path, reports=tmp_path / "reports")
    assert result.totals.sendable == 4 and result.totals.skipped == 0
    assert set(result.totals.by_encoding) == {"GSM-7", "UCS-2"}  # Zoë


def test_every_key_is_in_the_scaffold(tmp_path):
    text = init_campaign("keys", tmp_path).read_text(encoding="utf-8")
    for key in ("sheet:", "country_column:", "delimiter:", "encoding:", "base_url:", "timeout:",
                "env:", "env_file:", "rate:", "concurrency:", "max_segments:", "budget:",
                "suppression:", "chunk_size:"):
        assert key in text, key


def test_init_refuses_existing_folder_and_bad_names(tmp_path):
    init_campaign("once", tmp_path)
    with pytest.raises(CampaignError, match="already exists"):
        init_campaign("once", tmp_path)
    with pytest.raises(CampaignError, match="cannot name a campaign"):
        init_campaign("bad name!", tmp_path)
