"""HTTP plumbing shared by the provider adapters: pooled clients, keys, SSE, network guard.

Adapters build a JSON body and parse a JSON payload; everything between (the pooled
``httpx.AsyncClient``, timeouts, the API key header, decoding server-sent events, and turning
every failure into the typed ``VoiceError`` family through ``_http_errors``) lives here so every
provider behaves the same way on bad input. The key never sits in a message, a repr or a log
line: it is held by :class:`Secret`, added to the request by an ``httpx.Auth`` flow and scrubbed
from any text that leaves these modules.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import httpx
import orjson

from ai_orchestration._secret import Secret, scrub_url, url_secrets
from ai_orchestration.errors import (
    AuthenticationError,
    ConfigError,
    MalformedResponseError,
    NetworkBlockedError,
    VoiceTimeoutError,
)
from ai_orchestration.voices._http_errors import (
    decode_json,
    error_fields,
    error_for_payload,
    error_for_status,
    is_error_envelope,
    transport_error,
)
from ai_orchestration.voices._identity import VoiceIdentity
from ai_orchestration.voices._types import (
    Usage,
    VoiceRequest,
    VoiceResponse,
    VoiceSettings,
    estimate_input_tokens,
)
from ai_orchestration.voices.pricing import PriceTable

__all__ = [
    "ASSUMED_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUT",
    "ApiKey",
    "HttpClientPool",
    "HttpSession",
    "HttpVoice",
    "Secret",
    "SseDecoder",
    "SseEvent",
    "aclose_http_clients",
    "is_loopback",
    "network_guard",
]

DEFAULT_TIMEOUT: Final = 60.0
#: Output tokens a budget reserves for a call that sets no ``max_tokens``.
ASSUMED_OUTPUT_TOKENS: Final = 1024
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
_T = TypeVar("_T")


# --- secrets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKey:
    """Where a voice's key comes from: an explicit value, else an environment variable.

    The environment is read at call time, so a voice rebuilt on another machine (Ray) uses
    that machine's key. ``required`` keys that are missing fail the call with
    ``AuthenticationError`` naming the variable, never a value.
    """

    header: str
    prefix: str = ""
    value: Secret | None = None
    env: str | None = None
    required: bool = True

    @classmethod
    def given(
        cls,
        header: str,
        api_key: str | Secret | None,
        env: str | None,
        *,
        prefix: str = "",
        required: bool = True,
    ) -> ApiKey:
        """``api_key`` when given, else the ``env`` variable read at call time."""
        value = api_key if isinstance(api_key, Secret) else Secret(api_key or "")
        return cls(header, prefix, value or None, env, required)

    def resolve(self, voice: str) -> Secret | None:
        if self.value is not None:
            return self.value
        raw = os.environ.get(self.env) if self.env else None
        if raw:
            return Secret(raw)
        if self.required:
            where = f"set the {self.env} environment variable or " if self.env else ""
            raise AuthenticationError(f"no API key: {where}pass api_key=", voice=voice)
        return None


class _KeyAuth(httpx.Auth):
    """Adds the secret headers (the key, and headers given as ``Secret``s) inside httpx, so no
    frame of ours holds a headers dict with them."""

    def __init__(self, headers: tuple[tuple[str, str, Secret], ...]) -> None:
        self._headers = headers  # (name, prefix, secret)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for header, prefix, secret in self._headers:
            request.headers[header] = prefix + secret.reveal()
        yield request

    def __repr__(self) -> str:
        return f"_KeyAuth({[h for h, _, _ in self._headers]!r})"


# --- network guard -------------------------------------------------------------------------


_guard_depth = 0


@contextmanager
def network_guard() -> Iterator[None]:
    """Make every adapter request to a non-loopback host raise ``NetworkBlockedError``.

    Process-wide (it covers tasks and threads), nestable. Requests through an
    ``httpx.MockTransport`` never leave the process and are always allowed.

    >>> with network_guard():
    ...     pass
    """
    global _guard_depth
    _guard_depth += 1
    try:
        yield
    finally:
        _guard_depth -= 1


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- pooled clients ------------------------------------------------------------------------


class HttpClientPool:
    """Pooled ``httpx.AsyncClient`` s, one per (event loop, transport), closed by their owner.

    A client's connections belong to the loop that opened them, so a process that runs several
    loops (the sync facade) must not share one across loops. An ``AiOrchestration`` owns one
    pool and makes it current for its runs (``using``); outside any owner the process-wide
    default pool serves, closed by ``aclose_http_clients``.
    """

    __slots__ = ("_clients",)

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[int, httpx.AsyncClient]
        ] = weakref.WeakKeyDictionary()

    def client_for(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        per_loop = self._clients.get(loop)
        if per_loop is None:
            per_loop = self._clients[loop] = {}
        key = id(transport) if transport is not None else 0
        client = per_loop.get(key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(transport=transport, limits=_LIMITS, timeout=DEFAULT_TIMEOUT)
            per_loop[key] = client
        return client

    async def aclose(self) -> None:
        """Close this pool's clients of the running event loop (and their connections)."""
        per_loop = self._clients.pop(asyncio.get_running_loop(), {})
        for client in per_loop.values():
            await client.aclose()

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """The event loops this pool holds clients for."""
        return list(self._clients.keys())

    @contextmanager
    def using(self) -> Iterator[None]:
        """Make this pool the one HTTP voices take clients from, in this context (and the
        tasks it starts)."""
        token = _current_pool.set(self)
        try:
            yield
        finally:
            _current_pool.reset(token)


_default_pool = HttpClientPool()
_current_pool: ContextVar[HttpClientPool] = ContextVar("ai_orch_http_pool", default=_default_pool)


def _client_for(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    return _current_pool.get().client_for(transport)


async def aclose_http_clients() -> None:
    """Close the default pool's clients of the running event loop (call before the loop ends)."""
    await _default_pool.aclose()


# --- server-sent events --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched server-sent event: its type (``message`` unless named) and data."""

    event: str
    data: str


class SseDecoder:
    """Incremental SSE decoder (the WHATWG algorithm, minus ``id``/``retry``) fed line by line.

    >>> d = SseDecoder()
    >>> [d.feed(x) for x in ("event: ping", "data: {}", "")][-1]
    SseEvent(event='ping', data='{}')
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    @property
    def pending(self) -> bool:
        """True when an event was started but never terminated by a blank line."""
        return bool(self._data)


# --- the session ---------------------------------------------------------------------------


class HttpSession:
    """How one voice talks HTTP: base URL, key, fixed headers, timeout, optional transport.

    Holds configuration only; the live client comes from the per-loop pool on each call, so a
    voice pickles and can be rebuilt elsewhere.
    """

    __slots__ = (
        "_headers",
        "_loopback",
        "_query",
        "_root",
        "_secret_headers",
        "_shown",
        "_url_secrets",
        "base_url",
        "key",
        "provider",
        "timeout",
        "transport",
        "voice",
    )

    def __init__(
        self,
        *,
        voice: str,
        provider: str,
        base_url: str,
        key: ApiKey | None,
        headers: Mapping[str, str | Secret] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout}", field="timeout")
        self.voice, self.provider = voice, provider
        self.base_url = base_url.rstrip("/")
        root, _, self._query = self.base_url.partition("?")  # a query goes after the path
        self._root = root.rstrip("/")
        self._shown = scrub_url(self.base_url)  # what messages and reprs may show
        self.key, self.timeout, self.transport = key, timeout, transport
        given = dict(headers or {})
        # Header values given as Secrets (config options named like credentials) stay secret
        # until httpx builds the request; they and the base URL's credentials are scrubbed
        # from anything shown, as the key is.
        self._secret_headers = tuple((k, "", v) for k, v in given.items() if isinstance(v, Secret))
        plain = {k: v for k, v in given.items() if isinstance(v, str)}
        self._headers = {"content-type": "application/json", **plain}
        self._url_secrets = url_secrets(self.base_url)
        self._loopback = isinstance(transport, httpx.MockTransport) or is_loopback(
            urlsplit(self.base_url).hostname
        )

    def __repr__(self) -> str:
        return f"HttpSession({self.provider!r}, {self._shown!r})"

    @property
    def shown_url(self) -> str:
        """The base URL without credentials (user info, secret query values masked)."""
        return self._shown

    def _url(self, path: str) -> str:
        if not self._query:
            return self._root + path
        return self._root + path + ("&" if "?" in path else "?") + self._query

    def _prepare(self) -> tuple[httpx.Auth | None, tuple[str, ...]]:
        if _guard_depth and not self._loopback:
            host = urlsplit(self.base_url).hostname
            raise NetworkBlockedError(
                f"network guard: refusing a request to non-loopback host {host!r}",
                voice=self.voice,
            )
        secret = self.key.resolve(self.voice) if self.key is not None else None
        headers = self._secret_headers
        if secret is not None and self.key is not None:
            headers = ((self.key.header, self.key.prefix, secret), *headers)
        scrubbed = tuple(s.reveal() for _, _, s in headers) + self._url_secrets
        return (_KeyAuth(headers) if headers else None), scrubbed

    def _where(self) -> str:
        return f"{self.provider} at {self._shown}"

    def _decode(self, body: bytes, secrets: tuple[str, ...]) -> Any:
        """The JSON in ``body``; an error envelope raises its typed error, with keys scrubbed.
        A key the provider echoes back in its answer is taken out here, before parsing."""
        for secret in secrets:
            if secret and secret.encode() in body:
                body = body.replace(secret.encode(), b"[REDACTED]")
        payload = decode_json(body, voice=self.voice, provider=self.provider, secrets=secrets)
        if is_error_envelope(payload):
            raise error_for_payload(
                payload, voice=self.voice, provider=self.provider, secrets=secrets
            )
        return payload

    async def post_json(self, path: str, body: Any, *, limit_s: float | None = None) -> Any:
        """POST ``body`` as JSON and return the decoded JSON answer, or raise a typed error."""
        auth, secrets = self._prepare()
        limit = limit_s or self.timeout
        client = _client_for(self.transport)
        try:
            async with asyncio.timeout(limit):
                resp = await client.post(
                    self._url(path),
                    content=orjson.dumps(body),
                    headers=self._headers,
                    auth=auth or httpx.USE_CLIENT_DEFAULT,
                    timeout=limit,
                )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise transport_error(
                exc, voice=self.voice, where=self._where(), secrets=secrets
            ) from exc
        if resp.status_code >= 400:
            raise error_for_status(
                resp.status_code,
                resp.content,
                resp.headers,
                voice=self.voice,
                provider=self.provider,
                secrets=secrets,
            )
        return self._decode(resp.content, secrets)

    async def post_parsed(
        self,
        path: str,
        body: Any,
        parse: Callable[[Any, float], _T],
        *,
        limit_s: float | None = None,
    ) -> _T:
        """:meth:`post_json`, then ``parse(payload, latency_s)``; a payload of an unexpected shape
        (``parse`` raising ``KeyError``, ``TypeError``…) is a ``MalformedResponseError``."""
        started = time.perf_counter()
        payload = await self.post_json(path, body, limit_s=limit_s)
        latency = time.perf_counter() - started
        try:
            return parse(payload, latency)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise MalformedResponseError(
                f"{self.provider} answer has an unexpected shape ({exc!r})", voice=self.voice
            ) from None

    async def stream_json(
        self, path: str, body: Any, *, limit_s: float | None = None
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """POST ``body`` and yield ``(event type, decoded JSON data)`` per server-sent event.

        ``[DONE]`` passes through as that string; an error object in the stream raises its typed
        error. ``limit_s`` (default: the session timeout) bounds the whole stream, not only each
        read. A stream cut mid-event raises ``MalformedResponseError``.
        """
        auth, secrets = self._prepare()
        limit = limit_s or self.timeout
        client = _client_for(self.transport)
        try:
            async with client.stream(
                "POST",
                self._url(path),
                content=orjson.dumps(body),
                headers=self._headers,
                auth=auth or httpx.USE_CLIENT_DEFAULT,
                timeout=limit,
            ) as resp:
                await self._check_stream_start(resp, secrets)
                async with aclosing(self._events(resp, limit)) as events:
                    async for event in events:
                        if event.data == "[DONE]":
                            yield event.event, "[DONE]"
                        else:
                            yield event.event, self._decode(event.data.encode(), secrets)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise transport_error(
                exc, voice=self.voice, where=self._where(), secrets=secrets
            ) from exc

    async def _events(self, resp: httpx.Response, limit: float) -> AsyncGenerator[SseEvent, None]:
        deadline = time.monotonic() + limit
        decoder = SseDecoder()
        async with aclosing(cast("AsyncGenerator[str, None]", resp.aiter_lines())) as lines:
            while True:
                try:  # the deadline covers the whole stream, however slowly it trickles
                    async with asyncio.timeout(deadline - time.monotonic()):
                        line = await anext(lines)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise VoiceTimeoutError(
                        f"stream from {self._where()} exceeded {limit}s", voice=self.voice
                    ) from None
                event = decoder.feed(line)
                if event is not None:
                    yield event
        if decoder.pending:
            raise MalformedResponseError(
                f"{self.provider} stream ended mid-event", voice=self.voice
            )

    async def _check_stream_start(self, resp: httpx.Response, secrets: tuple[str, ...]) -> None:
        if resp.status_code >= 400:
            body = await resp.aread()
            raise error_for_status(
                resp.status_code,
                body,
                resp.headers,
                voice=self.voice,
                provider=self.provider,
                secrets=secrets,
            )
        ctype = resp.headers.get("content-type", "")
        if "text/event-stream" in ctype:
            return
        payload = self._decode(await resp.aread(), secrets)  # raises on an error object
        if error_fields(payload)[0]:  # an error object in another shape
            raise error_for_payload(
                payload, voice=self.voice, provider=self.provider, secrets=secrets
            )
        raise MalformedResponseError(
            f"{self.provider} answered {ctype or 'no content type'} instead of an event stream",
            voice=self.voice,
        )


class HttpVoice:
    """Base of the HTTP adapters: a name, a model and the session that reaches it."""

    model: str
    settings: VoiceSettings
    prices: PriceTable
    _name: str
    _http: HttpSession

    @property
    def name(self) -> str:
        return self._name

    @property
    def identity(self) -> VoiceIdentity:
        """Provider, model and the endpoint without credentials (what circuits are keyed by)."""
        return VoiceIdentity(self._http.provider, self.model, self._http.shown_url)

    def estimate_usage(self, request: VoiceRequest) -> Usage:
        """The most a call may use, at list price, for budgets to reserve before it starts:
        the request's tokens (~4 characters each) and its output limit (``max_tokens``, else
        ``ASSUMED_OUTPUT_TOKENS``)."""
        output = request.settings.max_tokens or self.settings.max_tokens or ASSUMED_OUTPUT_TOKENS
        return self._priced(estimate_input_tokens(request), output)

    def _priced(self, input_tokens: int, output_tokens: int) -> Usage:
        return self.prices.usage(
            self.model, input_tokens, output_tokens, provider=self._http.provider
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, model={self.model!r}, "
            f"base_url={self._http.shown_url!r})"
        )

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        """One plain (non-streaming) call: build the body, POST it, parse the answer."""
        body, limit = self._body(request, stream=False)
        return await self._http.post_parsed(
            self._respond_path(),
            body,
            lambda payload, latency: self._parse(payload, request, latency),
            limit_s=limit,
        )

    # What each adapter supplies: its endpoint, request body (and time limit), and parser.

    def _respond_path(self) -> str:
        raise NotImplementedError

    def _body(self, request: VoiceRequest, *, stream: bool) -> tuple[dict[str, Any], float | None]:
        raise NotImplementedError

    def _parse(self, payload: Any, request: VoiceRequest, latency: float) -> VoiceResponse:
        raise NotImplementedError
