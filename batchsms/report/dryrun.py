"""``check`` and ``dry-run`` as library calls: everything ``send`` would do but send."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchsms.plan.campaign import Campaign, load_campaign, report_dir
from batchsms.plan.planner import Planner
from batchsms.plan.totals import Totals
from batchsms.report.csvfile import DryRunCsv
from batchsms.report.html import write_report


@dataclass(frozen=True)
class DryRun:
    campaign: Campaign
    totals: Totals
    csv_path: Path | None  # None for ``check``, which writes nothing


def dry_run(campaign_path: str | Path, reports: Path | None = None,
            chunk_rows: int = 250_000, *, write: bool = True,
            now: float | None = None) -> DryRun:
    """Plan the campaign and total it; write ``<reports>/<name>/dry-run.csv`` and
    ``report.html`` unless ``write`` is false (``reports`` overrides the campaign's
    ``reports:`` folder). ``now`` (epoch seconds, default the clock) is the instant
    windows are predicted from. Raises CampaignError when the campaign
    cannot be used."""
    campaign = load_campaign(campaign_path)
    planner = Planner(campaign, chunk_rows=chunk_rows, now=now)
    totals = Totals(planner.prices, now=planner.now)
    if not write:
        for chunk in planner.chunks():
            totals.add(chunk.plan)
        return DryRun(campaign, totals, None)
    folder = report_dir(campaign, reports)
    path = folder / "dry-run.csv"
    with DryRunCsv(path, planner.prices, smart=campaign.send.encoding == "smart") as csv:
        for chunk in planner.chunks():
            totals.add(chunk.plan)
            csv.write(chunk.plan)
    write_report(folder / "report.html", campaign, totals)
    return DryRun(campaign, totals, path)


def check(campaign_path: str | Path) -> DryRun:
    """Validate the campaign, sheet and template without writing anything."""
    return dry_run(campaign_path, write=False)
