"""The one registry of providers: everything the rest of batchsms knows about each one.

One :class:`ProviderEntry` per provider, in :data:`PROVIDERS`: its rules (sender, length,
countries, rate, credentials: what the dry run checks), its options as their own pydantic
model (``provider.store_body`` exists for Voximplant only, ``provider.flash`` for TXTY),
and the dotted paths of its client module and its emulator module, which are imported
only when a send or a sandbox needs them (so a dry run imports neither, and production
never imports an emulator). Campaign validation, ``connect``, the rehearsal server,
``init``'s comments and the CLI help all read this table.

Adding a provider: a client module (``create(config, env, http)``, see ``base.Provider``),
an emulator module (``create_app``, ``sandbox(config)``, ``rehearsal(folder)``), one entry
here, tests and a README section.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType

from pydantic import BaseModel, ConfigDict

from batchsms.providers.rules import ProviderRules, Rate


class NoOptions(BaseModel):
    """A provider without options of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class VoximplantOptions(NoOptions):
    store_body: bool = False  # keep the text in Voximplant's history (stronger lookups)


class TxtyOptions(NoOptions):
    flash: bool = False  # a flash SMS: shown at once, not stored on the phone


@dataclass(frozen=True)
class ProviderEntry:
    rules: ProviderRules
    options: type[NoOptions]
    client: str  # module with ``create(config, env, http)``
    emulator: str  # module with ``create_app``, ``sandbox(config)``, ``rehearsal(folder)``
    mount: str = ""  # where the API lives under the emulator's root (TXTY v4: /api/4)
    summary: str = ""  # one line for ``init`` and the CLI help

    @property
    def name(self) -> str:
        return self.rules.name

    def client_module(self) -> ModuleType:
        return importlib.import_module(self.client)

    def emulator_module(self) -> ModuleType:
        """The emulator: imported only for the sandbox, rehearsals and tests."""
        return importlib.import_module(self.emulator)


def _txty_sender_ok(sender: str) -> bool:
    """TXTY: a-zA-Z0-9, at most 11 characters with a letter, or at most 15 digits."""
    limit = 15 if sender.isdigit() else 11
    return sender.isascii() and sender.isalnum() and 0 < len(sender) <= limit


_TXTY_SENDER = ("letters and digits only (a-z, A-Z, 0-9): at most 11 characters, or at most "
                "15 digits")

PROVIDERS: dict[str, ProviderEntry] = {entry.name: entry for entry in (
    ProviderEntry(
        ProviderRules(name="mailjet", title="Mailjet",
                      sender_ok=re.compile(r"[A-Za-z0-9]{3,11}").fullmatch,
                      sender_rule="3 to 11 letters or digits (A-Z, a-z, 0-9), e.g. MJPilot",
                      max_segments=5, default_rate=Rate(10, 1.0),
                      credentials=("MAILJET_SMS_TOKEN",)),
        NoOptions, "batchsms.providers.mailjet", "batchsms.emulator.mailjet",
        summary="Mailjet: 3-11 letters or digits"),
    ProviderEntry(
        ProviderRules(name="mailersend", title="MailerSend",
                      sender_ok=re.compile(r"\+[1-9][0-9]{6,14}").fullmatch,
                      sender_rule="a phone number of your MailerSend account in E.164 form, "
                                  "e.g. +19191234567",
                      max_chars=2048, countries=frozenset({"US", "CA"}),
                      recipients_per_request=50, default_rate=Rate(60, 60.0),
                      max_rate=Rate(60, 60.0), credentials=("MAILERSEND_API_KEY",)),
        NoOptions, "batchsms.providers.mailersend", "batchsms.emulator.mailersend",
        summary="MailerSend: a number of your account, e.g. +19191234567"),
    ProviderEntry(
        ProviderRules(name="voximplant", title="Voximplant",
                      sender_ok=re.compile(r"\+?[1-9][0-9]{6,14}").fullmatch,
                      sender_rule="a phone number bought from Voximplant with SMS enabled, "
                                  "e.g. 447443332211",
                      max_chars=765, default_rate=Rate(10, 1.0),
                      credentials=("VOXIMPLANT_CREDENTIALS",)),
        VoximplantOptions, "batchsms.providers.voximplant", "batchsms.emulator.voximplant",
        summary="Voximplant: an SMS-enabled number of your account"),
    ProviderEntry(
        ProviderRules(name="txty", title="TXTY", sender_ok=_txty_sender_ok,
                      sender_rule=_TXTY_SENDER, default_rate=Rate(10, 1.0),
                      credentials=("TXTY_USER", "TXTY_KEY")),
        TxtyOptions, "batchsms.providers.txty", "batchsms.emulator.txty", mount="/api/4",
        summary="TXTY API v4 (deprecated by TXTY): up to 11 letters/digits or 15 digits"),
    ProviderEntry(
        ProviderRules(name="txty6", title="TXTY v6", sender_ok=_txty_sender_ok,
                      sender_rule=_TXTY_SENDER, default_rate=Rate(10, 1.0),
                      credentials=("TXTY_USERNAME", "TXTY_TOKEN")),
        TxtyOptions, "batchsms.providers.txty6", "batchsms.emulator.txty6",
        summary="TXTY API v6: up to 11 letters/digits or 15 digits"),
)}


def entry(name: str) -> ProviderEntry:
    """The registered provider ``name``; KeyError naming the known ones otherwise."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise KeyError(f"no provider {name!r}: use one of {', '.join(PROVIDERS)}") from None
