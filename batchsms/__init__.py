"""batchsms: send SMS campaigns from a YAML file, a contact sheet and a template.

The library API behind the ``batchsms`` command::

    from batchsms import dry_run
    result = dry_run("campaigns/spring-sale.yaml")
    print(result.totals.to_dict()["cost"])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Campaign": "batchsms.plan.campaign",
    "load_campaign": "batchsms.plan.campaign",
    "DryRun": "batchsms.report.dryrun",
    "check": "batchsms.report.dryrun",
    "dry_run": "batchsms.report.dryrun",
    "BatchsmsError": "batchsms.errors",
    "CampaignError": "batchsms.errors",
    "ExitCode": "batchsms.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    """Import the public API lazily, so ``import batchsms.<module>`` stays light."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'batchsms' has no attribute {name!r}")
