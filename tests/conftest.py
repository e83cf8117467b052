from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Done, Served, served_emulator
from helpers.sending import Rehearsal, rehearsal

from batchsms.providers.transport import HttpxTransport, Timeouts, network_client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own registry of journals (never the user's real one)."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("BATCHSMS_STATE_DIR", str(folder))
    return folder


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def campaign_dir(tmp_path: Path):
    """Write a small working campaign into tmp_path; returns a function to (re)write parts."""

    def write(*, yaml: str | None = None, sheet: str | None = None,
              template: str | None = None, sheet_name: str = "contacts.csv") -> Path:
        if sheet is not None:
            (tmp_path / sheet_name).write_text(sheet, encoding="utf-8")
        if template is not None:
            (tmp_path / "template.txt").write_text(template, encoding="utf-8")
        path = tmp_path / "campaign.yaml"
        if yaml is not None:
            path.write_text(yaml, encoding="utf-8")
        return path

    return write


@asynccontextmanager
async def network(read: float = 2.0, connect: float = 1.0) -> AsyncIterator[HttpxTransport]:
    """The transport real sends use, with short timeouts for tests."""
    async with network_client(Timeouts(read=read, connect=connect)) as client:
        yield HttpxTransport(client)


@asynccontextmanager
async def over_httpx(**options: Any) -> AsyncIterator[HttpxTransport]:
    """A transport over an ``httpx.AsyncClient(**options)`` (mock, ASGI or event hooks)."""
    async with httpx.AsyncClient(**options) as client:
        yield HttpxTransport(client)


@pytest.fixture
async def http() -> AsyncIterator[HttpxTransport]:
    """The transport real sends use."""
    async with network() as transport:
        yield transport


@pytest.fixture
def outgoing() -> list[httpx.Request]:
    return []


@pytest.fixture
async def hooked(outgoing: list[httpx.Request]) -> AsyncIterator[HttpxTransport]:
    """Over httpx, which shows the requests it builds (in ``outgoing``)."""
    async def keep(request: httpx.Request) -> None:
        outgoing.append(request)

    async with over_httpx(timeout=httpx.Timeout(2.0, connect=1.0),
                          event_hooks={"request": [keep]}) as transport:
        yield transport


@pytest.fixture(scope="module")
def served_mailjet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_emulator(tmp_path_factory.mktemp("emulator")) as served:
        yield served


@pytest.fixture
def sms_emulator(served_mailjet: Served) -> Served:
    """``batchsms emulator`` served on 127.0.0.1, reset, with two real Mailjet accounts."""
    return served_mailjet.reset()


@pytest.fixture
def batchsms_cli(monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """``batchsms ARGS`` in this process (as ``helpers.run`` does in a child, only faster):
    from working folder ``cwd``, with ``env`` as the only Mailjet credentials."""
    from batchsms.cli.commands import main

    def call(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Done:
        with monkeypatch.context() as patch:
            patch.chdir(cwd)
            for name in ("MAILJET_SMS_TOKEN", *(env or {})):
                patch.delenv(name, raising=False)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            capsys.readouterr()
            code = main(args)
            out, err = capsys.readouterr()
        return Done(int(code), out, err)

    return call


# -- the served emulators, for the end-to-end send tests ------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rehearsal]:
    with rehearsal(tmp_path_factory.mktemp("emulator")) as served:
        yield served


@pytest.fixture
def emulators(served: Rehearsal) -> Rehearsal:
    return served.reset()


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    return tmp_path / "reports"


