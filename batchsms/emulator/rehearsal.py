"""All four emulators on one port, for rehearsals: ``batchsms emulator``.

Each provider is mounted under its own prefix, so a campaign points ``provider.base_url``
at it (TXTY's API lives under ``/api/4``), and one account per provider is seeded
that accepts any sender, with the credentials :func:`rehearsal_app` returns.
Each emulator's router is mounted rather than its app, so a request passes one
middleware stack instead of two (the answers are the same).
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from batchsms.emulator import mailersend, mailjet, txty, voximplant
from batchsms.emulator.voximplant import _sandbox_key

MOUNTS = {"mailjet": "", "mailersend": "", "voximplant": "", "txty": "/api/4"}


def base_urls(root: str) -> dict[str, str]:
    """The ``provider.base_url`` of each emulator served at ``root``."""
    return {name: f"{root}/{name}{suffix}" for name, suffix in MOUNTS.items()}


def rehearsal_app(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """The four emulators under one app, and the environment that authenticates to them.

    Voximplant's service-account credentials are written to ``folder`` (a throwaway key).
    """
    apps = {"mailjet": mailjet.create_app(), "mailersend": mailersend.create_app(),
            "voximplant": voximplant.create_app(), "txty": txty.create_app()}
    seeds = [
        ("mailjet", mailjet.make_account({"credential": "rehearsal-token", "daily_limit": None})),
        ("mailersend", mailersend.make_account({"credential": "rehearsal-key"})),
        ("txty", txty.make_account({"credential": "rehearsal", "key": "rehearsal-key"})),
    ]
    for name, seeded in seeds:
        apps[name].state.emulator.accounts[seeded.credential] = seeded
    private_pem, public_pem = _sandbox_key()
    account = voximplant.make_account({"credential": "rehearsal-key-id", "account_id": 1,
                                       "public_key": public_pem})
    apps["voximplant"].state.emulator.accounts[account.credential] = account
    folder.mkdir(parents=True, exist_ok=True)
    credentials = folder / "voximplant-credentials.json"
    credentials.write_text(json.dumps({"account_email": "rehearsal@batchsms.invalid",
                                       "account_id": 1, "key_id": "rehearsal-key-id",
                                       "private_key": private_pem}), encoding="utf-8")
    env = {"MAILJET_SMS_TOKEN": "rehearsal-token", "MAILERSEND_API_KEY": "rehearsal-key",
           "VOXIMPLANT_CREDENTIALS": str(credentials), "TXTY_USER": "rehearsal",
           "TXTY_KEY": "rehearsal-key"}
    app = Starlette(routes=[Mount(f"/{name}", app=sub.router) for name, sub in apps.items()])
    app.state.emulators = {name: sub.state.emulator for name, sub in apps.items()}
    return app, env
