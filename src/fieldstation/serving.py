"""The production web server's command line, shared by ``fieldstation serve``, the tests and bench/.

uWSGI (the ``pyuwsgi`` wheel) is the default: its HTTP parser and worker loop
are C, so a single-reading ``/update`` spends its time in Fieldstation rather
than in the server, and it serves about twice the requests per second of
gunicorn's sync workers on two cores (README, "Performance"). It keeps the
app's header case (``Content-Length``, which the ThingSpeak Arduino library
looks for case-sensitively) and answers HTTP/1.1. Like gunicorn's sync
workers, it closes each connection after its response (``Connection: close``):
a worker waiting on an idle keep-alive connection could serve no one else.

uWSGI is an optional extra (``fieldstation[uwsgi]``): pyuwsgi has no wheel for
32-bit ARM. Without it, :func:`default_server` picks gunicorn, a pure-Python
dependency that installs everywhere.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Any

from fieldstation.errors import BadRequest

SERVERS = ("uwsgi", "gunicorn")
#: What the server imports: the application factory, as a server process runs it.
APP = "fieldstation.wsgi:served_app()"
#: What the uWSGI master imports before it forks the workers of :data:`APP`.
PRELOAD = "fieldstation.preload"


def default_server() -> str:
    """``uwsgi`` when the pyuwsgi extra is installed (or a uwsgi is on PATH), else ``gunicorn``."""
    import importlib.util

    if importlib.util.find_spec("pyuwsgi") is not None or shutil.which("uwsgi"):
        return "uwsgi"
    return "gunicorn"


#: Connections one worker reads from at once (uWSGI async cores, gunicorn worker connections);
#: more wait in the listen queue. Each costs at most HEAD_BUFFER of memory while its head arrives.
SLOW_CLIENTS = 256
#: Bodies up to this size are read into memory before the app is called under uWSGI; larger ones
#: go to a temporary file.
BODY_IN_MEMORY = 64 * 1024
#: Largest request head (request line + headers) uWSGI accepts; its default (4 KB) is too small
#: for the long query strings of a ThingSpeak update with eight fields, status and location.
HEAD_BUFFER = 65535


def server_command(
    server: str,
    host: str,
    port: int,
    workers: int,
    *,
    access_log: bool = False,
    app: str = APP,
    max_body: int = 16 * 1024 * 1024,
    slow_clients: bool = True,
) -> list[str]:
    """argv that serves ``app`` (a ``module:factory()`` spec) on ``host:port`` with ``workers`` processes.

    ``max_body`` is the app's MAX_CONTENT_LENGTH: uWSGI refuses a chunk of a chunked
    body larger than its ``chunked-input-limit`` (1 MiB by default) with a reset, so
    the limit is raised to the largest body the app accepts anyway. ``slow_clients=False``
    gives the servers' plain synchronous workers (bench/ingest.py's baseline of the issue: gunicorn
    with sync workers), which two slow clients stall.

    :raise ValueError: an unknown server name.
    """
    if server == "uwsgi":
        return [
            _uwsgi(),
            # HTTP/1.1 answers, one request per connection: a sync worker held by an idle
            # keep-alive connection (browsers, Telegraf) would stall every other client.
            "--http-socket", f"{host}:{port}", "--add-header", "Connection: close",
            "--master", "--processes", str(workers),
            "--lazy-apps",  # each worker builds its own app and database pool (none shared over fork)
            # ... from the modules the master imported once, shared copy-on-write (fieldstation.preload)
            *(("--shared-import", PRELOAD) if app == APP else ()),
            "--module", app,
            "--need-app", "--die-on-term", "--strict", "--single-interpreter",
            # A worker still loading the app misses the master's stop signal: wait for it 5 s,
            # not 60; and a worker whose master died exits instead of serving on alone.
            "--worker-reload-mercy", "5", "--no-orphans",
            "--buffer-size", str(HEAD_BUFFER),
            "--chunked-input-limit", str(max_body + 1),
            # Slow clients (issue 17): each worker reads request heads and bodies for up to
            # SLOW_CLIENTS connections at once in its C event loop (ugreen coroutines), and calls
            # the app only with the whole body read (bodies past BODY_IN_MEMORY go to a temporary
            # file), so a client trickling bytes or sitting idle holds a coroutine, not the worker.
            *(("--async", str(SLOW_CLIENTS), "--ugreen", "--post-buffering", str(BODY_IN_MEMORY))
              if slow_clients else ()),
            *(() if access_log else ("--disable-logging",)),
        ]  # fmt: skip
    if server == "gunicorn":
        return [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{host}:{port}",
            "--workers", str(workers),
            # gevent: a worker reads many requests at once and runs the app for each one complete,
            # so slow clients (issue 17) hold a greenlet, not the worker; psycopg waits cooperatively.
            *(("--worker-class", "gevent", "--worker-connections", str(SLOW_CLIENTS))
              if slow_clients else ()),
            *(("--access-logfile", "-") if access_log else ()),
            app,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}; choose one of {', '.join(SERVERS)}")


def _uwsgi() -> str:
    """The ``uwsgi`` script installed beside this Python (the pyuwsgi wheel), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "uwsgi")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("uwsgi") or "uwsgi"


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ChunkedInput:
    """Give WSGI apps the body of ``Transfer-Encoding: chunked`` requests under uWSGI.

    uWSGI's HTTP socket hands chunked bodies (Telegraf sends them) to the app
    undecoded, through its own ``uwsgi.chunked_read()`` API only; read through
    ``wsgi.input``, the body would look empty and its points would be lost.
    This reads the chunks, at most ``limit`` bytes plus one, and passes them on
    with a Content-Length, so the app's size limit applies as to any body.

    A body uWSGI cannot decode (a chunk extension, a bad or huge size, no last
    chunk) raises in ``chunked_read``; one it decodes to nothing (it reads a size
    of ``zz`` as the last chunk) would look like an empty write. Either is marked
    :data:`UNREADABLE` and left chunked, and Flask answers it 400
    (:func:`refuse_unreadable_body`) in the shape of the endpoint it was sent to.
    """

    def __init__(self, app: WsgiApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Decode a chunked body, then call the app."""
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            import uwsgi  # present inside uWSGI workers only

            body = bytearray()
            try:
                while len(body) <= self.limit:
                    chunk = uwsgi.chunked_read()
                    if not chunk:
                        break
                    body += chunk
            except OSError:
                body.clear()
            if not body:
                environ[UNREADABLE] = True
                return self.app(environ, start_response)
            environ["wsgi.input"] = io.BytesIO(bytes(body))
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)


#: WSGI environ key: the request's chunked body could not be decoded (see :class:`ChunkedInput`).
UNREADABLE = "fieldstation.unreadable_body"


def refuse_unreadable_body() -> None:
    """Flask ``before_request``: 400 for a body :class:`ChunkedInput` could not decode.

    :raise BadRequest: the body was marked unreadable.
    """
    from flask import request

    if request.environ.get(UNREADABLE):
        raise BadRequest("chunked body is malformed or empty", code="bad_body")


def adapt_to_server(wsgi_app: WsgiApp, max_body: int) -> WsgiApp:
    """The app as the running server needs it: chunked bodies decoded under uWSGI, and under
    gunicorn a body with a Content-Length read to that length only (:func:`declared_length`)."""
    try:
        import uwsgi  # noqa: F401
    except ImportError:
        return declared_length(wsgi_app) if "gunicorn" in sys.modules else wsgi_app
    return ChunkedInput(wsgi_app, max_body)


def declared_length(wsgi_app: WsgiApp) -> WsgiApp:
    """Hold a body with a Content-Length to that length: shorter is a client gone, not a body.

    gunicorn marks every body ``wsgi.input_terminated``, and werkzeug then reads
    the stream to its end instead of to the stated length; a client that sent
    half its body and hung up had that half stored (a line protocol body cut
    mid-point, a form without its last fields). Without the mark werkzeug counts
    the bytes and a short body is a 400 (``ClientDisconnected``), which stores
    nothing. Chunked bodies, which have no stated length, keep the mark.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (
            environ.get("CONTENT_LENGTH")
            and "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            environ.pop("wsgi.input_terminated", None)
        return wsgi_app(environ, start_response)

    return app
