"""``init``: a working campaign to start from, every key explained."""

from __future__ import annotations

import re
from pathlib import Path

from batchsms.errors import CampaignError
from batchsms.plan.campaign import NAME_PATTERN
from batchsms.providers.registry import PROVIDERS

CAMPAIGN = """\
# {name}: a batchsms campaign. Every key is explained; the commented ones are optional.
# Try it:  batchsms check {folder}/{name}.yaml
#          batchsms preview {folder}/{name}.yaml
#          batchsms dry-run {folder}/{name}.yaml     (then open {folder}/reports/{name}/report.html)
#          batchsms send {folder}/{name}.yaml        (sandbox: nothing leaves this machine)
name: {name}                       # letters, digits, '-' and '_'; names the report folder

contacts:
  path: contacts.csv               # CSV or XLSX, relative to this file
  phone_column: phone              # the column with the phone numbers
  default_region: DK               # country of numbers written without +country code
  # sheet: Contacts                # XLSX only: which worksheet (default: the first)
  # country_column: country        # a column with each row's ISO country code
  # delimiter: ";"                 # CSV only: force the separator (default: detected)
  # encoding: cp1252               # CSV only: force the encoding (default: detected)
  # timezone_column: tz            # an IANA zone per row (Europe/Paris); overrides the number
  # send_at_column: remind_at      # each row's earliest send time (2026-12-01 09:00, local)

template:
  path: message.txt                # Jinja with << var >>; variables are the sheet's columns
  # text: "Hi << first_name >>!"   # or the text right here (exactly one of path / text)

provider:
  name: mailjet                    # {providers}
  sender: MyShop                   # Mailjet: 3-11 letters or digits
  sandbox: true                    # true: the built-in emulator; set false to send for real
  # base_url: http://127.0.0.1:8025/mailjet   # another address (e.g. `batchsms emulator`)
  # timeout: 30                    # seconds per request
  # env: {{MAILJET_SMS_TOKEN: MY_TOKEN_VARIABLE}}   # read the token from another variable
  # env_file: secrets.env          # KEY=VALUE lines; keep it out of version control

pricing:
  currency: EUR
  default: 0.05                    # per segment, for countries not listed below
  countries: {{DK: 0.04, SE: 0.05, GB: 0.045}}

send:
  chunk_size: 50                   # 1..50 recipients per chunk
  # rate: 10/s                     # requests per second/minute/hour (default: the provider's)
  # concurrency: 8                 # requests in flight at once
  # max_segments: 3                # skip rows whose text needs more segments
  # encoding: smart                # replace look-alike characters to stay in GSM-7
  # budget: 10.00                  # send refuses when the estimate is higher
  # not_before: 2026-12-01T09:00:00+01:00   # nothing goes out before this instant
  # window:                        # when recipients may get a text, in their own local time
  #   hours: "09:00-20:00"         # a number with several zones: must hold in every one
  #   days: [mon, tue, wed, thu, fri, sat]
  #   skip_holidays: true          # public holidays of the number's country
  # max_late: 6h                   # skip a row that would go out 6 h after its send time
  # opt_out: "STOP to 1234"        # appended to every text on its own line, and counted

# suppression: [optouts.csv]       # numbers never to message
"""

CONTACTS = """\
phone,first_name,city
+45 20 12 34 56,Søren,København
+46 70 123 45 67,Åsa,Stockholm
+44 7400 123456,Oliver,London
20 99 88 77,Zoë,Aarhus
"""

MESSAGE = ("Hi << first_name >>! Our << city >> shop has new arrivals this week. "
           "Reply STOP to opt out.\n")


def init_campaign(name: str, parent: Path = Path(".")) -> Path:
    """Create ``parent/name/`` with a campaign, a sheet and a template; return the YAML path."""
    if not re.match(NAME_PATTERN, name):
        raise CampaignError(f"{name!r} cannot name a campaign: use letters, digits, '-' and '_'")
    folder = parent / name
    if folder.exists():
        raise CampaignError(f"{folder} already exists: choose another name or remove it")
    folder.mkdir(parents=True)
    campaign = folder / f"{name}.yaml"
    campaign.write_text(CAMPAIGN.format(name=name, folder=folder.as_posix(),
                                         providers=" | ".join(PROVIDERS)), encoding="utf-8")
    (folder / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    (folder / "message.txt").write_text(MESSAGE, encoding="utf-8")
    return campaign
