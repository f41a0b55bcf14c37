"""Real HTTP servers for end-to-end client tests: Werkzeug's threaded server, uWSGI and gunicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from flask import Flask
from werkzeug.serving import make_server

from fieldstation.serving import server_command
from tests.pgserver import free_port


@contextmanager
def dev_server(app: Flask) -> Iterator[str]:
    """The app under Werkzeug with ``threaded=True`` (HTTP/1.1, as ``flask run``), on a free port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def uwsgi_server(app: Flask, workers: int = 1) -> AbstractContextManager[str]:
    """The app as ``fieldstation serve`` serves it: uWSGI, production config, ``app``'s database."""
    return production_server(app, "uwsgi", workers)


def gunicorn_server(app: Flask, workers: int = 1) -> AbstractContextManager[str]:
    """The app as ``fieldstation serve --server gunicorn`` serves it."""
    return production_server(app, "gunicorn", workers)


@contextmanager
def production_server(app: Flask, server: str, workers: int = 1) -> Iterator[str]:
    """``server`` running the app with the command ``fieldstation serve`` uses, on a free port."""
    with served(app, server, workers) as (url, _proc):
        yield url


@contextmanager
def served(
    app: Flask, server: str, workers: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`production_server`, and its process too (for tests that kill its workers)."""
    port = free_port()
    env = {
        **os.environ,
        "FIELDSTATION_ENV": "production",
        "FIELDSTATION_SECRET_KEY": "server-test-secret-not-for-production-0123456789",
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": app.instance_path,
    }
    limits = ("MAX_CONTENT_LENGTH", "MAX_DECOMPRESSED_LENGTH", "MAX_PARSED_BODY", "MAX_FIELDS_PER_CHANNEL")
    for name in limits:
        env[f"FIELDSTATION_{name}"] = str(app.config[name])
    env.update(extra_env or {})
    proc = subprocess.Popen(
        server_command(server, "127.0.0.1", port, workers, max_body=int(app.config["MAX_CONTENT_LENGTH"])),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, proc, server)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], server: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{server} exited: {err[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{server} did not start")


#: Every server a device may meet: ``fieldstation serve`` (uWSGI, or gunicorn) and ``flask run``.
SERVERS = {"uwsgi": uwsgi_server, "gunicorn": gunicorn_server, "werkzeug-threaded": dev_server}

#: The name the read-API tests use for the threaded development server.
serve = dev_server
