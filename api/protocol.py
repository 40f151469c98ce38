"""The API's HTTP protocol: uvicorn's httptools protocol with the limits it lacks, so that a slow or oversized
request cannot hold a connection or memory: a request's head (request line and headers) of at most `max_head_bytes`
(else 431), sent whole within `head_timeout_s` of the connection opening or the previous answer ending, and a body
that never pauses for more than `body_idle_s` (else the connection is closed and the app sees a disconnect).
Served with `uvicorn --http api.protocol:GuardedHttpToolsProtocol`."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import ApiSettings

LIMITS = ApiSettings()


class HeadTooLarge(Exception):
    """A request's head passed `max_head_bytes`: parsing stops there."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection's HTTP/1.1, with a deadline for each request head, an idle limit on each body, and a size
    limit on each head."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.deadline: asyncio.TimerHandle | None = None

    def arm(self, seconds: float) -> None:
        """Close the connection in `seconds` unless re-armed or disarmed meanwhile."""
        self.disarm()
        self.deadline = self.loop.call_later(seconds, self.time_out)

    def disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def time_out(self) -> None:
        """Close the connection, unless reading is paused because the app has not taken the body so far."""
        if self.flow.read_paused:
            return self.arm(LIMITS.body_idle_s)
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm(LIMITS.head_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        super().connection_lost(exc)

    def count_head(self, part: bytes) -> None:
        self.head_bytes += len(part)
        if self.head_bytes > LIMITS.max_head_bytes:
            raise HeadTooLarge

    def on_message_begin(self) -> None:
        self.head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self.count_head(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.count_head(name + value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.arm(LIMITS.body_idle_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.arm(LIMITS.body_idle_s)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        idle = not self.pipeline  # else the next request, received whole already, starts now
        super().on_response_complete()
        if idle and not self.transport.is_closing():
            self.arm(LIMITS.head_timeout_s)

    def send_400_response(self, msg: str) -> None:
        """httptools stops at the first parse error; a head too large is answered 431, not 400."""
        if self.head_bytes <= LIMITS.max_head_bytes:
            return super().send_400_response(msg)
        detail = f"The request's headers exceed the limit of {LIMITS.max_head_bytes} bytes".encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8"
                             b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(detail), detail))
        self.transport.close()
