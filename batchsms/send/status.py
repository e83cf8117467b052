"""``status`` as a library call: what the journal says, read-only and quick to start.

It imports no pandas, no provider client and no planner unless the campaign has a
window (then the plan says who waits), so ``batchsms status`` answers at once, also
while a send is running and in a folder you may only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from batchsms.errors import BatchsmsError, CampaignError
from batchsms.plan.campaign import Campaign, load_campaign, report_dir
from batchsms.send.accounts import parse_key
from batchsms.send.journal import MESSAGED, PENDING, SENDING, Journal, OlderJournal
from batchsms.send.lock import CampaignLock, Owner
from batchsms.send.registry import Registry

if TYPE_CHECKING:
    from batchsms.plan.schedule import Waiting

JOURNAL = "journal.sqlite"


@dataclass(frozen=True)
class CampaignStatus:
    campaign: Campaign
    counts: dict[str, int]
    costs: dict[str, Decimal]  # estimated cost of messages that went out or may have
    runs: list[tuple[int, float, float | None, str | None]]
    journal_path: Path
    planned: bool = True  # False when only test sends were made
    tests: int = 0
    account: str | None = None
    rehearsed: int = 0
    running: Owner | None = None  # the run sending right now, if any
    waiting: Waiting | None = None  # pending recipients whose window is shut now

    @property
    def cost_so_far(self) -> Decimal:
        return sum(self.costs.values(), Decimal(0))

    @property
    def currency(self) -> str:
        return " / ".join(self.costs) or self.campaign.pricing.currency

    @property
    def complete(self) -> bool:
        return self.planned and self.counts[PENDING] == 0 and self.counts[SENDING] == 0


def campaign_status(campaign_path: str | Path, reports: Path | None = None,
                    now: float | None = None) -> CampaignStatus:
    """What the journal says, read-only (it works while a send is running).

    A campaign with a window (or send times) is planned again to tell which pending
    recipients wait for their window at ``now``. Raises CampaignError when the campaign
    was never sent.
    """
    campaign = load_campaign(campaign_path)
    path = report_dir(campaign, reports) / JOURNAL
    if not path.exists():
        raise CampaignError(f"{campaign.source}: this campaign has not been sent yet (no journal "
                            f"at {path}){_elsewhere(campaign.name)}. Run batchsms dry-run, then "
                            "batchsms send")
    lock = CampaignLock(path, "status")
    running = lock.holder() if lock.is_held() else None
    journal = _open_for_status(path, campaign)
    try:
        journal.check_campaign(campaign.name)
        account = journal.get("account")
        return CampaignStatus(
            campaign, journal.counts(), journal.cost(MESSAGED), journal.runs(), path,
            journal.planned, len(journal.tests()),
            None if account is None else parse_key(account).describe(),
            sum(n for _, n in journal.rehearsed()), running,
            _status_waiting(campaign, journal, now))
    finally:
        journal.close()


def _status_waiting(campaign: Campaign, journal: Journal, now: float | None) -> Waiting | None:
    send = campaign.send
    if not (send.window or send.not_before or campaign.contacts.send_at_column):
        return None  # nothing can hold a message back (Scheduler.active, without planning)
    from batchsms.plan.planner import Planner

    planner = Planner(campaign, now=now)
    if not planner.scheduler.active or not journal.counts()[PENDING]:
        return None
    gate = planner.scheduler.gate()
    for chunk in planner.chunks():
        gate.add(chunk.plan)
    return gate.waiting([r.row for r in journal.in_state(PENDING)], planner.now)


def _open_for_status(path: Path, campaign: Campaign) -> Journal:
    try:
        return Journal.open(path, readonly=True)
    except OlderJournal:
        # an older journal: upgrade it first (only when no run holds it)
        from batchsms.plan.pricing import PriceTable

        with CampaignLock(path, "status"):
            Journal.open(path, prices=PriceTable.from_config(campaign.pricing)).close()
        return Journal.open(path, readonly=True)


def _elsewhere(name: str) -> str:
    """Where else this campaign has journals, from the registry (a hint, never fatal)."""
    try:
        registry = Registry.open()
        try:
            found = [p for (p,) in registry.db.execute(
                "SELECT DISTINCT journal FROM journals WHERE campaign = ?", (name,))]
        finally:
            registry.close()
    except BatchsmsError:
        return ""
    return f"; a campaign named {name!r} has a journal at {', '.join(found)}" if found else ""
