"""Connecting a campaign to its provider: the real API, another base_url, or the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from batchsms.providers.base import Provider
from batchsms.providers.credentials import environment
from batchsms.providers.settings import ProviderConfig
from batchsms.providers.transport import HttpxTransport, Timeouts, network_client

if TYPE_CHECKING:  # the emulators are imported only when the sandbox needs one
    from batchsms.emulator.core import EmulatorState


@dataclass(frozen=True)
class Connection:
    provider: Provider
    emulator: EmulatorState | None  # the in-process emulator when ``sandbox: true``


def timeouts(config: ProviderConfig) -> Timeouts:
    """A request may take ``provider.timeout`` seconds; connecting at most 5."""
    return Timeouts(read=config.timeout, connect=min(5.0, config.timeout))


@asynccontextmanager
async def connect(config: ProviderConfig, environ: Mapping[str, str] | None = None,
                  max_connections: int = 100) -> AsyncIterator[Connection]:
    """Open one shared transport (an httpx client) and the provider's client on it.

    With ``sandbox: true`` the provider's emulator is mounted in process (httpx's ASGI
    transport under the same :class:`HttpxTransport` and failure classification as a real
    send): no network and no credentials. Otherwise credentials come from the environment
    (or ``provider.env_file``); a missing one is a CampaignError naming it.
    """
    module = config.provider.client_module()
    emulator: EmulatorState | None = None
    if config.sandbox:
        app, env = config.provider.emulator_module().sandbox(config)
        emulator = app.state.emulator
        limit = timeouts(config)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     timeout=limit.httpx()) as client:
            yield Connection(module.create(config, env, HttpxTransport(client)), emulator)
        return
    env = environment(config, environ)
    async with network_client(timeouts(config), max_connections) as client:
        yield Connection(module.create(config, env, HttpxTransport(client)), emulator)
