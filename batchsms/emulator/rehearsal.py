"""Every provider's emulator on one port, for rehearsals: ``batchsms emulator``.

Each registered provider (``providers/registry.py``) is mounted under ``/<name>``, so a
campaign points ``provider.base_url`` at it (plus the entry's ``mount``: TXTY v4's API
lives under ``/api/4``); each emulator module's ``rehearsal(folder)`` seeds one account
that accepts any sender and gives the credentials that authenticate to it. Each
emulator's router is mounted rather than its app, so a request passes one middleware
stack instead of two (the answers are the same).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from batchsms.providers.registry import PROVIDERS


def base_urls(root: str) -> dict[str, str]:
    """The ``provider.base_url`` of each emulator served at ``root``."""
    return {name: f"{root}/{name}{entry.mount}" for name, entry in PROVIDERS.items()}


def rehearsal_app(folder: Path) -> tuple[Starlette, dict[str, str]]:
    """All the emulators under one app, and the environment that authenticates to them.

    Files an emulator needs for its credentials (Voximplant's throwaway key) go to ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    apps: dict[str, Starlette] = {}
    env: dict[str, str] = {}
    for name, entry in PROVIDERS.items():
        apps[name], credentials = entry.emulator_module().rehearsal(folder)
        env.update(credentials)
    app = Starlette(routes=[Mount(f"/{name}", app=sub.router) for name, sub in apps.items()])
    app.state.emulators = {name: sub.state.emulator for name, sub in apps.items()}
    return app, env
