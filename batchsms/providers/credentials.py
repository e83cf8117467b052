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
    """``KEY=VALUE`` lines as python-dotenv reads them (``export``, quotes, escapes and
    ``#`` comments); a line it cannot read is an error naming the line, never the value."""
    from dotenv.parser import parse_stream  # only campaigns with an env_file need it

    values: dict[str, str] = {}
    with path.open(encoding="utf-8-sig") as stream:
        for binding in parse_stream(stream):
            # a bare word (no '=') is valid dotenv, but in a secrets file it is most likely
            # a pasted secret: refuse it, as a line dotenv cannot read
            if binding.error or (binding.key is not None and binding.value is None):
                raise CampaignError(f"{path}: line {binding.original.line}: expected KEY=VALUE "
                                    "(the line is not shown here because it may hold a secret)")
            if binding.key is not None and binding.value is not None:
                values[binding.key] = binding.value
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


_PATH_OR_JSON = {"VOXIMPLANT_CREDENTIALS"}  # a file path, or the file's JSON inline


def _path_or_json(value: str) -> bool:
    """Whether ``value`` is JSON, or could be a path; a pasted private key is neither, and
    must never be echoed back as a "file name" in an error."""
    text = value.strip()
    if text.startswith("{"):
        return True
    if Path(text).expanduser().is_file():
        return True
    return len(text) <= 1024 and not any(c.isspace() for c in text) and \
        ("/" in text or "\\" in text or text.lower().endswith(".json"))


def require(env: Mapping[str, str], name: str, config: ProviderConfig) -> str:
    """The secret ``name`` from ``env``, or a CampaignError naming the variable to set."""
    value = env.get(name)
    if value and name not in _PATH_OR_JSON and any(ord(c) < 32 or ord(c) == 127 for c in value):
        variable = config.env.get(name, name)
        raise CampaignError(
            f"{variable} holds a line break or another control character (the value is not "
            f"shown: it is a secret). Set {variable} again, without it")
    if value and name in _PATH_OR_JSON and not _path_or_json(value):
        variable = config.env.get(name, name)
        raise CampaignError(
            f"{variable} holds text that is not a path or JSON (it is not shown here: it may "
            f"be a secret). Set {variable} to the path of the credentials JSON file, or to its "
            "JSON text")
    if value:
        return value
    variable = config.env.get(name, name)
    where = f" or in {config.env_file}" if config.env_file else ""
    raise CampaignError(
        f"{config.rules.title} needs the environment variable {variable}{where}, which is not "
        f"set. Set it (e.g. export {variable}=...) or use provider.sandbox: true to rehearse "
        "against the built-in emulator"
    )
