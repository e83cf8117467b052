"""``check`` and ``dry-run`` as library calls: everything ``send`` would do but send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from batchsms.plan.campaign import Campaign, load_campaign, report_dir
from batchsms.plan.planner import Planner
from batchsms.plan.totals import Totals
from batchsms.report.csvfile import DryRunCsv
from batchsms.report.html import write_report
from batchsms.send import preflight


@dataclass(frozen=True)
class DryRun:
    campaign: Campaign
    totals: Totals
    csv_path: Path | None  # None for ``check``, which writes nothing
    problems: tuple[str, ...] = ()  # what send would stop on (``check`` only)
    report_kept: bool = False  # report.html shows a send's outcomes and was left as it was


def dry_run(campaign_path: str | Path, reports: Path | None = None,
            chunk_rows: int = 250_000, *, write: bool = True,
            now: float | None = None) -> DryRun:
    """Plan the campaign and total it; write ``<reports>/<name>/dry-run.csv`` and
    ``report.html`` unless ``write`` is false (``reports`` overrides the campaign's
    ``reports:`` folder). ``now`` (epoch seconds, default the clock) is the instant
    windows are predicted from. Once the campaign was sent, report.html keeps the send's
    outcomes and is not replaced. Raises CampaignError when the campaign
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
    # After a send, report.html tells the send's story; a plan-only page would hide it.
    kept = (folder / "summary.json").is_file() and (folder / "report.html").is_file()
    if not kept:
        write_report(folder / "report.html", campaign, totals)
    return DryRun(campaign, totals, path, report_kept=kept)


def check(campaign_path: str | Path, environ: Mapping[str, str] | None = None) -> DryRun:
    """Validate the campaign, sheet and template without writing anything, and find what
    ``send`` would stop on before its first request (``problems``; see ``send.preflight``).

    Raises CampaignError when the campaign cannot even be planned.
    """
    planned = dry_run(campaign_path, write=False)
    found = preflight.problems(planned.campaign, planned.totals, environ)
    return replace(planned, problems=tuple(found))
