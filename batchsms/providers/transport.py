"""How a provider client's requests reach the wire, and what comes back.

Provider clients ask one thing of the network: :meth:`Transport.exchange`, which returns
a :class:`Reply` (any HTTP answer, whatever its status) or a :class:`NoAnswer` (the
network's failure, classified by whether the request may have reached the provider). It
never raises for what the network does; anything else it raises is a bug and propagates.

There is one implementation, :class:`HttpxTransport`, over an ``httpx.AsyncClient``: the
network for real sends and rehearsals, ``httpx.ASGITransport`` for the in-process sandbox.
So the sandbox goes through the same request code and the same failure classification as
a real send. httpx was kept over aiohttp by measurement (``tests/benchmarks/bench_send.py
--latency``, README "Speed"): at 20-50 ms of latency both reach the same rate, which the
provider's limit, not our CPU, decides.

The classification is the money rule: only a request that certainly never reached the
provider may be resent without asking it (NOT_PROCESSED); a connection that could not be
made at all carries ``unreachable`` (the run stops and names it); an unusable address is
FAILED; any failure after the request may have left (read or write error, read timeout,
a connection closed before or during the answer) is UNKNOWN.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from batchsms.providers.base import Outcome, Result

Params = Mapping[str, str]


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
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(frozen=True)
class NoAnswer:
    """A request that got no HTTP answer, the client library's exception translated.

    ``outcome`` is NOT_PROCESSED when the request never reached the provider (connection
    refused, DNS, TLS, connect timeout, no free connection: safe to resend), FAILED when
    the address itself is unusable (every request would fail: fix ``provider.base_url``),
    and UNKNOWN otherwise (read timeout, dropped connection, read or write error: it may
    have been processed). ``unreachable`` says why a connection could not be made
    ("connection refused", "DNS lookup failed"...), None for any other failure.
    """

    outcome: Outcome
    name: str  # what happened, in httpx's words: e.g. "ConnectError"
    detail: str  # the name, and the library's message where it has one (may hold a secret)
    unreachable: str | None = None
    where: str = ""  # HOST:PORT of the request

    @classmethod
    def of(cls, error: BaseException, outcome: Outcome, unreachable: str | None = None,
           where: str = "") -> NoAnswer:
        name = type(error).__name__
        return cls(outcome, name, f"{name}: {error}" if str(error) else name, unreachable,
                   where)

    def result(self, key: int, title: str, base: str, secret: str = "") -> Result:
        """The Result of one message whose request got no answer from ``title`` at ``base``
        (``secret`` is hidden from the library's message).

        A connection that could not be made stops the run (every later request would fail
        the same way) with the message pending; an unusable address stops it too.
        """
        if self.outcome is Outcome.FAILED:
            return Result(key, Outcome.FAILED, error=f"cannot send to {base}: {self.name}",
                          stop=f"{base} is not a usable address: check provider.base_url")
        if self.unreachable is not None:
            return Result(key, Outcome.NOT_PROCESSED,
                          error=f"cannot connect to {self.where} ({self.unreachable})",
                          stop=f"cannot connect to {self.where} ({self.unreachable}): is the "
                               "server running? check provider.base_url")
        if self.outcome is Outcome.NOT_PROCESSED:
            return Result(key, self.outcome, error=f"{title} not reached: {self.name}")
        detail = self.detail.replace(secret, "<redacted>") if secret else self.detail
        return Result(key, self.outcome, error=f"no complete answer from {title} ({detail}): "
                                               "the request may have been processed")


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

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(self.read, connect=self.connect, pool=None)


def network_client(timeouts: Timeouts, max_connections: int = 100) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` of real sends: no redirects followed, proxies from the
    environment (``HTTPS_PROXY``, ``NO_PROXY``), ``max_connections`` at most."""
    limits = httpx.Limits(max_connections=max_connections,
                          max_keepalive_connections=max_connections)
    return httpx.AsyncClient(timeout=timeouts.httpx(), limits=limits, follow_redirects=False)


class HttpxTransport:
    """The transport over an ``httpx.AsyncClient`` (the network, or an ASGI app in process).

    httpx never resends a request by itself (``retries`` is 0), so a failure here is
    reported, not hidden. Only httpx's transport errors are caught: the three kinds
    below, by what they prove about the request.
    """

    # raised before a byte of the request left: connecting, TLS, waiting for a connection
    _NOT_REACHED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    _UNUSABLE = (httpx.UnsupportedProtocol, httpx.InvalidURL)
    # raised once the request may have left: it may have been processed
    _MAYBE_PROCESSED = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError,
                        httpx.WriteError, httpx.RemoteProtocolError, httpx.LocalProtocolError,
                        httpx.CloseError, httpx.ProxyError, httpx.DecodingError)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def exchange(self, method: str, url: str, *, json: Any = None,
                       params: Params | None = None, data: Params | None = None,
                       headers: Params | None = None) -> Reply | NoAnswer:
        try:
            target = httpx.URL(url).copy_merge_params(params) if params else url
            answer = await self.client.request(method, target, json=json, data=data,
                                               headers=headers, follow_redirects=False)
        except self._NOT_REACHED as error:
            unreachable = None if isinstance(error, httpx.PoolTimeout) else _why(error)
            return NoAnswer.of(error, Outcome.NOT_PROCESSED, unreachable, _where(url))
        except self._UNUSABLE as error:
            return NoAnswer(Outcome.FAILED, "InvalidURL", f"InvalidURL: {error}", None,
                            _where(url))
        except self._MAYBE_PROCESSED as error:
            return NoAnswer.of(error, Outcome.UNKNOWN, where=_where(url))
        return Reply(answer.status_code, answer.reason_phrase, answer.headers, answer.content)


def _where(url: str) -> str:
    """HOST:PORT of ``url`` (the default port of its scheme when it names none)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{parsed.host}:{port}"


_ERRNO_NAMES = {errno.ECONNREFUSED: "connection refused", errno.ENETUNREACH: "network unreachable",
                errno.EHOSTUNREACH: "host unreachable", errno.ECONNRESET: "connection reset",
                errno.ETIMEDOUT: "connection timed out"}


def _why(error: httpx.TransportError) -> str:
    """Why a connection could not be made, from the OS error under httpx's (and httpcore's)."""
    if isinstance(error, httpx.ConnectTimeout):
        return "connection timed out"
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return f"TLS failure: {getattr(cause, 'reason', None) or cause}"
        if isinstance(cause, socket.gaierror):
            return "DNS lookup failed"
        if isinstance(cause, OSError) and cause.errno in _ERRNO_NAMES:
            return _ERRNO_NAMES[cause.errno]
        cause = cause.__cause__ or cause.__context__
    text = str(error)
    for needle, name in (("Connection refused", "connection refused"),
                         ("Name or service not known", "DNS lookup failed"),
                         ("nodename nor servname", "DNS lookup failed"),
                         ("Temporary failure in name resolution", "DNS lookup failed"),
                         ("SSL", "TLS failure"), ("unreachable", "unreachable")):
        if needle in text:
            return name
    return text or "connection failed"
