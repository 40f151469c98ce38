"""Per-key request rate (a token bucket kept in Redis, so every API replica shares it) and the request body size
limit (answered before the body is read whole)."""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable

import redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clr.config import MAX_JSON_DEPTH, json_depth

# KEYS: bucket. ARGV: rate (tokens per second), burst. Takes one token; returns "0", or the seconds until one is
# there (as a string: Redis turns Lua numbers into integers).
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or burst)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
tokens = math.min(burst, tokens + (now - at) * rate)
if tokens < 1 then return tostring((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return '0'
"""


class RateLimiter:
    """One token bucket per key name: `rate` requests per second, bursts of `max(rate, 1)`."""

    def __init__(self, client: redis.Redis) -> None:
        self._take = client.register_script(_TAKE)

    def wait_s(self, name: str, rate: float) -> float:
        """0 when the request may go ahead (its token taken), else the seconds until it may."""
        return float(self._take(keys=[f"clr:rate:{name}"], args=[rate, max(rate, 1.0)]))


class BodySizeLimit:
    """ASGI middleware: a request whose body exceeds `limit_for(scope)` bytes gets 413, from its `Content-Length`
    before any of it is read, or as soon as the streamed bytes pass the limit (the app then sees a disconnect)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._too_large(send, limit)
        received, started, refused = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit and not refused:
                refused = True
                if not started:
                    await self._too_large(send, limit)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not refused:
                started = started or message["type"] == "http.response.start"
                await send(message)

        await self.app(scope, counted_receive, guarded_send)

    @staticmethod
    async def _too_large(send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"The request body exceeds the limit of {limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def parsed_as_json(content_type: bytes) -> bool:
    """Whether FastAPI parses a body of this content type as JSON: `application/json` or `application/...+json`, in
    any case, with any parameters."""
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class JsonNestingLimit:
    """ASGI middleware: a JSON body nested deeper than `MAX_JSON_DEPTH` gets 422 naming the body, before any parser
    recurses into it. Bodies are bounded by `BodySizeLimit`, which must wrap this one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if scope["type"] != "http" or not parsed_as_json(content_type):
            return await self.app(scope, receive, send)
        messages = [await receive()]
        while messages[-1]["type"] == "http.request" and messages[-1].get("more_body"):
            messages.append(await receive())
        depth = json_depth(b"".join(message.get("body", b"") for message in messages))
        if depth > MAX_JSON_DEPTH:
            body = json.dumps({"detail": [{"loc": ["body"], "type": "json_nesting",
                                           "msg": f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH}",
                                           "input": None}]}).encode()
            await send({"type": "http.response.start", "status": 422, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            return await send({"type": "http.response.body", "body": body})

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
