"""``send`` and ``status`` as library calls: plan, journal, run, report.

``prepare_send`` builds the same plan as the dry run, checks the budget and, for a
campaign that was sent before, whether its files changed; ``execute`` sends what the
journal says is left; ``campaign_status`` reads the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from batchsms.errors import BatchsmsError, CampaignError, ExitCode
from batchsms.plan.campaign import Campaign, load_campaign, report_dir
from batchsms.plan.phones import normalize_one
from batchsms.plan.planner import Planner
from batchsms.plan.pricing import PriceTable
from batchsms.plan.schedule import Gate, Waiting
from batchsms.plan.totals import Totals
from batchsms.providers.base import Message, Outcome, Result
from batchsms.providers.connect import connect
from batchsms.providers.credentials import environment, require
from batchsms.send import preflight
from batchsms.send.accounts import Account, account_for, parse_key, sandbox_account
from batchsms.send.journal import (
    FAILED,
    MESSAGED,
    PENDING,
    SENDING,
    SENT,
    UNKNOWN,
    Journal,
    JournalError,
)
from batchsms.send.lock import CampaignLock
from batchsms.send.registry import Entry, Registry, SecondJournal
from batchsms.send.runner import Runner, RunResult, SendSettings, Stats
from batchsms.send.status import (  # noqa: F401 (campaign_status: the library API)
    JOURNAL,
    CampaignStatus,
    campaign_status,
)

NAP_STEP = 1.0  # seconds: how soon a --wait pause notices Ctrl-C


class BudgetExceeded(BatchsmsError):
    exit_code = ExitCode.UNUSABLE


class ChangedInputs(BatchsmsError):
    exit_code = ExitCode.UNUSABLE


class AccountChanged(BatchsmsError):
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
    account: Account | None = None
    rehearsed: int = 0  # earlier sends that went to a rehearsal account (they do not count)
    lock: CampaignLock | None = None
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

    def close(self) -> None:
        """Close the journal and let other runs send this campaign."""
        self.journal.close()
        if self.lock:
            self.lock.release()

    def discard(self) -> None:
        """The user declined: forget the plan this preparation wrote (test sends stay)."""
        keep_tests = self.created and bool(self.journal.tests())
        if keep_tests:
            self.journal.forget_plan()
        self.journal.close()
        if self.created and not keep_tests:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.journal.path}{suffix}").unlink(missing_ok=True)
        if self.lock:
            self.lock.release()


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


def account_of(campaign: Campaign, environ: Mapping[str, str] | None = None) -> Account:
    """The provider account this campaign sends through (credentials must be present)."""
    config = campaign.provider
    if config.sandbox:
        return sandbox_account(config.name)
    env = environment(config, environ)
    for name in config.rules.credentials:
        require(env, name, config)
    return account_for(config.name, env)


def prepare_send(campaign_path: str | Path, reports: Path | None = None, *,
                 accept_changes: bool = False, resend_unknown: bool = False,
                 message_again: bool = False, same_account: bool = False,
                 environ: Mapping[str, str] | None = None,
                 now: float | None = None) -> PreparedSend:
    """Plan the campaign and bring its journal up to date; nothing is sent yet.

    Takes the campaign's lock (released by :meth:`PreparedSend.close`). Raises
    CampaignError for an unusable campaign, CampaignBusy when another run holds the
    lock, SecondJournal when the campaign already has a journal elsewhere for this
    account (unless ``message_again``), AccountChanged when its messages went through
    another real account (unless ``same_account``), BudgetExceeded when the estimate is
    over ``send.budget``, ChangedInputs when files changed since the first send and
    ``accept_changes`` is not given, JournalError when the journal cannot be used.
    ``now`` is the instant windows are judged from (default: the clock).
    """
    campaign = load_campaign(campaign_path)
    account = account_of(campaign, environ)
    planner = Planner(campaign, now=now)
    prints = fingerprints(campaign)
    path = report_dir(campaign, reports) / JOURNAL
    lock = CampaignLock(path, _command())
    lock.acquire()
    try:
        journal = Journal.open(path, prices=planner.prices)
    except BaseException:
        lock.release()
        raise
    created = journal.is_new
    prepared = PreparedSend(campaign, planner, Totals(planner.prices, now=planner.now), journal,
                            created, [], 0, account, 0, lock,
                            planner.scheduler.gate() if planner.scheduler.active else None)
    try:
        journal.claim(campaign.name)
        _claim_registry(campaign, account, path, message_again)
        prepared.rehearsed = _adopt_account(journal, account, same_account)
        prepared.changes = [] if created else _changes(journal.get("fingerprints"), prints)
        if prepared.changes and not accept_changes:
            raise ChangedInputs(
                f"{campaign.source}: changed since this campaign was first sent: "
                f"{', '.join(prepared.changes)}. Recipients already messaged will never be "
                "messaged again; run again with --accept-changes to send the new plan to the "
                "others. (A new campaign name would start a new journal and message everyone "
                "again, including those already messaged.)")
        _plan_into(prepared, prints)
        _check_budget(campaign, prepared.totals, journal, resend_unknown)
        _ensure_ready(campaign, prepared.totals, environ, first=created)
        prepared.resent_unknown = journal.resend_unknown() if resend_unknown else 0
    except BaseException:
        prepared.discard() if created else prepared.close()
        raise
    journal.sender, journal.account = campaign.provider.sender, account.key
    return prepared


# Skips that only time can cause: a recipient still pending from an earlier run that the
# plan now skips for one of these will never be sent, so it fails with that reason.
TOO_LATE = ("too_late", "no_window")


def _plan_into(prepared: PreparedSend, prints: dict[str, str]) -> None:
    journal, planner = prepared.journal, prepared.planner
    late: list[tuple[str, str]] = []
    with journal.transaction():
        for number, chunk in enumerate(planner.chunks()):
            prepared.totals.add(chunk.plan)
            plan = chunk.plan
            gone = plan[plan["reason_code"].isin(TOO_LATE) & plan["e164"].notna()]
            late += [(e, f"not sent: {why}") for e, why in zip(gone["e164"], gone["reason"],
                                                               strict=True)]
            if prepared.gate is not None:
                prepared.gate.add(chunk.plan)
            if prepared.created:
                journal.add_planned(chunk.plan, planner.prices)
            elif prepared.changes:
                journal.replan(chunk.plan, planner.prices)
            journal.set_skipped(chunk.plan, first=number == 0)
        journal.put("fingerprints", prints)
        journal.put("campaign_file", str(prepared.campaign.source))
        journal.put("provider", prepared.campaign.provider.name)
        journal.put("totals", prepared.totals.to_dict())
    if late and not prepared.created:
        journal.expire(late, planner.now)


def _waiting(gate: Gate | None, journal: Journal, now: float) -> Waiting | None:
    if gate is None:
        return None
    return gate.waiting([r.row for r in journal.in_state(PENDING)], now)


def _claim_registry(campaign: Campaign, account: Account, path: Path, again: bool) -> None:
    if not account.counts:
        return  # a rehearsal reaches nobody: a second journal cannot double a message
    registry = Registry.open()
    try:
        others = registry.claim(campaign.name, account.key, path, campaign.source, again=again)
    finally:
        registry.close()
    if others and not again:
        raise SecondJournal(
            f"{campaign.source}: campaign {campaign.name!r} already has a journal for "
            f"{account.describe()}: {_describe_journals(others)}. Sending from here would start "
            "a second journal and message everyone again. Run it where that journal is (same "
            "--reports folder), or, if you really want every recipient messaged again through "
            f"this account, pass --message-everyone-again{_other_files(campaign, others)}")


def _other_files(campaign: Campaign, others: list[Entry]) -> str:
    """A campaign is known by its name: another file under the same name may be another
    campaign altogether, which only needs a name of its own."""
    if campaign.source is None:
        return ""
    here = Path(campaign.source).resolve()
    files = sorted({e.campaign_file for e in others
                    if e.campaign_file and Path(e.campaign_file) != here})
    if not files:
        return ""
    return (f". That journal was started from {', '.join(files)}, not from this file: if "
            "this is a different campaign, give it a name of its own (the name: key)")


def _describe_journals(entries: list[Entry]) -> str:
    parts = []
    for entry in entries:
        try:
            other = Journal.open(entry.journal, readonly=True)
            try:
                counts, runs = other.counts(), other.runs()
            finally:
                other.close()
            when = _day(runs[-1][1]) if runs else "never run"
            held = f"{counts[SENT]} sent, {counts[PENDING]} pending, last run {when}"
        except BatchsmsError:
            held = "unreadable"
        parts.append(f"{entry.journal} ({held})")
    return "; ".join(parts)


def _adopt_account(journal: Journal, account: Account, same_account: bool) -> int:
    """Make ``account`` the journal's; returns how many rehearsal sends were set aside."""
    before = journal.get("account")
    if before is None or before == account.key:
        if before is None:
            with journal.transaction():
                journal.put("account", account.key)
        return 0
    previous = parse_key(before)
    went_out = sum(journal.counts()[s] for s in (SENDING, SENT, FAILED, UNKNOWN))
    if not previous.counts:
        return journal.switch_account(account.key) if went_out else _put_account(journal,
                                                                                 account)
    if went_out and not account.counts:
        raise AccountChanged(
            f"{journal.path}: {went_out} messages of this campaign went out through "
            f"{previous.describe()}; a rehearsal through {account.describe()} now would mark "
            "the remaining recipients as sent without reaching them. Rehearse under another "
            "campaign name or --reports folder")
    if went_out and previous.provider == account.provider and not same_account:
        raise AccountChanged(
            f"{journal.path}: {went_out} messages of this campaign went out through "
            f"{previous.describe()}, but the credentials now belong to {account.describe()}. "
            "If this is the same account with a new key, run again with --same-account (those "
            "recipients are not messaged again). To message everyone again through the new "
            "account, give the campaign a new name")
    if went_out and previous.provider != account.provider:
        raise AccountChanged(
            f"{journal.path}: {went_out} messages of this campaign went out through "
            f"{previous.describe()}; this campaign now names provider {account.provider}. "
            "Recipients already messaged are never messaged again by this campaign: to send "
            "through another provider, give the campaign a new name")
    return _put_account(journal, account)


def _put_account(journal: Journal, account: Account) -> int:
    with journal.transaction():
        journal.put("account", account.key)
    return 0


def _command() -> str:
    return " ".join(["batchsms", *sys.argv[1:]])[:300] if sys.argv else "batchsms"


def _day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def _changes(before: dict[str, str] | None, now: dict[str, str]) -> list[str]:
    before = before or {}
    return sorted(name for name in before.keys() | now.keys() if before.get(name) != now.get(name))


def _ensure_ready(campaign: Campaign, totals: Totals, environ: Mapping[str, str] | None,
                  *, first: bool) -> None:
    """What ``check`` reports too (``preflight``): nothing sendable (on a first send; a
    resume may still have lookups or late recipients to settle), or credentials the
    provider's client cannot use. The budget is checked above, against the journal."""
    found = [p for p in (preflight.nothing_to_send(campaign, totals),) if p and first]
    found += preflight.credential_problems(campaign, environ)
    if found:
        raise preflight.NotReady(found)


def _check_budget(campaign: Campaign, totals: Totals, journal: Journal,
                  resend_unknown: bool = False) -> None:
    """The whole campaign's cost against ``send.budget``: what went out (or may have) at
    the price it went out at, plus what is left at today's prices, plus unknown outcomes
    once more when they are to be resent. (The plan's totals alone would price earlier
    messages at today's list: a cheaper list after sending would make room for more
    than the budget.)"""
    budget = campaign.send.budget
    if budget is None:
        return
    cur = totals.prices.currency
    spent = journal.cost(MESSAGED).get(cur, Decimal(0))
    left = (PENDING, UNKNOWN) if resend_unknown else (PENDING,)
    estimate = spent + journal.cost(left).get(cur, Decimal(0))
    if estimate > budget:
        already = f" ({cur} {spent} of it already went out)" if spent else ""
        raise BudgetExceeded(
            f"{campaign.source}: send.budget: the estimate is {cur} {estimate}{already}, over "
            f"the budget of {cur} {budget} by {cur} {estimate - budget}. Raise send.budget, or "
            "remove recipients (see the dry run's most expensive rows)")


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
    run = journal.start_run(clock(), _command())
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
                _expire(prepared, clock())
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
        # the run's end is bookkeeping: every recipient's state is already on disk, and a
        # journal that cannot take it (disk full) must not hide why the run stopped
        with contextlib.suppress(JournalError):
            journal.finish_run(run, clock(), outcome)
    return result


def _expire(prepared: PreparedSend, now: float) -> None:
    """Recipients whose send time passed more than ``send.max_late`` ago will never be sent:
    they become ``failed`` (not sent, with the reason), so the campaign can complete."""
    gate = prepared.gate
    if gate is None or gate.max_late is None:
        return
    pending = {r.row: r.e164 for r in prepared.journal.in_state(PENDING)}
    note = (f"not sent: its send time passed more than send.max_late "
            f"({prepared.campaign.send.max_late}) ago while it waited for its window")
    rows = gate.expired(list(pending), now)
    if rows:
        prepared.journal.expire([(pending[row], note) for row in rows], now)


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
                    reports: Path | None = None,
                    environ: Mapping[str, str] | None = None) -> TestSend:
    """Send the text rendered for ``row`` (default: the first sendable row) to ``to`` only.

    Recorded as a test in the journal (under the campaign's lock): it never counts as that
    row's message and never changes what a send or a resume does.
    """
    campaign = load_campaign(campaign_path)
    number = normalize_one(to, campaign.contacts.default_region)
    countries = campaign.provider.rules.countries
    if number.e164 is None or number.reason is not None:  # the plan's checks, premium-rate too
        raise CampaignError(f"--test-to {to!r}: {number.reason}; nothing was sent")
    if countries is not None and number.country not in countries:
        raise CampaignError(f"--test-to {to!r}: {campaign.provider.rules.title} sends only to "
                            f"numbers in {', '.join(sorted(countries))}; nothing was sent")
    account = account_of(campaign, environ)
    chosen = _test_row(campaign, Planner(campaign), row)
    path = report_dir(campaign, reports) / JOURNAL
    with CampaignLock(path, _command()):
        journal = Journal.open(path, prices=PriceTable.from_config(campaign.pricing))
        try:
            journal.claim(campaign.name)
            journal.account = account.key
            test = journal.add_test(chosen[0], number.e164, chosen[1], time.time())
            async with connect(campaign.provider, environ) as connection:
                [result] = await connection.provider.send([Message(chosen[0], number.e164,
                                                                   chosen[1])])
            state = {Outcome.SENT: "sent", Outcome.FAILED: "failed"}.get(result.outcome,
                                                                         "unknown")
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
