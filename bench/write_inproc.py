#!/usr/bin/env python3
"""Writes in-process on SQLite or PostgreSQL: time per request and statements per request (issue #3).

No server, no load generator: each request goes through the Flask app's
``wsgi_app`` in this process, so the figures are the server's own work: wall
and CPU time per single-reading ``GET /update``, per one-point ``POST /write``
(each also through the Flask view, without the device hot path) and per
5,000-point line protocol batch, and, on PostgreSQL, the statements the server
received per request (from its log, ``log_statement = all``: each one is at least a round
trip). Quick to repeat while tuning; ``bench/ingest.py`` stays the measurement
over HTTP.

Usage: ``.venv/bin/python bench/write_inproc.py [--engine postgres] [--singles 2000]
[--batches 20] [--profile single|line] [--monitoring]``; ``--monitoring`` names a device in
every write and puts threshold rules on the channel (issue 19).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import glob
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

from batch_inproc import environ  # noqa: E402
from ingest import POINTS_PER_BATCH, line_body, prepare  # noqa: E402


def request(app: Any, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[float, float]:
    """One request through ``app.wsgi_app``; (wall, CPU) seconds. Refusals raise."""
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    wall, cpu = time.perf_counter(), time.process_time()
    reply = b"".join(app.wsgi_app(environ(method, path, body, headers), start_response))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not status[0].startswith(("200", "201", "204")) or reply == b"0":
        raise RuntimeError(f"{status[0]}: {reply[:300]!r}")
    return wall, cpu


def statements_logged(log_dir: str) -> int:
    """Statements in the throwaway cluster's log so far."""
    count = 0
    for path in glob.glob(os.path.join(log_dir, "log")):
        with open(path, encoding="utf-8", errors="replace") as log:
            count += sum(1 for line in log if "LOG:  statement:" in line or "LOG:  execute" in line)
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--singles", type=int, default=2000, help="single-reading requests")
    parser.add_argument("--batches", type=int, default=20, help="5,000-point line-protocol requests")
    parser.add_argument("--profile", choices=("single", "line"), help="cProfile this workload instead")
    parser.add_argument("--monitoring", action="store_true", help="devices named, threshold rules on (#19)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fieldstation-write-inproc-"))
    cluster = None
    if args.engine == "postgres":
        from tests.pgserver import BENCH, start_cluster

        cluster = start_cluster(BENCH)
        url = cluster.url
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    try:
        env, key, _channel = prepare(url, tmp / "instance", args.monitoring)
        os.environ.update(env)
        from fieldstation import create_app

        app = create_app()
        flask_only = create_app({"DEVICE_HOT_PATH": False})  # the same request through the Flask view
        auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()}
        mac = "&mac=bench-01" if args.monitoring else ""
        single_path = f"/update?api_key={key}&field1=21.5{mac}"
        counter = iter(range(10**9))

        def single() -> tuple[float, float]:
            return request(app, "GET", single_path, b"", {})

        def single_flask() -> tuple[float, float]:
            return request(flask_only, "GET", single_path, b"", {})

        def point() -> tuple[float, float]:  # Influx firmware's one point per request
            return request(app, "POST", f"/write?db=bench{mac}", b"climate,room=lab t=21.5", auth)

        def point_flask() -> tuple[float, float]:
            return request(flask_only, "POST", f"/write?db=bench{mac}", b"climate,room=lab t=21.5", auth)

        def line() -> tuple[float, float]:
            return request(app, "POST", f"/write?db=bench{mac}", line_body(next(counter)), auth)

        single(), single_flask(), point(), point_flask(), line()  # warm-up
        if args.profile:
            work, rounds = (single, args.singles) if args.profile == "single" else (line, args.batches)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(rounds):
                work()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return
        for name, work, rounds in (
            ("single /update", single, args.singles),
            ("  (Flask view)", single_flask, args.singles),
            ("single /write", point, args.singles),
            ("  (Flask view)", point_flask, args.singles),
            ("line 5,000", line, args.batches),
        ):
            if not rounds:
                continue
            statements = _logged_statements(cluster, work) if cluster else None
            times = [work() for _ in range(rounds)]
            wall = statistics.median(t[0] for t in times)
            cpu = statistics.median(t[1] for t in times)
            per_s = POINTS_PER_BATCH / wall if name.startswith("line") else 1 / wall
            unit = "points/s" if name.startswith("line") else "req/s"
            extra = f", {statements} statements per request" if statements is not None else ""
            print(
                f"{name:<15} wall {wall * 1000:7.3f} ms, CPU {cpu * 1000:7.3f} ms,",
                f"{per_s:10,.0f} {unit}{extra}",
            )
    finally:
        if cluster:
            cluster.stop()


def _logged_statements(cluster: Any, work: Any) -> int:
    """Statements the server logs for one call of ``work`` (log_statement = all, on briefly)."""
    import psycopg

    log_dir = os.path.dirname(cluster.datadir)
    with psycopg.connect(cluster.url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        before = statements_logged(log_dir)
        work()
        time.sleep(0.3)
        after = statements_logged(log_dir)
        conn.execute("ALTER SYSTEM RESET log_statement")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
    return after - before


if __name__ == "__main__":
    main()
