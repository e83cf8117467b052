"""How a provider client's requests reach the wire, and what comes back.

Provider clients ask one thing of the network: :meth:`Transport.exchange`, which returns
a :class:`Reply` (any HTTP answer, whatever its status) or a :class:`NoAnswer` (the
network's failure, classified by whether the request may have reached the provider). It
never raises for what the network does. Two implementations:

- :class:`AiohttpTransport`, for a real or served provider. aiohttp costs about a tenth
  of the CPU per request that httpx's async client does (measured by
  ``tests/benchmarks/bench_send.py``), which decides how fast a campaign can go;
- :class:`HttpxTransport`, over any ``httpx.AsyncClient``: the in-process sandbox
  (``httpx.ASGITransport``) and tests that look at the requests httpx builds.

The classification is the money rule: only a request that certainly never reached the
provider may be resent without asking it (THROTTLED); an unusable address is FAILED; any
other failure is UNKNOWN, because the provider may have processed it.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import aiohttp
import httpx
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from batchsms.providers.base import Outcome, Result

Params = Mapping[str, str]
_Proxy = tuple[yarl.URL | None, aiohttp.BasicAuth | None]


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer, read whole."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]  # case-insensitive
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(frozen=True)
class NoAnswer:
    """A request that got no HTTP answer, the client library's exception translated.

    ``outcome`` is THROTTLED when the request never reached the provider (connection
    refused, DNS, connect timeout: safe to resend), FAILED when the address itself is
    unusable (every request would fail: fix ``provider.base_url``), and UNKNOWN otherwise
    (read timeout, dropped connection, read or write error: it may have been processed).
    """

    outcome: Outcome
    name: str  # what happened, in httpx's words whichever library ran: e.g. "ConnectError"
    detail: str  # the name, and the library's message where it has one (may hold a secret)

    def unusable_address(self, key: int, base: str) -> Result:
        """The FAILED Result, with its stop, for an address no request can use."""
        return Result(key, Outcome.FAILED, error=f"cannot send to {base}: {self.name}",
                      stop=f"{base} is not a usable address: check provider.base_url")

    @classmethod
    def of(cls, error: BaseException, outcome: Outcome, name: str | None = None) -> NoAnswer:
        name = name or type(error).__name__
        return cls(outcome, name, f"{name}: {error}" if str(error) else name)


class Transport(Protocol):
    async def exchange(self, method: str, url: str, *, json: Any = None,
                       params: Params | None = None, data: Params | None = None,
                       headers: Params | None = None) -> Reply | NoAnswer:
        """One request: ``json`` or ``data`` (a form) as its body. Never raises for what
        the network does."""
        ...


@dataclass(frozen=True)
class Timeouts:
    """``read``: the longest wait for the provider's answer; ``connect``: to connect."""

    read: float
    connect: float


class AiohttpTransport:
    """The network transport: one aiohttp session with up to ``max_connections``.

    aiohttp never resends a POST by itself (it retries only idempotent methods on a
    stale kept-alive connection), so a failure here is reported, not hidden.
    """

    _NOT_REACHED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
    _UNUSABLE = (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError, ValueError)

    def __init__(self, timeouts: Timeouts, max_connections: int = 100) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                              sock_connect=timeouts.connect,
                                              sock_read=timeouts.read)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None], _Proxy] = {}

    async def __aenter__(self) -> AiohttpTransport:
        connector = aiohttp.TCPConnector(limit=self._max_connections,
                                         ssl=httpx.create_ssl_context())
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                              json_serialize=_compact_json)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def exchange(self, method: str, url: str, *, json: Any = None,
                       params: Params | None = None, data: Params | None = None,
                       headers: Params | None = None) -> Reply | NoAnswer:
        if self._session is None:
            raise RuntimeError("AiohttpTransport used outside 'async with'")
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        try:
            proxy, proxy_auth = self._proxy(yarl.URL(url))
            async with self._session.request(method, url, json=json, data=data, headers=headers,
                                             allow_redirects=False, proxy=proxy,
                                             proxy_auth=proxy_auth) as answer:
                content = await answer.read()
        except self._NOT_REACHED as error:
            return NoAnswer.of(error, Outcome.THROTTLED, _named(error))
        except self._UNUSABLE as error:
            return NoAnswer.of(error, Outcome.FAILED, "InvalidURL")
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            return NoAnswer.of(error, Outcome.UNKNOWN, _named(error))
        return Reply(answer.status, answer.reason or "", answer.headers, content)


    def _proxy(self, url: yarl.URL) -> _Proxy:
        """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``...) names for ``url``'s
        host, looked up once per host: aiohttp's ``trust_env`` would read the environment
        (and ``~/.netrc``) on every request, which triples its CPU per request."""
        where = (url.scheme, url.host)
        if where not in self._proxies:
            try:
                self._proxies[where] = get_env_proxy_for_url(url)
            except LookupError:
                self._proxies[where] = (None, None)
        return self._proxies[where]


class HttpxTransport:
    """A transport over an ``httpx.AsyncClient`` (the sandbox's in-process emulator)."""

    _NOT_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    _UNUSABLE = (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def exchange(self, method: str, url: str, *, json: Any = None,
                       params: Params | None = None, data: Params | None = None,
                       headers: Params | None = None) -> Reply | NoAnswer:
        try:
            answer = await self.client.request(method, url, json=json, params=params,
                                               data=data, headers=headers)
        except self._NOT_REACHED as error:
            return NoAnswer.of(error, Outcome.THROTTLED)
        except self._UNUSABLE as error:
            return NoAnswer.of(error, Outcome.FAILED)
        except httpx.HTTPError as error:
            return NoAnswer.of(error, Outcome.UNKNOWN)
        return Reply(answer.status_code, answer.reason_phrase, answer.headers, answer.content)


_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ConnectionTimeoutError, "ConnectTimeout"),
    (aiohttp.ClientConnectorError, "ConnectError"),
    (TimeoutError, "ReadTimeout"),
    (aiohttp.ServerDisconnectedError, "RemoteProtocolError"),
    (aiohttp.ClientPayloadError, "RemoteProtocolError"),
    (aiohttp.ClientResponseError, "RemoteProtocolError"),
)


def _named(error: BaseException) -> str:
    """aiohttp's exception in httpx's words, so that reports read the same either way."""
    for kind, name in _NAMES:
        if isinstance(error, kind):
            return name
    return "ReadError"


def _compact_json(value: Any) -> str:
    return jsonlib.dumps(value, ensure_ascii=False, separators=(",", ":"))
