"""Daphne's HTTP request, with bodies capped before they are buffered.

Twisted reads a whole request body (into memory under 100 KB, a temporary file above) before daphne
hands any of it to the application, and daphne then queues all of it in memory at once. A cap
applied in Django would come after both. So the cap is applied here, while Twisted reads:

- a Content-Length above the URL's limit (bodies.limit_for) is answered 413 as soon as the headers
  are in, without reading the body (an `Expect: 100-continue` client never sends it);
- a chunked body is counted as it arrives and answered 413 the moment it passes the limit.

After a 413 the connection reads and discards what the client is still sending, for a bounded
number of bytes and seconds, so that the client gets to read the answer (closing on unread data
makes the kernel reset the connection), then closes.

A chunked body that stays within its limit reaches the application with a Content-Length header
(the size is known once Twisted has it all), which Django's multipart parser needs.

Twisted also stops parsing multipart bodies itself: it would parse every multipart/form-data POST
into memory before daphne sees it (Django parses it again, streaming), and answer a body it cannot
parse with a bare, non-JSON 400 that never reaches the API's error handling.
"""

from __future__ import annotations

from typing import Any

from daphne import http_protocol

from . import bodies

# After a 413: how much more of the refused body is read and dropped, and for how long at most.
DISCARD_BYTES = 8 * 1024 * 1024
LINGER_SECONDS = 5.0


class CappedWebRequest(http_protocol.WebRequest):  # type: ignore[misc]  # daphne has no type hints
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False
        self._body_limit = 0
        self._body_seen = 0
        self._refused = False
        self._discarded = 0

    # --- Twisted's callbacks while it reads the request ---------------------------------------------
    def gotLength(self, length: int | None) -> None:
        self._path_for_limit = getattr(self.channel, "_path", b"/").split(b"?", 1)[0].decode("latin-1")
        if length is not None and length <= min(bodies.data_limit(), bodies.upload_limit()):
            # Small enough for any URL (every GET, most POSTs): no need to resolve the URL.
            self._body_limit = length
        else:
            self._body_limit = bodies.limit_for(self._path_for_limit)
        if length is not None and length > self._body_limit:
            # Twisted answers `Expect: 100-continue` right after this; the client must not be told
            # to go on sending.
            self.requestHeaders.removeHeader(b"Expect")
            super().gotLength(0)
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            self._discard(len(data))
            return
        self._body_seen += len(data)
        if self._body_seen > self._body_limit:
            self._refuse()
            self._discard(len(data))
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            # The client finished sending the refused body: the answer is out; close.
            self._close()
            return
        headers = self.requestHeaders
        if headers.hasHeader(b"Transfer-Encoding"):
            # Django's multipart parser reads nothing without a Content-Length.
            headers.removeHeader(b"Transfer-Encoding")
            headers.setRawHeaders(b"Content-Length", [b"%d" % self.content.tell()])
        super().requestReceived(command, path, version)

    # --- refusing -------------------------------------------------------------------------------------
    def _refuse(self) -> None:
        self._refused = True
        channel = self.channel
        if channel is None or channel.transport is None:
            return
        channel.transport.write(bodies.too_large_response(self._path_for_limit, self._body_limit))
        # Imported here: importing the reactor installs one, and daphne installs its asyncio reactor
        # when it starts.
        from twisted.internet import reactor

        # zope.interface: mypy reads the reactor's methods as the interface's, unbound.
        self._linger = reactor.callLater(LINGER_SECONDS, self._close)  # type: ignore[arg-type]

    def _discard(self, n: int) -> None:
        self._discarded += n
        if self._discarded > DISCARD_BYTES:
            self._close()

    def _close(self) -> None:
        linger = getattr(self, "_linger", None)
        if linger is not None and linger.active():
            linger.cancel()
        channel = self.channel
        if channel is not None and channel.transport is not None:
            channel.transport.loseConnection()


def install() -> None:
    """Make daphne build CappedWebRequest for every HTTP request (daphne looks the class up by name
    in its module each time it builds a connection's protocol)."""
    http_protocol.WebRequest = CappedWebRequest
