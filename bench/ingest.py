#!/usr/bin/env python3
"""Ingest speed, each figure next to its baseline measured in the same run (issue #3, "Speed").

Starts Fieldstation as a user would (`fieldstation serve`'s command: uWSGI by
default, production config) on SQLite and on a throwaway PostgreSQL, drives it
from separate processes on 127.0.0.1 and prints:

- single-reading writes (ThingSpeak ``GET /update``, 16 connections): requests/s,
  p50/p99, and the ratio to a bare Flask endpoint under gunicorn with 2 sync
  workers (the issue's baseline) and under the same server as Fieldstation;
- batched writes of 5,000 points (JSON API and line protocol): points/s, and the
  ratio to raw ``executemany`` of the same rows into the same database;
- the same workloads against InfluxDB 1.x when ``influxd`` is installed.

Usage: ``.venv/bin/python bench/ingest.py`` (about a minute and a half);
``--duration 10 --batches 40`` for steadier figures; ``--engines sqlite``;
``--only batch`` or ``--only single`` skips the other workloads.
The load comes from ``wrk`` when installed (Debian package ``wrk``), else from
a Python load generator (several processes with http.client).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

POINTS_PER_BATCH = 5_000
#: Batch shape: 5 devices x 2 fields = 10 series, 500 timestamps -> 5,000 points.
DEVICES, FIELDS_PER_DEVICE, TIMES = 5, 2, 500
SECRET = "bench-secret-not-for-production-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the bare baseline app (imported by the server as `ingest:bare_app()`) ---------------------


def bare_app() -> Any:
    """A Flask endpoint that parses the same query and answers like /update, storing nothing."""
    from flask import Flask, Response, request

    app = Flask("bare")

    @app.route("/update", methods=["GET", "POST"])
    def update() -> Response:
        return Response("1" if request.args.get("api_key") else "0", mimetype="text/plain")

    return app


# -- servers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def serve(server: str, target: str, env: dict[str, str], workers: int) -> Iterator[str]:
    """``target`` served as `fieldstation serve --server SERVER` serves the app, on a free loopback port."""
    from fieldstation.serving import server_command

    port = free_port()
    command = server_command(server, "127.0.0.1", port, workers, app=target)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        command,
        env={**os.environ, **env, "PYTHONPATH": pythonpath},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


def wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((proc.stderr.read() if proc.stderr else b"").decode()[-2000:])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("server did not start")


@contextlib.contextmanager
def database(engine: str, tmp: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    from tests.pgserver import BENCH, start_cluster

    cluster = start_cluster(BENCH)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def prepare(url: str, instance: Path) -> tuple[dict[str, str], str, int]:
    """Migrate, create a user, a channel and a write key; return the server env, key and channel id."""
    env = {
        "FIELDSTATION_ENV": "production",
        "FIELDSTATION_SECRET_KEY": SECRET,
        "FIELDSTATION_DATABASE_URL": url,
        "FIELDSTATION_INSTANCE_PATH": str(instance),
    }
    os.environ.update(env)
    from flask_migrate import upgrade

    from fieldstation import create_app, manage
    from fieldstation.extensions import db
    from fieldstation.models import KeyKind

    app = create_app()
    with app.app_context():
        upgrade()
        user = manage.create_user("bench", "bench-password")
        names = [f"climate,device=esp{d:02d} f{f}" for d in range(DEVICES) for f in range(FIELDS_PER_DEVICE)]
        channel = manage.create_channel(user, "bench", fields=["single", *names])
        _, key = manage.create_key(user, KeyKind.WRITE, channel=channel)
        channel_id = channel.id
        db.session.remove()
        db.engine.dispose()
    return env, key, channel_id


# -- load ------------------------------------------------------------------------------------


def wrk(url: str, connections: int, duration: float, script: str | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rate,
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "errors": float(errors[1]) if errors else 0.0,
    }


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _py_load(args: tuple[str, str, int, float]) -> list[float]:
    """One load process: ``threads`` keep-alive clients for ``duration`` seconds; returns latencies."""
    import http.client

    host, path, threads, duration = args
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client() -> None:
        conn = http.client.HTTPConnection(*host.split(":"))
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            mine.append(time.perf_counter() - start)
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=client) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies


def single_load(host: str, path: str, connections: int, duration: float) -> dict[str, float]:
    """Single-reading load: wrk when installed, else 2 Python processes."""
    if shutil.which("wrk"):
        return wrk(f"http://{host}{path}", connections, duration)
    procs = 2
    with ProcessPoolExecutor(procs) as pool:
        parts = list(pool.map(_py_load, [(host, path, connections // procs, duration)] * procs))
    latencies = sorted(x for part in parts for x in part)
    return {
        "rps": len(latencies) / duration,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": 0.0,
    }


def batched_load(host: str, path: str, bodies: list[bytes], headers: dict[str, str], clients: int) -> float:
    """POST every body (``clients`` at a time); returns points/s."""
    import http.client

    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection(*host.split(":"), timeout=120)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                reply = response.read()
            except OSError as exc:
                failures.append(repr(exc))
                return
            if response.status not in (201, 204):
                failures.append(f"{response.status} {reply[:200]!r}")
            conn.close()
            conn = http.client.HTTPConnection(*host.split(":"), timeout=120)

    start = time.perf_counter()
    pool = [threading.Thread(target=client) for _ in range(clients)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"batched writes failed: {failures[:3]}")
    return len(bodies) * POINTS_PER_BATCH / elapsed


# -- workloads -------------------------------------------------------------------------------


def rows_of_batch(batch: int) -> Iterator[tuple[int, int, int, float]]:
    """(device, field, ts µs, value) of batch number ``batch``: 500 timestamps x 10 series."""
    base = 1_600_000_000_000_000 + batch * TIMES * 1_000_000
    for t in range(TIMES):
        for d in range(DEVICES):
            for f in range(FIELDS_PER_DEVICE):
                yield d, f, base + t * 1_000_000, 20.0 + (t % 100) / 10 + d


def line_body(batch: int) -> bytes:
    lines: dict[tuple[int, int], list[str]] = {}
    for d, f, ts, value in rows_of_batch(batch):
        lines.setdefault((d, ts), []).append(f"f{f}={value}")
    return "".join(
        f"climate,device=esp{d:02d} {','.join(fields)} {ts * 1000}\n" for (d, ts), fields in lines.items()
    ).encode()


def json_body(batch: int) -> bytes:
    entries: dict[int, dict[str, float]] = {}
    for d, f, ts, value in rows_of_batch(batch):
        entries.setdefault(ts, {})[f"climate,device=esp{d:02d} f{f}"] = value
    return json.dumps([{"time": ts, "values": values} for ts, values in entries.items()]).encode()


def raw_executemany(url: str, batches: int) -> dict[str, float]:
    """The storage ceiling: the same rows, straight into a table shaped like `readings`."""
    rows = [[(d * FIELDS_PER_DEVICE + f, ts, v) for d, f, ts, v in rows_of_batch(b)] for b in range(batches)]
    result = {}
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("DROP TABLE IF EXISTS bench_raw")
        conn.execute(
            "CREATE TABLE bench_raw (field_id INTEGER, ts BIGINT, value FLOAT, text VARCHAR(255), "
            "PRIMARY KEY (field_id, ts)) WITHOUT ROWID"
        )
        start = time.perf_counter()
        for batch in rows:
            conn.executemany("INSERT INTO bench_raw (field_id, ts, value) VALUES (?, ?, ?)", batch)
            conn.commit()
        result["executemany"] = batches * POINTS_PER_BATCH / (time.perf_counter() - start)
        conn.execute("DROP TABLE bench_raw")
        conn.close()
        return result
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        for method in ("executemany", "copy"):
            conn.execute("DROP TABLE IF EXISTS bench_raw")
            conn.execute(
                "CREATE TABLE bench_raw (field_id INTEGER, ts BIGINT, value FLOAT, text VARCHAR(255), "
                "PRIMARY KEY (field_id, ts) INCLUDE (value))"
            )
            conn.commit()
            start = time.perf_counter()
            for batch in rows:
                with conn.cursor() as cur:
                    if method == "copy":
                        with cur.copy("COPY bench_raw (field_id, ts, value) FROM STDIN") as copy:
                            for row in batch:
                                copy.write_row(row)
                    else:
                        cur.executemany(
                            "INSERT INTO bench_raw (field_id, ts, value) VALUES (%s, %s, %s)", batch
                        )
                conn.commit()
            result[method] = batches * POINTS_PER_BATCH / (time.perf_counter() - start)
        conn.execute("DROP TABLE bench_raw")
    return result


def settle() -> None:
    """Write back what earlier workloads left dirty in the page cache before the next is timed.

    Otherwise the kernel flushes, say, the SQLite section's batches while PostgreSQL's
    single readings run, and a commit that queues behind that writeback shows up in
    the next workload's p99 (stalls of 100-400 ms seen in some full runs only).
    """
    os.sync()


def run_engine(engine: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with database(engine, tmp) as url:
        env, key, channel_id = prepare(url, tmp / f"instance-{engine}")
        settle()
        single_path = f"/update?api_key={key}&field1=21.5"
        if args.only != "batch":
            for baseline in ("gunicorn", args.server) if args.server != "gunicorn" else ("gunicorn",):
                with serve(baseline, "ingest:bare_app()", env, args.workers) as host:
                    single_load(host, single_path, args.connections, 1)  # warm-up
                    out[f"bare_{baseline}"] = single_load(host, single_path, args.connections, args.duration)
        from fieldstation.serving import APP  # what `fieldstation serve` runs

        settle()
        with serve(args.server, APP, env, args.workers) as host:
            single_load(host, single_path, args.connections, 1)
            if args.only == "single":
                out["single"] = single_load(host, single_path, args.connections, args.duration)
                return out
            if args.only != "batch":
                out["single"] = single_load(host, single_path, args.connections, args.duration)
            auth = "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()
            lp = [line_body(b) for b in range(args.batches)]
            settle()
            out["line"] = batched_load(host, "/write?db=bench", lp, {"Authorization": auth}, args.clients)
            js = [json_body(args.batches + b) for b in range(args.batches)]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            out["json"] = batched_load(
                host, f"/api/v1/channels/{channel_id}/entries", js, headers, args.clients
            )
        settle()
        out["raw"] = raw_executemany(url, args.batches)
    return out


def run_influx(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    """The same workloads against InfluxDB 1.x, when `influxd` is installed."""
    influxd = shutil.which("influxd") or (os.path.exists("/usr/bin/influxd") and "/usr/bin/influxd")
    if not influxd:
        return None
    port, rpc = free_port(), free_port()
    home = tmp / "influx"
    config = home / "influxdb.conf"
    home.mkdir()
    config.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
        f'[meta]\n  dir = "{home}/meta"\n[data]\n  dir = "{home}/data"\n  wal-dir = "{home}/wal"\n'
        f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
    )
    proc = subprocess.Popen(
        [influxd, "-config", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(port, proc)
        settle()
        host = f"127.0.0.1:{port}"
        subprocess.run(
            ["curl", "-s", "-XPOST", f"http://{host}/query", "--data-urlencode", "q=CREATE DATABASE bench"]
        )
        script = home / "post.lua"
        script.write_text('wrk.method = "POST"\nwrk.body = "single v=21.5"\n')
        result: dict[str, Any] = {}
        if args.only != "batch":
            result["single"] = wrk(
                f"http://{host}/write?db=bench", args.connections, args.duration, str(script)
            )
        if args.only != "single":
            lp = [line_body(b) for b in range(args.batches)]
            result["line"] = batched_load(host, "/write?db=bench", lp, {}, args.clients)
        return result
    finally:
        proc.terminate()
        proc.wait(15)


# -- report ----------------------------------------------------------------------------------


def report(results: dict[str, Any], influx: dict[str, Any] | None, args: argparse.Namespace) -> None:
    load = "wrk -t2" if shutil.which("wrk") else "Python load generator"
    print(
        f"\nFieldstation ingest bench: {args.server} and gunicorn, {args.workers} workers, "
        f"{args.connections} connections "
        f"({load}), {args.duration:g} s runs, {args.batches} batches of {POINTS_PER_BATCH} points, "
        f"{args.clients} batch clients; {os.cpu_count()} CPUs shared with the load generator"
    )
    for engine, r in results.items():
        print(f"\n[{engine}]" + (" (fsync on, synchronous_commit off)" if engine == "postgres" else ""))
        if "single" in r:
            single = r["single"]
            print(
                f"  single reading  /update ({args.server:<8})  {single['rps']:9,.0f} req/s  "
                f"p50 {single['p50_ms']:.1f} ms  p99 {single['p99_ms']:.1f} ms  errors {single['errors']:.0f}"
            )
            for key in sorted(k for k in r if k.startswith("bare_")):
                bare, server = r[key], key.removeprefix("bare_")
                print(
                    f"  bare Flask      /update ({server:<8})  {bare['rps']:9,.0f} req/s  "
                    f"p50 {bare['p50_ms']:.1f} ms  p99 {bare['p99_ms']:.1f} ms   "
                    f"ratio single / this: {single['rps'] / bare['rps']:.2f}x"
                )
        for method, rate in r.get("raw", {}).items():
            print(f"  raw {method:<11} (same rows)  {rate:11,.0f} points/s")
        for name in ("line", "json"):
            if name in r:
                label = "line protocol" if name == "line" else "JSON API"
                print(
                    f"  batched {label:<14}       {r[name]:11,.0f} points/s   "
                    f"ratio to raw executemany {r[name] / r['raw']['executemany']:.2f}x"
                )
        if influx:
            versus = []
            if "single" in r and "single" in influx:
                versus.append(f"single {r['single']['rps'] / influx['single']['rps']:.2f}x")
            if "line" in r and "line" in influx:
                versus.append(f"line protocol {r['line'] / influx['line']:.2f}x")
            print(f"    vs InfluxDB: {', '.join(versus)}")
    if influx:
        figures = []
        if "single" in influx:
            figures.append(f"single {influx['single']['rps']:,.0f} req/s")
        if "line" in influx:
            figures.append(f"batched {influx['line']:,.0f} points/s")
        print(f"\n[influxdb] {'; '.join(figures)}")
    else:
        print("\n[influxdb] skipped: influxd is not installed (Debian package `influxdb`)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--duration", type=float, default=5, help="seconds per single-reading run")
    parser.add_argument("--batches", type=int, default=20, help="5,000-point batches per format")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--server", default="uwsgi", choices=["uwsgi", "gunicorn"], help="for Fieldstation")
    parser.add_argument("--clients", type=int, default=2, help="concurrent batch writers")
    parser.add_argument(
        "--only",
        choices=("single", "batch"),
        help="run only the single-reading or only the batched workloads",
    )
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fieldstation-bench-"))
    try:
        results = {engine: run_engine(engine, args, tmp) for engine in args.engines.split(",")}
        influx = run_influx(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, influx, args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"results": results, "influxdb": influx}, indent=2))


if __name__ == "__main__":
    main()
