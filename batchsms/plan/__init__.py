"""The plan stage: campaign file → contacts → phones → render → segments → pricing → plan.

Nothing here sends, journals or writes reports; everything downstream reads the plan.
"""

from pathlib import Path

# Here rather than in campaign.py so that the CLI can show it in --help without importing
# pydantic, yaml and phonenumbers.
DEFAULT_REPORTS = Path("reports")
