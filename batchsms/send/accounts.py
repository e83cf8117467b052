"""Which provider account a send goes through, as a fingerprint that never holds a secret.

A message counts only for the account it went through: a sandbox rehearsal (the
in-process emulator) or a rehearsal against ``batchsms emulator`` (its well-known
throwaway credentials) never stands for a real message. ``base_url`` is not part of the
account: a proxy in front of the same real account changes nothing already sent.

The fingerprint is a salted SHA-256 of what identifies the account (the Voximplant
account id, the user name, else the token), cut to 16 hex digits: enough to tell
accounts apart, useless for recovering a secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SANDBOX, REHEARSAL, REAL = "sandbox", "rehearsal", "real"

# The credentials `batchsms emulator` seeds (batchsms/emulator/rehearsal.py); a test keeps
# the two in step. Sending with them can only ever reach an emulator.
REHEARSAL_VALUES = frozenset({"rehearsal-token", "rehearsal-key", "rehearsal",
                              "rehearsal-key-id"})
_SALT = b"batchsms account fingerprint v1\0"


@dataclass(frozen=True)
class Account:
    provider: str
    kind: str  # sandbox | rehearsal | real
    fingerprint: str

    @property
    def key(self) -> str:
        """How the journal and the registry name this account."""
        return f"{self.provider}:{self.kind}:{self.fingerprint}"

    @property
    def counts(self) -> bool:
        """Whether messages sent through it reached real people (and cost real money)."""
        return self.kind == REAL

    def describe(self) -> str:
        if self.kind == SANDBOX:
            return f"the {self.provider} sandbox (in-process emulator)"
        if self.kind == REHEARSAL:
            return f"the {self.provider} rehearsal account of batchsms emulator"
        return f"{self.provider} account {self.fingerprint}"


def parse_key(key: str) -> Account:
    provider, kind, fingerprint = key.split(":", 2)
    return Account(provider, kind, fingerprint)


def sandbox_account(provider: str) -> Account:
    return Account(provider, SANDBOX, "sandbox")


def account_for(provider: str, credentials: Mapping[str, str]) -> Account:
    """The account that ``credentials`` (by their standard names) authenticate as."""
    identity, rehearsal = _identity(credentials)
    kind = REHEARSAL if rehearsal else REAL
    digest = hashlib.sha256(_SALT + provider.encode() + b"\0" +
                            "\0".join(identity).encode("utf-8", "replace")).hexdigest()
    return Account(provider, kind, digest[:16])


def _identity(credentials: Mapping[str, str]) -> tuple[list[str], bool]:
    """What names the account (stable across a new key where the provider allows), and
    whether these are batchsms emulator's throwaway credentials."""
    if "VOXIMPLANT_CREDENTIALS" in credentials:
        return _voximplant_identity(credentials["VOXIMPLANT_CREDENTIALS"])
    users = [credentials[n] for n in sorted(credentials) if n.endswith(("_USER", "_USERNAME"))]
    identity = users or [credentials[name] for name in sorted(credentials)]
    return identity, bool(identity) and set(identity) <= REHEARSAL_VALUES


def _voximplant_identity(value: str) -> tuple[list[str], bool]:
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return [value], False
    try:
        data = json.loads(text)
    except ValueError:
        return [text], False
    if isinstance(data, dict) and "account_id" in data:
        rehearsal = data.get("key_id") in REHEARSAL_VALUES
        return [str(data["account_id"])], rehearsal
    return [text], False
