from __future__ import annotations

import pytest

from batchsms.errors import CampaignError
from batchsms.plan.preview import preview

YAML = """\
name: preview-test
contacts: {path: contacts.csv, default_region: DK}
template: {path: template.txt}
provider: {name: mailjet, sender: Shop, sandbox: true}
pricing: {currency: EUR, default: 0.05}
"""
TEMPLATE = "Hi << name >>! << note >>"
SHEET = """\
phone,name,note
+45 20 12 34 51,Anna,short
+45 20 12 34 52,Bo,short
+45 20 12 34 53,Cy,short
+45 20 12 34 54,Dan,{long}
+45 20 12 34 55,Zoë 😀,short
junk,Eve,short
"""


@pytest.fixture
def campaign(campaign_dir):
    return campaign_dir(yaml=YAML, template=TEMPLATE, sheet=SHEET.format(long="x" * 200))


def test_default_choice_first_rows_longest_and_one_per_encoding(campaign):
    _, rows = preview(campaign)
    why = {r.row: r.why for r in rows}
    assert list(why) == [2, 3, 4, 5, 6]
    assert why[2] == "one of the first rows, the first GSM-7 row"
    assert why[5] == "the longest text"
    assert why[6] == "the first UCS-2 row"
    ucs2 = next(r for r in rows if r.row == 6)
    assert ucs2.encoding == "UCS-2" and ucs2.non_gsm == ("ë", "😀")
    longest = next(r for r in rows if r.row == 5)
    assert longest.segments == 2 and longest.cost == "0.10"


def test_chosen_rows_in_the_order_asked_including_skipped(campaign):
    _, rows = preview(campaign, [7, 2])
    assert [r.row for r in rows] == [7, 2]
    assert rows[0].status == "skipped" and rows[0].reason == "not a phone number"
    assert rows[1].text == "Hi Anna! short"


def test_a_row_that_is_not_in_the_sheet(campaign):
    with pytest.raises(CampaignError, match=r"no contact at row 99 \(the header is row 1\)"):
        preview(campaign, [99])
