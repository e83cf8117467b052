"""What every provider emulator shares: accounts, scripted outcomes, faults, the record.

Each provider module (``emulator/<name>.py``) builds a Starlette app on the provider's
real paths with :func:`build_app`, answering in the provider's own wire format, and
calls into one :class:`EmulatorState` for what is common:

- ``state.log_request(request)`` on every request (the request log tests assert on; it
  keeps the raw request and redacts credentials when read);
- ``state.next_fault()`` once per send request, before processing: a fault of kind
  THROTTLE / ERROR / DROP / CLOSE means "answer that way and record nothing";
  ACCEPT_THEN_ERROR / _DROP / _CLOSE / _HTML / _EMPTY and SLOW mean "record the message,
  then misbehave" (a 5xx, a dropped body, a connection closed before the status line, a
  200 HTML page or empty body: no evidence of the message)
  (:func:`refuse_before_processing` and :func:`misbehave_after_accept` give the answers);
- ``state.take_rate(account)`` for the provider's rate limit over a sliding window;
- ``state.accept(...)`` to record a message the provider accepted;
- ``state.script_for(number)`` for the outcome a test scripted for a destination;
- :func:`segment_count` for a text's segments, counted by the emulators' own code
  (``emulator/segments.py``, held to the golden vectors), not the code they referee.

The control interface (for tests and rehearsals) is mounted at ``/__emulator``:

- ``POST /__emulator/reset``
- ``POST /__emulator/accounts``  ``{"credential": "...", "balance": "10.00", ...}``
- ``POST /__emulator/scripts``   ``{"number": "+4512345678", "outcome": "fail", "error": "..."}``
- ``POST /__emulator/faults``    ``{"kind": "accept_then_error", "nth": 3}``
- ``POST /__emulator/config``    ``{"rate": {"count": 60, "per": 60}, ...}``; every emulator
  takes ``{"account_error": CODE}``: an error its documentation does not list, answered
  to every send of every account (``null`` clears it), and ``{"lookup_lag": SECONDS}``: a
  message shows in the status lookups only that long after it was accepted
- ``GET  /__emulator/records``   every accepted message
- ``GET  /__emulator/requests``  every request received (credentials redacted)
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.datastructures import URL, Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from batchsms.emulator import segments


class FaultKind(StrEnum):
    THROTTLE = "throttle"  # the provider's own throttling answer; nothing recorded
    ERROR = "error"  # a 5xx before processing; nothing recorded
    DROP = "drop"  # the connection drops before processing; nothing recorded
    ACCEPT_THEN_ERROR = "accept_then_error"  # recorded, then a 5xx
    ACCEPT_THEN_DROP = "accept_then_drop"  # recorded, then the connection drops
    SLOW = "slow"  # recorded, answered only after ``delay`` seconds
    CLOSE = "close"  # the connection closes before the status line; nothing recorded
    ACCEPT_THEN_CLOSE = "accept_then_close"  # recorded, then closed before the status line
    ACCEPT_THEN_HTML = "accept_then_html"  # recorded, then a 200 HTML page (a portal, a proxy)
    ACCEPT_THEN_EMPTY = "accept_then_empty"  # recorded, then a 200 with an empty body

    @property
    def records(self) -> bool:
        return self in {FaultKind.ACCEPT_THEN_ERROR, FaultKind.ACCEPT_THEN_DROP, FaultKind.SLOW,
                        FaultKind.ACCEPT_THEN_CLOSE, FaultKind.ACCEPT_THEN_HTML,
                        FaultKind.ACCEPT_THEN_EMPTY}


@dataclass
class Fault:
    kind: FaultKind
    nth: int | None = None  # the Nth send request from now (1-based); None: every one
    status: int = 500
    delay: float = 0.0
    times: int = 1  # how many consecutive requests from ``nth`` on


class ScriptedOutcome(StrEnum):
    DELIVER = "deliver"  # accepted, then delivered
    FAIL = "fail"  # accepted, then failed delivery with ``error``
    PENDING = "pending"  # accepted, stays pending
    REJECT = "reject"  # refused at send time with the provider error ``error``
    # processed and recorded, yet answered with the error ``error`` (Voximplant's 515
    # "the same operation has been performed recently" after it had sent the SMS)
    ACCEPT_THEN_REJECT = "accept_then_reject"


@dataclass
class Script:
    outcome: ScriptedOutcome = ScriptedOutcome.DELIVER
    error: str | None = None  # a provider error code (per provider) for FAIL / REJECT


@dataclass
class Account:
    credential: str  # the token / API key / key id / user the request authenticates with
    balance: Decimal | None = None  # None: unlimited
    daily_limit: int | None = None  # provider-specific unit (parts, requests, messages)
    senders: frozenset[str] | None = None  # None: any sender accepted
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific settings
    used_today: int = 0


@dataclass
class Record:
    """A message the emulated provider accepted (and would have billed)."""

    id: str
    to: str
    text: str
    sender: str
    segments: int
    cost: Decimal
    account: str
    at: float
    status: str
    extra: dict[str, Any] = field(default_factory=dict)


class RequestLog:
    """One request as the emulator received it; credentials are redacted when read.

    It keeps the request's raw parts (header list, query and body bytes) and redacts
    ``headers``, ``query`` and ``body`` on each read (see :func:`redact_params`), so
    logging costs the send path next to nothing. Its repr shows the redacted form only.
    """

    __slots__ = ("_body", "_raw", "at", "method")

    def __init__(self, at: float, method: str, raw: dict[str, Any], body: bytes) -> None:
        self.at = at
        self.method = method
        self._raw = raw  # the scope's "scheme", "server", "path", "query_string", "headers"
        self._body = body

    @property
    def path(self) -> str:
        return self._url().path

    @property
    def query(self) -> str:
        return redact_params(self._url().query)

    @property
    def headers(self) -> dict[str, str]:
        return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
                for k, v in Headers(raw=self._raw["headers"]).items()}

    @property
    def body(self) -> str:
        return redact_params(self._body.decode("utf-8", "replace"))

    def as_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /__emulator/requests``: at, method, path, query, headers, body."""
        return {"at": self.at, "method": self.method, "path": self.path, "query": self.query,
                "headers": self.headers, "body": self.body}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"RequestLog({fields})"

    def _url(self) -> URL:
        return URL(scope=self._raw)


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised inside :class:`DroppedResponse` once the response has started."""

    def __init__(self) -> None:
        super().__init__("server disconnected without sending a complete response")


class DroppedResponse(Response):
    """Start a response, then drop the connection before its body.

    Served by uvicorn, the connection closes mid-response and the client sees a protocol
    error; mounted in process (ASGITransport), the client sees :class:`ConnectionDropped`,
    the same ``httpx.RemoteProtocolError`` it would get from a real server.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"4096")]})
        raise ConnectionDropped()


class ClosedResponse(Response):
    """Close the connection before a status line is sent.

    Served by uvicorn, the server's transport (found behind the ``send`` callable that
    Starlette's middleware wrap) is closed, so the client reads end-of-stream where the
    status line should be (httpx: ``RemoteProtocolError: Server disconnected without
    sending a response``); mounted in process, that same httpx exception is raised.
    """

    def __init__(self) -> None:
        super().__init__(status_code=500)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        transport = _server_transport(send)
        if transport is None:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        transport.close()


def _server_transport(send: Any) -> Any:
    """The asyncio transport of uvicorn's request cycle behind ``send``, if any."""
    seen: set[int] = set()
    stack = [send]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        transport = getattr(getattr(current, "__self__", None), "transport", None)
        if transport is not None:
            return transport
        for cell in getattr(current, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if callable(value):
                stack.append(value)
    return None


_SECRET_HEADERS = {"authorization", "cookie", "x-api-key"}
_GSM_BASIC = segments.BASIC - {"\x1b"}
_SINGLE, _PART = 160, 153  # GSM-7 septets in a single segment, and in each part of several
_URL_PARTS = ("scheme", "server", "path", "query_string", "headers")
_SECRET_PARAMS = re.compile(
    r"((?:^|[&?])(?:user|username|login|key|apikey|api_key|pass|password|secret|token)=)[^&]*",
    re.IGNORECASE)  # TXTY authenticates with user + key: both are credentials


def redact_params(text: str) -> str:
    """Hide the values of credential parameters in a query string or form body."""
    return _SECRET_PARAMS.sub(r"\1<redacted>", text)


def _fresh(account: Account) -> Account:
    """A copy whose mutable parts (usage, provider extras) start over."""
    extra = {k: set(v) if isinstance(v, set) else v for k, v in account.extra.items()}
    return replace(account, extra=extra, used_today=0)


class EmulatorState:
    """The shared state of one provider emulator; safe to use from one event loop."""

    def __init__(self, provider: str, clock: Callable[[], float] = time.time,
                 default_rate: tuple[int, float] | None = None) -> None:
        self.provider = provider
        self.clock = clock
        self.default_rate = default_rate  # the provider's own limit, kept across resets
        self.seeded: dict[str, Account] = {}  # rehearsal and sandbox accounts: kept too
        self.reset()

    def seed(self, account: Account) -> None:
        """An account that every reset restores, fresh (``batchsms emulator``'s own)."""
        self.seeded[account.credential] = account
        self.accounts[account.credential] = _fresh(account)

    def reset(self) -> None:
        self.accounts: dict[str, Account] = {k: _fresh(a) for k, a in self.seeded.items()}
        self.scripts: dict[str, Script] = {}
        self.faults: list[Fault] = []
        self.records: list[Record] = []
        self.requests: list[RequestLog] = []
        self.send_requests = 0
        self.rate: tuple[int, float] | None = self.default_rate  # (count, per seconds)
        self.config: dict[str, Any] = {}
        self._window: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)

    # -- requests and faults -------------------------------------------------------
    async def log_request(self, request: Request) -> bytes:
        """Record ``request`` (its credentials redacted when read) and return its body."""
        body = await request.body()
        scope = request.scope
        raw = {key: scope[key] for key in _URL_PARTS if key in scope}
        self.requests.append(RequestLog(self.clock(), scope["method"], raw, body))
        return body

    def next_fault(self) -> Fault | None:
        """Count one send request and return the fault scheduled for it, if any."""
        self.send_requests += 1
        n = self.send_requests
        for fault in self.faults:
            if fault.nth is None or fault.nth <= n < fault.nth + fault.times:
                return fault
        return None

    def add_fault(self, fault: Fault) -> None:
        """Schedule ``fault``; ``nth`` counts send requests from now on."""
        if fault.nth is not None:
            fault.nth += self.send_requests
        self.faults.append(fault)

    def take_rate(self, account: str) -> bool:
        """Whether one more request of ``account`` fits the rate limit (sliding window)."""
        if self.rate is None:
            return True
        return self.take(account, *self.rate)

    def take(self, key: str, count: int, per: float) -> bool:
        """Whether one more request counted under ``key`` fits ``count`` per ``per`` s."""
        now = self.clock()
        window = self._window.setdefault(key, deque())
        while window and window[0] <= now - per:
            window.popleft()
        if len(window) >= count:
            return False
        window.append(now)
        return True

    # -- messages ---------------------------------------------------------------------
    def new_id(self) -> int:
        return next(self._ids)

    def script_for(self, number: str) -> Script:
        """The scripted outcome for a destination, with or without its leading '+'."""
        digits = number.lstrip("+")
        return self.scripts.get(digits) or self.scripts.get(f"+{digits}") or Script()

    def accept(self, record: Record) -> Record:
        self.records.append(record)
        return record

    def find(self, predicate: Callable[[Record], bool]) -> list[Record]:
        return [r for r in self.records if predicate(r)]

    def visible(self) -> list[Record]:
        """The records a lookup shows: those accepted at least ``config["lookup_lag"]``
        seconds ago (a provider's statistics lag behind its sends; Mailjet's by hours)."""
        lag = float(self.config.get("lookup_lag") or 0)
        if lag <= 0:
            return self.records
        now = self.clock()
        return [r for r in self.records if r.at <= now - lag]

    # -- control interface ------------------------------------------------------------
    def control_routes(self, make_account: Callable[[dict[str, Any]], Account]) -> Mount:
        """The ``/__emulator`` routes; ``make_account`` turns a JSON body into an Account."""

        async def reset(request: Request) -> Response:
            self.reset()
            return JSONResponse({"ok": True})

        async def accounts(request: Request) -> Response:
            account = make_account(await request.json())
            self.accounts[account.credential] = account
            return JSONResponse({"ok": True})

        async def scripts(request: Request) -> Response:
            body = await request.json()
            outcome = ScriptedOutcome(body.get("outcome", "deliver"))
            self.scripts[str(body["number"])] = Script(outcome, body.get("error"))
            return JSONResponse({"ok": True})

        async def faults(request: Request) -> Response:
            body = await request.json()
            self.add_fault(Fault(FaultKind(body["kind"]), body.get("nth"),
                                 int(body.get("status", 500)), float(body.get("delay", 0)),
                                 int(body.get("times", 1))))
            return JSONResponse({"ok": True})

        async def config(request: Request) -> Response:
            body = await request.json()
            if "rate" in body:
                rate = body.pop("rate")
                self.rate = None if rate is None else (int(rate["count"]), float(rate["per"]))
            self.config.update(body)
            return JSONResponse({"ok": True})

        async def records(request: Request) -> Response:
            return JSONResponse([_jsonable(asdict(r)) for r in self.records])

        async def requests(request: Request) -> Response:
            return JSONResponse([r.as_dict() for r in self.requests])

        return Mount("/__emulator", routes=[
            Route("/reset", reset, methods=["POST"]),
            Route("/accounts", _checked(accounts), methods=["POST"]),
            Route("/scripts", _checked(scripts), methods=["POST"]),
            Route("/faults", _checked(faults), methods=["POST"]),
            Route("/config", _checked(config), methods=["POST"]),
            Route("/records", records, methods=["GET"]),
            Route("/requests", requests, methods=["GET"]),
        ])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def segment_count(text: str) -> tuple[int, str]:
    """``(segments, encoding)`` of ``text``, by the emulators' own count.

    A text of GSM basic characters only (the common case) is counted directly: each is one
    grapheme of 7 bits, so 160 fit one segment and 153 each part beyond.
    """
    if _GSM_BASIC.issuperset(text):
        size = len(text)
        return (1 if size <= _SINGLE else -(-size // _PART)), segments.GSM7
    return segments.count(text)


def server_error_page(status: int) -> Response:
    """An HTML 5xx page, as a proxy in front of a provider sends one."""
    return Response(f"<html><body><h1>{status} Server Error</h1></body></html>",
                    status_code=status, media_type="text/html")


def refuse_before_processing(fault: Fault, throttled: Callable[[], Response],
                             server_error: Callable[[int], Response] = server_error_page
                             ) -> Response:
    """The answer to a fault that strikes before processing (nothing is recorded).

    THROTTLE: ``throttled()``, the provider's own throttling answer; DROP: a dropped
    connection; ERROR: ``server_error(fault.status)``, by default :func:`server_error_page`.
    """
    if fault.kind is FaultKind.THROTTLE:
        return throttled()
    if fault.kind is FaultKind.DROP:
        return DroppedResponse()
    if fault.kind is FaultKind.CLOSE:
        return ClosedResponse()
    return server_error(fault.status)


def _checked(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    """A control endpoint that answers 400 with the reason for a body it cannot use (a
    missing key, an unknown outcome or fault kind, not JSON), never a 500."""

    async def checked(request: Request) -> Response:
        try:
            return await handler(request)
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            what = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            return JSONResponse({"error": f"unusable control body: {what}"}, status_code=400)

    return checked


async def misbehave_after_accept(fault: Fault | None, respond: Response) -> Response:
    """Apply a recording fault (ACCEPT_THEN_*, SLOW) to the response of an accepted request."""
    if fault is None or not fault.kind.records:
        return respond
    if fault.kind is FaultKind.SLOW:
        await asyncio.sleep(fault.delay)
        return respond
    if fault.kind is FaultKind.ACCEPT_THEN_DROP:
        return DroppedResponse()
    if fault.kind is FaultKind.ACCEPT_THEN_CLOSE:
        return ClosedResponse()
    if fault.kind is FaultKind.ACCEPT_THEN_HTML:
        return Response("<html><body><h1>Welcome</h1><p>Sign in to continue.</p></body></html>",
                        status_code=200, media_type="text/html")
    if fault.kind is FaultKind.ACCEPT_THEN_EMPTY:
        return Response(b"", status_code=200)
    return Response("<html><body><h1>500 Internal Server Error</h1></body></html>",
                    status_code=fault.status, media_type="text/html")


def build_app(state: EmulatorState, routes: Sequence[BaseRoute],
              make_account: Callable[[dict[str, Any]], Account]) -> Starlette:
    """A Starlette app serving ``routes`` plus the control interface; ``app.state.emulator``."""
    app = Starlette(routes=[state.control_routes(make_account), *routes])
    app.state.emulator = state
    return app
