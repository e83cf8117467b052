"""The network transport (httpx) over real HTTP: proxies from the environment, queries."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest
from conftest import network
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from batchsms.emulator.server import serve_in_thread
from batchsms.providers.base import Outcome
from batchsms.providers.transport import NoAnswer, Reply

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"target": request.scope.get("raw_path", b"").decode(),
                         "host": request.headers.get("host"),
                         "query": dict(request.query_params),
                         "form": dict(parse_qsl((await request.body()).decode()))})


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/{path:path}", echo,
                                                 methods=["GET", "POST"])])) as url:
        yield url


async def test_params_join_a_query_already_in_the_url(echo_url: str) -> None:
    async with network() as transport:
        reply = await transport.exchange("GET", f"{echo_url}/x?a=1",
                                         params={"b": "+45 12", "since": "2026-11-21 10:00:00"})
    assert isinstance(reply, Reply) and reply.is_success
    assert reply.headers["content-type"] == "application/json"
    assert '"query":{"a":"1","b":"+45 12","since":"2026-11-21 10:00:00"}' in reply.text


async def test_a_form_is_sent_urlencoded(echo_url: str) -> None:
    async with network() as transport:
        reply = await transport.exchange("POST", f"{echo_url}/form",
                                         data={"text": "Hi & bye", "to": "+4512"})
    assert isinstance(reply, Reply)
    assert '"form":{"text":"Hi & bye","to":"+4512"}' in reply.text


async def test_the_proxy_the_environment_names_is_used(
        echo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", echo_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with network() as transport:
        reply = await transport.exchange("GET", "http://provider.example/v4/sms")
    assert isinstance(reply, Reply) and reply.is_success
    assert '"host":"provider.example"' in reply.text


async def test_no_proxy_is_honoured(echo_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", echo_url)
    monkeypatch.setenv("NO_PROXY", "provider.invalid")
    async with network() as transport:
        answer = await transport.exchange("GET", "http://provider.invalid/v4/sms")
    assert isinstance(answer, NoAnswer)
    assert (answer.outcome, answer.name) == (Outcome.NOT_PROCESSED, "ConnectError")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://"])
async def test_an_unusable_address_fails_without_a_request(url: str) -> None:
    async with network() as transport:
        answer = await transport.exchange("POST", url, json={})
    assert isinstance(answer, NoAnswer)
    assert (answer.outcome, answer.name) == (Outcome.FAILED, "InvalidURL")
