#!/usr/bin/env python3
"""Device traffic while 200 clients trickle bytes or sit idle (issue 17, "no client can stall").

Starts Fieldstation as ``fieldstation serve`` does (uWSGI, then gunicorn; 2 workers, SQLite,
production config) and measures ``GET /ping`` and a single-reading ``GET /update``, one request
at a time from one client, first with nothing else connected (the baseline, same run), then
while 200 other connections are open: a third send a request head a byte at a time, a third a
body (``Content-Length: 100000``) a byte at a time, a third nothing. Each slow connection gets a
byte every 0.5 s. Prints p50 and p99 of each, and the p99 against the baseline's.

Usage: ``.venv/bin/python bench/slowclients.py [--requests 300] [--servers uwsgi,gunicorn]``
(about a minute).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

SLOW = 200


def slow_clients(port: int) -> list[socket.socket]:
    """Open the 200 slow connections (see the module docstring)."""
    clients = []
    for i in range(SLOW):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 3 == 0:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        elif i % 3 == 1:
            sock.sendall(b"POST /write?db=x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nm v=")
        clients.append(sock)
    return clients


def trickle(clients: list[socket.socket], stop: threading.Event) -> None:
    """A byte every 0.5 s on each connection that sends anything."""
    while not stop.wait(0.5):
        for number, sock in enumerate(clients):
            if number % 3 != 2:
                try:
                    sock.send(b"1")
                except OSError:
                    pass


def latencies(port: int, path: str, count: int) -> list[float]:
    """``count`` requests one after the other, each on a new connection (the servers close them): ms."""
    out = []
    for _ in range(count):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status >= 300:
            raise RuntimeError(f"{path}: {response.status}")
        out.append((time.perf_counter() - started) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(server: str, requests: int) -> dict[str, dict[str, list[float]]]:
    from ingest import free_port, prepare, serve, wait_for  # noqa: F401  (bench helpers)

    from fieldstation.serving import APP

    with tempfile.TemporaryDirectory(prefix="fieldstation-slow-") as tmp:
        env, key, _channel = prepare(f"sqlite:///{Path(tmp) / 'slow.db'}", Path(tmp) / "instance")
        paths = {"/ping": "/ping", "/update": f"/update?api_key={key}&field1=1"}
        results: dict[str, dict[str, list[float]]] = {"quiet": {}, "200 slow": {}}
        with serve(server, APP, env, 2) as host:
            port = int(host.rsplit(":", 1)[1])
            latencies(port, "/ping", 20)  # warm up both workers
            for name, path in paths.items():
                results["quiet"][name] = latencies(port, path, requests)
            clients = slow_clients(port)
            stop = threading.Event()
            trickler = threading.Thread(target=trickle, args=(clients, stop), daemon=True)
            trickler.start()
            try:
                time.sleep(1)
                for name, path in paths.items():
                    results["200 slow"][name] = latencies(port, path, requests)
            finally:
                stop.set()
                trickler.join(5)
                for sock in clients:
                    sock.close()
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per path and phase")
    parser.add_argument("--servers", default="uwsgi,gunicorn")
    args = parser.parse_args()
    os.environ.setdefault("FIELDSTATION_ENV", "production")
    print(f"{SLOW} slow connections; {args.requests} sequential requests per path; 2 workers, SQLite")
    for server in args.servers.split(","):
        results = run(server, args.requests)
        print(f"\n[{server}]")
        for name in ("/ping", "/update"):
            quiet, slow = results["quiet"][name], results["200 slow"][name]
            print(
                f"  {name:<8} quiet    p50 {statistics.median(quiet):6.1f} ms  p99 {p(quiet, 0.99):6.1f} ms\n"
                f"  {name:<8} 200 slow p50 {statistics.median(slow):6.1f} ms  p99 {p(slow, 0.99):6.1f} ms"
                f"  (p99 ratio slow / quiet {p(slow, 0.99) / p(quiet, 0.99):.2f}x)"
            )


if __name__ == "__main__":
    main()
