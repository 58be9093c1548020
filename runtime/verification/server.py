"""The review app's HTTP server: Python's own ``http.server``, one thread per request, on 127.0.0.1 by default.

Routes (cells by row number of ``cells.csv``, slides by index in sorted order):

=========================  =======================================================================
``GET /``                  the page (:mod:`~hema.runtime.verification.page`); ``/app.js``, ``/app.css``
``GET /api/run``           the run, its classes with their keys, and every decision so far
``GET /api/changes?since`` the decisions after a revision (the page asks every few seconds)
``GET /thumb/N``           cell N's gallery picture (JPEG); ``/image/N`` at full size (PNG)
``GET /report[?slide=N]``  the printable verified report (all slides, or slide N)
``POST /api/label``        put a cell into a class (or back to the model's); ``/api/slide``: mark verified
=========================  =======================================================================

Access: bound to 127.0.0.1 unless ``--host`` says otherwise, which needs ``--token``. With a token, every request
must carry it: the address printed at start has ``?token=...``; opening it sets an HttpOnly, SameSite=Strict
cookie and sends the browser on to ``/`` (an ``X-Hema-Token`` header works too); anything else gets 401. On a
loopback address the ``Host`` header must name it (no DNS-rebinding page can talk to the server). A change must
come as ``application/json`` with the header ``X-Hema-Review: 1``, which no form of another site can send (and no
script of another origin either: cross-origin preflights are refused). Pages are sent with a Content Security
Policy that allows nothing but this server. Only images that ``cells.csv`` lists are served, by row number and
re-encoded (:mod:`~hema.runtime.verification.images`): a path never comes from the browser.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from hema.runtime.verification.page import PAGE_CSS, PAGE_HTML, PAGE_SCRIPT
from hema.runtime.verification.session import ReviewSession
from hema.runtime.verification.settings import is_loopback

__all__ = ["ReviewServer"]

_MAX_BODY = 64 * 1024
_PICTURE = re.compile(r"/(thumb|image)/([0-9]+)")
_BASE = "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_PAGE_POLICY = f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; {_BASE}"
_REPORT_POLICY = f"default-src 'none'; style-src 'unsafe-inline'; {_BASE}"
_STATIC = {
    "/": (PAGE_HTML, "text/html; charset=utf-8"),
    "/app.js": (PAGE_SCRIPT, "text/javascript; charset=utf-8"),
    "/app.css": (PAGE_CSS, "text/css; charset=utf-8"),
}


class ReviewServer(ThreadingHTTPServer):
    """Serves one :class:`~hema.runtime.verification.session.ReviewSession` at ``settings.host:settings.port``.

    Raises:
        OSError: If the address cannot be bound (the port is taken).
    """

    daemon_threads = True

    def __init__(self, session: ReviewSession) -> None:
        self.session = session
        self.token = session.settings.token
        host = session.settings.host
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, session.settings.port), _Handler)
        self.port = self.server_address[1]
        self.cookie = f"hema_review_{self.port}"
        loopback = {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]")}
        self.hosts = loopback if is_loopback(host) else None  # None: any Host (the token guards the door)

    @property
    def url(self) -> str:
        """The address to open (with the token, when there is one)."""
        host = self.session.settings.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/" + (f"?token={quote(self.token)}" if self.token else "")


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart (delayed ACKs)
    server_version = "hema-review"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """No access log: the terminal shows the address and warnings only."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if self.server.hosts is not None and self.headers.get("Host") not in self.server.hosts:
            return self._text(HTTPStatus.FORBIDDEN, "unexpected Host header: open the address hema-infer printed")
        if method == "GET" and url.path == "/" and self.server.token and "token" in query:
            return self._login(query["token"][0])
        if not self._authorised():
            return self._text(HTTPStatus.UNAUTHORIZED, "this review needs its token: open the address it printed")
        try:
            if method == "POST":
                return self._post(url.path)
            return self._get(url.path, query)
        except (BrokenPipeError, ConnectionResetError):
            return None  # the browser went away (a page reloaded while pictures were on their way)

    def _authorised(self) -> bool:
        if not self.server.token:
            return True
        offered = [self.headers.get("X-Hema-Token", "")]
        try:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(self.server.cookie)
        except CookieError:
            morsel = None
        offered.append(morsel.value if morsel else "")
        return any(hmac.compare_digest(value.encode(), self.server.token.encode()) for value in offered if value)

    def _login(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):  # type: ignore[union-attr]
            return self._text(HTTPStatus.UNAUTHORIZED, "wrong token: open the address hema-infer printed")
        cookie = f"{self.server.cookie}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
        self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        session = self.server.session
        if path in _STATIC:
            text, kind = _STATIC[path]
            return self._send(HTTPStatus.OK, text.encode("utf-8"), kind, {"Content-Security-Policy": _PAGE_POLICY})
        if path == "/favicon.ico":
            return self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        if path == "/api/run":
            return self._json(HTTPStatus.OK, session.run_json())
        if path == "/api/changes":
            since = _number(query.get("since", ["0"])[0])
            if since is None:
                return self._json(HTTPStatus.BAD_REQUEST, {"message": "since must be a revision"})
            return self._json(HTTPStatus.OK, {"records": session.records_since(since)})
        if picture_route := _PICTURE.fullmatch(path):
            kind, cell = picture_route.group(1), _number(picture_route.group(2))
            picture = None
            if cell is not None and cell < len(session.table.cells) and session.table.cells[cell].classified:
                if kind == "image":
                    picture = session.images.full_size(cell)
                else:
                    thumbnail = session.images.thumbnail(cell)
                    picture = None if thumbnail is None else (thumbnail, "image/jpeg")
            if picture is None:
                return self._text(HTTPStatus.NOT_FOUND, "no picture of this cell")
            return self._send(HTTPStatus.OK, picture[0], picture[1], {"Cache-Control": "private, max-age=600"})
        if path == "/report":
            slide = _number(query["slide"][0]) if "slide" in query else None
            page = None if "slide" in query and slide is None else session.report_html(slide)
            if page is None:
                return self._text(HTTPStatus.NOT_FOUND, "no such slide")
            headers = {"Content-Security-Policy": _REPORT_POLICY}
            return self._send(HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8", headers)
        return self._text(HTTPStatus.NOT_FOUND, "not found")

    def _post(self, path: str) -> None:
        actions = {"/api/label": self.server.session.label, "/api/slide": self.server.session.verify}
        if path not in actions:
            return self._text(HTTPStatus.NOT_FOUND, "not found")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        if kind != "application/json" or self.headers.get("X-Hema-Review") != "1":
            return self._json(HTTPStatus.FORBIDDEN, {"saved": False, "message": "changes come from the review page"})
        length = _number(self.headers.get("Content-Length", ""))
        if length is None or length > _MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be used again
            message = f"a change needs a Content-Length of at most {_MAX_BODY} bytes"
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"saved": False, "message": message})
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return self._json(HTTPStatus.BAD_REQUEST, {"saved": False, "message": "the body must be a JSON object"})
        status, answer = actions[path](request)
        return self._json(HTTPStatus(status), answer)

    def _json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _text(self, status: HTTPStatus, message: str) -> None:
        self._send(status, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Cache-Control": "no-store", **(headers or {})}
        for name, value in {
            "Content-Type": kind,
            "Content-Length": str(len(body)),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            **headers,
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _number(text: str) -> int | None:
    """A whole number from 0 written in decimal digits, or ``None``."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None
