"""200 clients that trickle bytes or sit idle stall neither server of ``fieldstation serve`` (issue 17)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from flask import Flask

from tests import readback
from tests.factories import make_channel, make_user
from tests.liveserver import SERVERS

SLOW = 200


def _open_slow_clients(host: str, port: int) -> list[socket.socket]:
    """A third send a request head a byte at a time, a third a body, a third nothing at all."""
    clients = []
    for i in range(SLOW):
        sock = socket.create_connection((host, port), timeout=5)
        if i % 3 == 0:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif i % 3 == 1:
            sock.sendall(b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nm v=")
        clients.append(sock)
    return clients


def _trickle(clients: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(0.5):
        for number, sock in enumerate(clients):
            if number % 3 != 2:
                try:
                    sock.send(b"1")
                except OSError:
                    pass


def _warm(host: str, port: int) -> None:
    """Answers from both workers, however long they take to load the app (up to 60 s)."""
    deadline = time.monotonic() + 60
    answered = 0
    while answered < 4 and time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            conn.request("GET", "/ping")
            answered += conn.getresponse().status == 204
        except OSError:
            time.sleep(0.2)
        finally:
            conn.close()


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_updates_are_stored_while_200_clients_trickle(app: Flask, server: str) -> None:
    keys = make_channel(make_user().user)
    with SERVERS[server](app, workers=2) as url:  # type: ignore[operator]
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        _warm(host, port)  # the workers have loaded the app (seconds on a loaded machine)
        clients = _open_slow_clients(host, port)
        stop = threading.Event()
        trickler = threading.Thread(target=_trickle, args=(clients, stop), daemon=True)
        trickler.start()
        try:
            time.sleep(1)  # every slow client has its connection accepted by now
            for value in range(5):
                started = time.monotonic()
                conn = http.client.HTTPConnection(host, port, timeout=2)
                conn.request("GET", f"/update?api_key={keys.write_key}&field1={value}")
                response = conn.getresponse()
                assert response.status == 200 and response.read() != b"0"
                assert response.getheader("Content-Length") is not None
                conn.close()
                assert time.monotonic() - started < 2
        finally:
            stop.set()
            trickler.join(5)
            for sock in clients:
                sock.close()
    assert readback.values_by_field(keys.id)["temperature"] == [0.0, 1.0, 2.0, 3.0, 4.0]
