"""Provider secrets: from the environment or an env file the campaign names, never the YAML.

A secret's value never appears in an error, a log line or a report; only its name does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from batchsms.errors import CampaignError
from batchsms.providers.settings import ProviderConfig


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` and quotes allowed, ``#`` comments ignored)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise CampaignError(f"{path}: line {number}: expected KEY=VALUE (the value is not "
                                "shown here because it may be a secret)")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def environment(config: ProviderConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The provider's credentials by their standard names (e.g. ``MAILJET_SMS_TOKEN``).

    ``provider.env`` may rename a variable (``{MAILJET_SMS_TOKEN: ACME_MJ_TOKEN}``);
    ``provider.env_file`` adds values that the environment overrides.
    """
    source = dict(read_env_file(config.env_file)) if config.env_file else {}
    source.update(os.environ if environ is None else environ)
    found: dict[str, str] = {}
    for name in config.rules.credentials:
        value = source.get(config.env.get(name, name))
        if value:
            found[name] = value
    return found


def require(env: Mapping[str, str], name: str, config: ProviderConfig) -> str:
    """The secret ``name`` from ``env``, or a CampaignError naming the variable to set."""
    value = env.get(name)
    if value:
        return value
    variable = config.env.get(name, name)
    where = f" or in {config.env_file}" if config.env_file else ""
    raise CampaignError(
        f"{config.rules.title} needs the environment variable {variable}{where}, which is not "
        f"set. Set it (e.g. export {variable}=...) or use provider.sandbox: true to rehearse "
        "against the built-in emulator"
    )
