#!/usr/bin/env python3
"""Batched writes in-process: ms per 5,000-point request, next to raw executemany (issue #3).

No server, no load generator: each request goes through the Flask app's
``wsgi_app`` in this process, so the figure is the server's own work per batch
(parse, field names, the write, the answer) on one core. Times are CPU time of
this process (SQLite's commits in WAL mode do not wait for the disk), which
other jobs on a shared machine disturb far less than wall-clock time. The baseline is
``executemany`` of the same rows into a table shaped like ``readings`` in the
same SQLite file, run alternately with the requests. Quick to repeat while
tuning; ``bench/ingest.py`` stays the measurement over HTTP.

Usage: ``.venv/bin/python bench/batch_inproc.py [--rounds 20] [--profile line|json]``.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from ingest import FIELDS_PER_DEVICE, POINTS_PER_BATCH, json_body, line_body, prepare, rows_of_batch  # noqa: E402


def environ(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A minimal WSGI environ for one request."""
    target, _, query = path.partition("?")
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": target,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        env[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return env


def call(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> float:
    """One request through ``app.wsgi_app``; returns its duration in seconds."""
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    start = time.process_time()
    reply = b"".join(app.wsgi_app(environ(method, path, body, headers), start_response))
    elapsed = time.process_time() - start
    if not status[0].startswith(("201", "204")):
        raise RuntimeError(f"{status[0]}: {reply[:300]!r}")
    return elapsed


def raw_once(db_path: str, batch: int) -> float:
    """executemany of one batch's rows into a `readings`-shaped table, committed; seconds."""
    rows = [(d * FIELDS_PER_DEVICE + f, ts, v) for d, f, ts, v in rows_of_batch(batch)]
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_raw (field_id INTEGER, ts BIGINT, value FLOAT, text VARCHAR(255), "
        "PRIMARY KEY (field_id, ts)) WITHOUT ROWID"
    )
    conn.commit()
    start = time.process_time()
    conn.executemany("INSERT INTO bench_raw (field_id, ts, value) VALUES (?, ?, ?)", rows)
    conn.commit()
    elapsed = time.process_time() - start
    conn.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="batches per format")
    parser.add_argument("--profile", choices=("line", "json"), help="cProfile this format instead")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fieldstation-inproc-"))
    db_path = str(tmp / "bench.db")
    env, key, channel_id = prepare(f"sqlite:///{db_path}", tmp / "instance")
    os.environ.update(env)
    from fieldstation import create_app

    app = create_app()
    auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()}
    bearer = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    work: dict[str, Callable[[int], float]] = {
        "line": lambda b: call(app, "POST", "/write?db=bench", line_body(b), auth),
        "json": lambda b: call(
            app, "POST", f"/api/v1/channels/{channel_id}/entries", json_body(10_000 + b), bearer
        ),
        "raw": lambda b: raw_once(db_path, 20_000 + b),
    }
    for name, run in work.items():  # warm-up
        run(10**6 + (name == "json"))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for b in range(args.rounds):
            work[args.profile](b)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    times: dict[str, list[float]] = {name: [] for name in work}
    for b in range(args.rounds):
        for name, run in work.items():
            times[name].append(run(b))
    raw = statistics.median(times["raw"])
    print(f"{POINTS_PER_BATCH} points per batch, {args.rounds} rounds, CPU ms per batch (median, min):")
    for name, values in times.items():
        med, low = statistics.median(values), min(values)
        print(
            f"  {name:<5} {med * 1000:6.2f} ms ({low * 1000:6.2f})  {POINTS_PER_BATCH / med:9,.0f} points/s"
            f"  ratio to raw {raw / med:.2f}x"
        )


if __name__ == "__main__":
    main()
