"""What ``send`` would refuse or fail on before its first request, found without sending.

``check`` lists these problems so that it predicts ``send``; ``send`` asks the same
questions before it starts. The campaign file itself (keys, sender rules, rate) was
validated when it was loaded; these are the questions that need the plan or the
environment: the budget, something to send, and credentials that are present and
well-formed. A secret's value never appears in a problem, only its variable's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from batchsms.errors import CampaignError
from batchsms.plan.campaign import Campaign
from batchsms.plan.planner import REASON_TITLES
from batchsms.plan.totals import Totals
from batchsms.providers.credentials import environment


class NotReady(CampaignError):
    """``send`` cannot start: ``problems`` says why, each with what to do."""


def problems(campaign: Campaign, totals: Totals,
             environ: Mapping[str, str] | None = None) -> list[str]:
    """Every reason ``send`` would stop before its first request; empty when it can start.

    ``environ`` defaults to the process environment (and ``provider.env_file``).
    """
    found = [budget_problem(campaign, totals), nothing_to_send(campaign, totals)]
    found += credential_problems(campaign, environ)
    return [p for p in found if p]


def ensure_ready(campaign: Campaign, totals: Totals,
                 environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NotReady` listing :func:`problems`, if there are any."""
    found = problems(campaign, totals, environ)
    if found:
        raise NotReady(found)


def budget_problem(campaign: Campaign, totals: Totals) -> str | None:
    budget = campaign.send.budget
    estimate = totals.prices.money(totals.cost)
    if budget is None or estimate <= budget:
        return None
    cur = totals.prices.currency
    return (f"{campaign.source}: send.budget: the estimate is {cur} {estimate}, over the budget "
            f"of {cur} {budget} by {cur} {estimate - budget}. Raise send.budget, or remove "
            "recipients (see the dry run's most expensive rows)")


def nothing_to_send(campaign: Campaign, totals: Totals) -> str | None:
    if totals.sendable:
        return None
    if not totals.recipients:
        return f"{campaign.contacts.path}: the sheet has no contacts. Add rows below the header"
    reasons = ", ".join(f"{REASON_TITLES.get(code, code)} ({n:,})"
                        for code, n in totals.skipped_by_reason.most_common(3))
    return (f"{campaign.contacts.path}: no row would be sent: all {totals.recipients:,} are "
            f"skipped ({reasons}). Run batchsms dry-run and fix the reasons it lists")


def credential_problems(campaign: Campaign,
                        environ: Mapping[str, str] | None = None) -> list[str]:
    """Missing or unusable credentials, found by building the client without a network."""
    config = campaign.provider
    if config.sandbox:
        return []
    try:
        env = environment(config, environ)
    except CampaignError as exc:  # an unreadable provider.env_file
        return exc.problems
    found = [_spaced(config.env.get(name, name)) for name, value in env.items()
             if not value.lstrip().startswith("{") and _slipped(value)]
    module = importlib.import_module(f"batchsms.providers.{config.name}")
    try:
        module.create(config, env, _Offline())
    except CampaignError as exc:
        found += exc.problems
    return found


def _slipped(value: str) -> bool:
    """Spaces around a pasted secret (a control character is the client's own check)."""
    return value != value.strip(" ")


def _spaced(variable: str) -> str:
    return (f"{variable} starts or ends with a space (a copy-paste slip?): set it again "
            "without it (its value is not shown here: it is a secret)")


class _Offline:
    """A transport that refuses every request: building a client must send nothing."""

    async def exchange(self, method: str, url: str, **_: Any) -> Any:
        raise AssertionError("the preflight never sends a request")
