"""``send`` and ``status`` as library calls: plan, journal, run, report.

``prepare_send`` builds the same plan as the dry run, checks the budget and, for a
campaign that was sent before, whether its files changed; ``execute`` sends what the
journal says is left; ``campaign_status`` reads the journal.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from batchsms.errors import BatchsmsError, CampaignError, ExitCode
from batchsms.plan.campaign import DEFAULT_REPORTS, Campaign, load_campaign, report_dir
from batchsms.plan.phones import normalize_one
from batchsms.plan.planner import Planner
from batchsms.plan.pricing import PriceTable
from batchsms.plan.schedule import Gate, Waiting
from batchsms.plan.totals import Totals
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.connect import connect
from batchsms.send.journal import MESSAGED, PENDING, SENDING, UNKNOWN, Journal
from batchsms.send.runner import Runner, RunResult, SendSettings, Stats

JOURNAL = "journal.sqlite"
NAP_STEP = 1.0  # seconds: how soon a --wait pause notices Ctrl-C


class BudgetExceeded(BatchsmsError):
    exit_code = ExitCode.UNUSABLE


class ChangedInputs(BatchsmsError):
    exit_code = ExitCode.UNUSABLE


@dataclass
class PreparedSend:
    campaign: Campaign
    planner: Planner
    totals: Totals  # the dry run's totals of the whole plan
    journal: Journal
    created: bool  # the journal was made by this preparation
    changes: list[str]  # what changed since the first send (accepted)
    resent_unknown: int
    gate: Gate | None = None  # the window rule, when anything can hold a message back

    def waiting(self, now: float) -> Waiting | None:
        """The pending recipients whose window is shut at ``now`` (None: no window rule)."""
        return _waiting(self.gate, self.journal, now)

    @property
    def folder(self) -> Path:
        return self.journal.path.parent

    def to_do(self) -> dict[str, int]:
        counts = self.journal.counts()
        return {"to_send": counts[PENDING], "to_look_up": counts[SENDING],
                "already_sent": counts["sent"], "failed": counts["failed"],
                "unknown": counts[UNKNOWN]}

    def discard(self) -> None:
        """The user declined: forget the plan this preparation wrote (test sends stay)."""
        keep_tests = self.created and bool(self.journal.tests())
        if keep_tests:
            self.journal.forget_plan()
        self.journal.close()
        if self.created and not keep_tests:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.journal.path}{suffix}").unlink(missing_ok=True)


def fingerprints(campaign: Campaign) -> dict[str, str]:
    """A hash of every file the plan depends on."""
    assert campaign.source is not None
    files = {"campaign file": campaign.source, "contact sheet": campaign.contacts.path}
    if campaign.template.path is not None:
        files["template"] = campaign.template.path
    files.update({f"suppression file {p.name}": p for p in campaign.suppression})
    return {name: _sha256(path) for name, path in files.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def prepare_send(campaign_path: str | Path, reports: Path = DEFAULT_REPORTS, *,
                 accept_changes: bool = False, resend_unknown: bool = False,
                 now: float | None = None) -> PreparedSend:
    """Plan the campaign and bring its journal up to date; nothing is sent yet.

    Raises CampaignError for an unusable campaign, BudgetExceeded when the estimate is
    over ``send.budget``, ChangedInputs when files changed since the first send and
    ``accept_changes`` is not given. ``now`` is the instant windows are judged from.
    """
    campaign = load_campaign(campaign_path)
    planner = Planner(campaign, now=now)
    gate = planner.scheduler.gate() if planner.scheduler.active else None
    prints = fingerprints(campaign)
    journal = Journal.open(report_dir(campaign, reports) / JOURNAL)
    created = journal.is_new
    try:
        changes = [] if created else _changes(journal.get("fingerprints"), prints)
        if changes and not accept_changes:
            raise ChangedInputs(
                f"{campaign.source}: changed since this campaign was first sent: "
                f"{', '.join(changes)}. Recipients already messaged will never be messaged "
                "again; run again with --accept-changes to send the new plan to the others, "
                "or give the campaign a new name to start over")
        totals = Totals(planner.prices, now=planner.now)
        with journal.transaction():
            for chunk in planner.chunks():
                totals.add(chunk.plan)
                if gate is not None:
                    gate.add(chunk.plan)
                if created:
                    journal.add_planned(chunk.plan)
                elif changes:
                    journal.replan(chunk.plan)
            journal.put("fingerprints", prints)
            journal.put("campaign", campaign.name)
        _check_budget(campaign, totals)
        resent = journal.resend_unknown() if resend_unknown else 0
    except BaseException:
        if created:
            PreparedSend(campaign, planner, Totals(planner.prices), journal, True, [], 0).discard()
        else:
            journal.close()
        raise
    return PreparedSend(campaign, planner, totals, journal, created, changes, resent, gate)


def _waiting(gate: Gate | None, journal: Journal, now: float) -> Waiting | None:
    if gate is None:
        return None
    return gate.waiting([r.row for r in journal.in_state(PENDING)], now)


def _changes(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    before = before or {}
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def _check_budget(campaign: Campaign, totals: Totals) -> None:
    budget = campaign.send.budget
    estimate = totals.prices.money(totals.cost)
    if budget is not None and estimate > budget:
        cur = totals.prices.currency
        raise BudgetExceeded(
            f"{campaign.source}: send.budget: the estimate is {cur} {estimate}, over the budget "
            f"of {cur} {budget} by {cur} {estimate - budget}. Raise send.budget, or remove "
            "recipients (see the dry run's most expensive rows)")


def settings_for(campaign: Campaign) -> SendSettings:
    rules = campaign.provider.rules
    return SendSettings(rate=campaign.send.parsed_rate or rules.default_rate,
                        concurrency=campaign.send.concurrency,
                        chunk_size=campaign.send.chunk_size)


async def execute(prepared: PreparedSend, environ: Mapping[str, str] | None = None, *,
                  on_progress: Callable[[Stats, bool], None] | None = None,
                  on_runner: Callable[[Runner], None] | None = None,
                  settings: SendSettings | None = None,
                  clock: Callable[[], float] = time.time,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                  wait: bool = False,
                  on_wait: Callable[[Waiting], None] | None = None) -> RunResult:
    """Send everything the journal has left whose window is open; ``on_runner`` receives
    each runner (for Ctrl-C).

    Recipients whose window is shut stay pending. With ``wait``, it sleeps until the next
    window opens (telling ``on_wait``) and sends again, until none is left or Ctrl-C.
    ``settings`` overrides what the campaign's ``send`` section says (tests, benchmarks).
    """
    journal = prepared.journal
    run = journal.start_run(clock())
    result: RunResult | None = None
    try:
        async with connect(prepared.campaign.provider, environ) as connection:
            total = Stats()
            while True:
                runner = Runner(journal, connection.provider,
                                settings or settings_for(prepared.campaign), clock=clock,
                                sleep=sleep, on_progress=on_progress,
                                admit=prepared.gate.admit if prepared.gate else None)
                if on_runner:
                    on_runner(runner)
                result = _added(total, await runner.run())
                waiting = _next_window(prepared, result, clock) if wait else None
                if waiting is None:
                    break
                if on_wait:
                    on_wait(waiting)
                if not await _sleep_until(waiting.next_opening or 0.0, runner, clock, sleep):
                    result = replace(result, interrupted=True)
                    break
    finally:
        outcome = "error" if result is None else (
            "interrupted" if result.interrupted else "stopped" if result.stopped else "finished")
        journal.finish_run(run, clock(), outcome)
    return result


def _added(total: Stats, result: RunResult) -> RunResult:
    """The result of one round, with the counts of every round so far."""
    for name in ("sent", "failed", "unknown", "requests"):
        setattr(total, name, getattr(total, name) + getattr(result.stats, name))
    total.total = max(total.total, result.stats.total)
    total.waiting = result.stats.waiting
    return replace(result, stats=total)


def _next_window(prepared: PreparedSend, result: RunResult,
                 clock: Callable[[], float]) -> Waiting | None:
    """After a round that ran to its end: who waits, when the next window opens."""
    if result.interrupted or result.stopped or result.aborted:
        return None
    waiting = prepared.waiting(clock())
    return waiting if waiting is not None and waiting.next_opening is not None else None


async def _sleep_until(when: float, runner: Runner, clock: Callable[[], float],
                       sleep: Callable[[float], Awaitable[None]]) -> bool:
    """Sleep until ``when``; False when Ctrl-C came first."""
    while not runner.interrupted and (left := when - clock()) > 0:
        await sleep(min(left, NAP_STEP))
    return not runner.interrupted


@dataclass(frozen=True)
class TestSend:
    row: int
    to: str
    text: str
    result: Result


async def send_test(campaign_path: str | Path, to: str, row: int | None = None,
                    reports: Path = DEFAULT_REPORTS,
                    environ: Mapping[str, str] | None = None) -> TestSend:
    """Send the text rendered for ``row`` (default: the first sendable row) to ``to`` only.

    Recorded as a test in the journal: it never counts as that row's message and never
    changes what a send or a resume does.
    """
    campaign = load_campaign(campaign_path)
    number = normalize_one(to, campaign.contacts.default_region)
    if number.e164 is None:
        raise CampaignError(f"--test-to {to!r}: {number.reason}")
    chosen = _test_row(campaign, Planner(campaign), row)
    journal = Journal.open(report_dir(campaign, reports) / JOURNAL)
    try:
        test = journal.add_test(chosen[0], number.e164, chosen[1], time.time())
        async with connect(campaign.provider, environ) as connection:
            [result] = await connection.provider.send([Message(chosen[0], number.e164,
                                                               chosen[1])])
        state = {Outcome.SENT: "sent", Outcome.FAILED: "failed"}.get(result.outcome, "unknown")
        journal.finish_test(test, state, result.message_id, result.error)
    finally:
        journal.close()
    return TestSend(chosen[0], number.e164, chosen[1], result)


def _test_row(campaign: Campaign, planner: Planner, row: int | None) -> tuple[int, str]:
    for chunk in planner.chunks():
        plan = chunk.plan
        candidates = plan[plan["status"] == "ok"] if row is None else plan.loc[
            plan.index.intersection([row])]
        for index, item in candidates.head(1).iterrows():
            if item["status"] != "ok":
                raise CampaignError(f"{campaign.contacts.path}: row {index} is skipped "
                                    f"({item['reason']}): choose a row that would be sent")
            return int(index), str(item["text"])
    where = "no row would be sent" if row is None else f"there is no contact at row {row}"
    raise CampaignError(f"{campaign.contacts.path}: {where}")


@dataclass(frozen=True)
class CampaignStatus:
    campaign: Campaign
    counts: dict[str, int]
    cost_so_far: Decimal  # estimated cost of messages that went out or may have
    currency: str
    runs: list[tuple[int, float, float | None, str | None]]
    journal_path: Path
    waiting: Waiting | None = None  # pending recipients whose window is shut now

    @property
    def complete(self) -> bool:
        return self.counts[PENDING] == 0 and self.counts[SENDING] == 0


def _status_waiting(campaign: Campaign, journal: Journal, now: float | None) -> Waiting | None:
    planner = Planner(campaign, now=now)
    if not planner.scheduler.active or not journal.counts()[PENDING]:
        return None
    gate = planner.scheduler.gate()
    for chunk in planner.chunks():
        gate.add(chunk.plan)
    return _waiting(gate, journal, planner.now)


def campaign_status(campaign_path: str | Path, reports: Path = DEFAULT_REPORTS,
                    now: float | None = None) -> CampaignStatus:
    """What the journal says; raises CampaignError when the campaign was never sent.

    A campaign with a window (or send times) is planned again to tell which pending
    recipients wait for their window at ``now``.
    """
    campaign = load_campaign(campaign_path)
    path = report_dir(campaign, reports) / JOURNAL
    if not path.is_file():
        raise CampaignError(f"{campaign.source}: this campaign has not been sent yet (no journal "
                            f"at {path}). Run batchsms dry-run, then batchsms send")
    journal = Journal.open(path)
    try:
        prices = PriceTable.from_config(campaign.pricing)
        return CampaignStatus(campaign, journal.counts(),
                              prices.money(journal.cost_units(MESSAGED)), prices.currency,
                              journal.runs(), path, _status_waiting(campaign, journal, now))
    finally:
        journal.close()
