"""``track`` as a library call: late reconciliation and delivery reports, never a send.

It asks the provider's status lookup about every message that is ``sent`` or ``unknown``
and whose delivery is not final yet, turns an ``unknown`` the provider now shows into
``sent`` (with its id and reported cost), and records each message's delivery
(``delivered``, ``undelivered``, ``expired``, ``pending`` or ``unknown``) with the
provider's reason and time. It holds the campaign's lock while it writes, so it never
races a send; it is safe to run as often as a user likes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from batchsms.errors import BatchsmsError, CampaignError, ExitCode
from batchsms.plan.campaign import Campaign, load_campaign, report_dir
from batchsms.plan.pricing import PriceTable
from batchsms.providers.base import Delivery, Query, Tracked
from batchsms.providers.connect import connect
from batchsms.providers.wire import LookupFailed
from batchsms.send.accounts import parse_key
from batchsms.send.journal import UNKNOWN, Journal
from batchsms.send.lock import CampaignLock
from batchsms.send.sending import JOURNAL, account_of

WINDOW_SKEW = 120.0  # seconds either side of our own clock: the provider's may differ
QUERIES_PER_CALL = 200
FINAL = {Delivery.DELIVERED, Delivery.UNDELIVERED, Delivery.EXPIRED}


class TrackRefused(BatchsmsError):
    exit_code = ExitCode.UNUSABLE


@dataclass
class TrackResult:
    campaign: Campaign
    journal_path: Path
    passes: int = 0
    asked: int = 0
    confirmed: int = 0  # unknown outcomes the provider now shows: now sent
    still_unknown: int = 0
    oldest_unknown: float | None = None  # when the oldest unresolved one went out
    deliveries: dict[str, int] = field(default_factory=dict)  # of sent messages
    note: str | None = None

    @property
    def resolved(self) -> bool:
        """Nothing left to learn: no unknown outcome, no delivery pending or unknown."""
        open_ = self.deliveries.get("pending", 0) + self.deliveries.get("unknown", 0) + \
            self.deliveries.get("not tracked", 0)
        return self.still_unknown == 0 and open_ == 0


async def track(campaign_path: str | Path, reports: Path | None = None, *,
                environ: Mapping[str, str] | None = None, wait: bool = False,
                max_wait: float = 3600.0, interval: float = 60.0,
                clock: Callable[[], float] = time.time,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> TrackResult:
    """One pass over the provider's lookups (or, with ``wait``, passes every ``interval``
    seconds until everything is resolved or ``max_wait`` has passed)."""
    campaign = load_campaign(campaign_path)
    path = report_dir(campaign, reports) / JOURNAL
    if not path.is_file():
        raise CampaignError(f"{campaign.source}: this campaign has not been sent yet (no journal "
                            f"at {path}): there is nothing to track")
    result = TrackResult(campaign, path)
    deadline = clock() + max_wait
    while True:
        await _one_pass(campaign, path, environ, clock, result)
        if not wait or result.resolved or result.note or clock() + interval > deadline:
            return result
        await sleep(interval)


async def _one_pass(campaign: Campaign, path: Path, environ: Mapping[str, str] | None,
                    clock: Callable[[], float], result: TrackResult) -> None:
    with CampaignLock(path, "batchsms track"):
        journal = Journal.open(path, prices=PriceTable.from_config(campaign.pricing))
        try:
            journal.claim(campaign.name)
            note = _cannot_track(journal, campaign, environ)
            if note:
                result.note = note
            else:
                await _ask(journal, campaign, environ, clock, result)
            _sum_up(journal, result)
        finally:
            journal.close()
    result.passes += 1


def _cannot_track(journal: Journal, campaign: Campaign,
                  environ: Mapping[str, str] | None) -> str | None:
    recorded = journal.get("account")
    if recorded is None:
        return "nothing was sent yet: there is nothing to track"
    account = parse_key(recorded)
    if not account.counts:
        return (f"this campaign was sent to {account.describe()}, a rehearsal: its messages "
                "reached nobody and there is nothing to track")
    if account_of(campaign, environ).key != recorded:
        raise TrackRefused(f"{journal.path}: the messages went out through "
                           f"{account.describe()}, but the credentials now belong to another "
                           "account, whose lookups cannot see them. Export the credentials "
                           "of the account that sent them")
    return None


async def _ask(journal: Journal, campaign: Campaign, environ: Mapping[str, str] | None,
               clock: Callable[[], float], result: TrackResult) -> None:
    rows = journal.to_track()
    queries = [_query(row, campaign) for row in rows]
    state = {row[0]: row[1] for row in rows}
    async with connect(campaign.provider, environ) as connection:
        for start in range(0, len(queries), QUERIES_PER_CALL):
            batch = queries[start:start + QUERIES_PER_CALL]
            try:
                answers = await connection.provider.track(batch)
            except LookupFailed as failure:
                raise TrackRefused(f"{campaign.provider.rules.title} refused the status "
                                   f"lookup: {failure.stop or failure}. Nothing was changed; "
                                   "fix that and run batchsms track again") from None
            result.asked += len(batch)
            result.confirmed += sum(1 for a in answers if a.found and state[a.key] == UNKNOWN)
            journal.record_tracking([_row(a) for a in answers], clock())


def _query(row: tuple, campaign: Campaign) -> Query:
    rowid, _, _, e164, sender, message_id, started, finished, text, _ = row
    start = started if started is not None else finished or 0.0
    end = finished if finished is not None else start
    return Query(rowid, e164, sender or campaign.provider.sender, text,
                 datetime.fromtimestamp(start - WINDOW_SKEW, UTC),
                 datetime.fromtimestamp(end + WINDOW_SKEW, UTC), message_id)


def _row(answer: Tracked) -> tuple:
    when = answer.delivered_at.timestamp() if answer.delivered_at else None
    cost = None if answer.cost is None else str(answer.cost)
    return (answer.key, answer.found, answer.message_id, str(answer.delivery), answer.reason,
            when, cost, answer.currency)


def _sum_up(journal: Journal, result: TrackResult) -> None:
    result.deliveries = journal.delivery_counts()
    row = journal.db.execute(f"SELECT count(*), min(started_at) FROM recipients WHERE "
                             f"state = '{UNKNOWN}'").fetchone()
    result.still_unknown, result.oldest_unknown = int(row[0]), row[1]
