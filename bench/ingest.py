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

Every server stays up for the whole engine, and the workloads run in rounds
(``--rounds``, 3), each round visiting every server in turn: the rate of the
same code drifts by a quarter within minutes on a shared machine, so each ratio
is taken within a round and the bench prints the rounds' medians with their
range. InfluxDB gets a moment to finish compacting after each of its runs.

``--monitoring`` turns on what issue 19 adds to every write: the writes name devices
(devices seen), the channel has threshold rules on the fields written, and
``fieldstation worker`` runs beside the server, judging them every second.

Usage: ``.venv/bin/python bench/ingest.py`` (about two minutes);
``--duration 6 --batches 40`` for steadier figures; ``--engines sqlite``;
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

POINTS_PER_BATCH = 5_000
#: Batch shape: 5 devices x 2 fields = 10 series, 500 timestamps -> 5,000 points.
DEVICES, FIELDS_PER_DEVICE, TIMES = 5, 2, 500
SECRET = "bench-secret-not-for-production-0123456789"
#: Fieldstation's DURABILITY in this run (``--durability``); the raw baselines sync alike.
DURABILITY = "power-loss"


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


#: What ``fieldstation serve`` runs (the other targets are the bare baseline apps).
APP_TARGET = "fieldstation.serving:served_app()"


@contextlib.contextmanager
def serve(server: str, target: str, env: dict[str, str], workers: int) -> Iterator[str]:
    """``target`` served as `fieldstation serve --server SERVER` serves the app, on a free loopback port."""
    from fieldstation.serving import server_command

    port = free_port()
    # The bare baseline under gunicorn is the issue's: sync workers, as before slow clients were handled.
    plain = target != APP_TARGET and server == "gunicorn"
    command = server_command(server, "127.0.0.1", port, workers, app=target, slow_clients=not plain)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "bench"), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        command,
        env={**os.environ, **env, "PYTHONPATH": pythonpath},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(port, proc)
        answered(f"127.0.0.1:{port}", "/ping")
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


def prepare(url: str, instance: Path, monitoring: bool = False) -> tuple[dict[str, str], str, int]:
    """Migrate, create a user, a channel and a write key; return the server env, key and channel id."""
    env = {
        "FIELDSTATION_ENV": "production",
        "FIELDSTATION_SECRET_KEY": SECRET,
        "FIELDSTATION_DATABASE_URL": url,
        "FIELDSTATION_INSTANCE_PATH": str(instance),
        "FIELDSTATION_DURABILITY": DURABILITY,
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
        if monitoring:  # a threshold rule on the single-reading field and on a batch field
            from fieldstation.alerts import rules
            from fieldstation.timeunits import now_us

            for field in ("single", names[0]):
                rules.create_rule(
                    channel, now_us(), name=f"{field} high", kind="threshold", field=field, op="above",
                    threshold=1e6, for_s=60,
                )  # fmt: skip
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
        conn.execute(f"PRAGMA synchronous={'FULL' if DURABILITY == 'power-loss' else 'NORMAL'}")
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

    sync = "on" if DURABILITY == "power-loss" else "off"
    with psycopg.connect(
        url.replace("postgresql+psycopg", "postgresql"), options=f"-c synchronous_commit={sync}"
    ) as conn:
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


@contextlib.contextmanager
def maintenance_worker(env: dict[str, str]) -> Iterator[None]:
    """``fieldstation worker`` on the bench's database, judging the rules every second."""
    command = [str(Path(sys.executable).with_name("fieldstation")), "worker"]
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)


def settle() -> None:
    """Write back what earlier workloads left dirty in the page cache before the next is timed.

    Otherwise the kernel flushes, say, the SQLite section's batches while PostgreSQL's
    single readings run, and a commit that queues behind that writeback shows up in
    the next workload's p99 (stalls of 100-400 ms seen in some full runs only).
    """
    os.sync()


def run_engine(engine: str, args: argparse.Namespace, tmp: Path, influx: Influx | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with database(engine, tmp) as url:
        env, key, channel_id = prepare(url, tmp / f"instance-{engine}", args.monitoring)
        settle()
        from fieldstation.serving import APP  # what `fieldstation serve` runs

        with contextlib.ExitStack() as servers:
            host = servers.enter_context(serve(args.server, APP, env, args.workers))
            mac = "&mac=bench-01" if args.monitoring else ""
            if args.monitoring:
                servers.enter_context(maintenance_worker(env))
            if args.only != "batch":
                targets = {"single": f"{host}/update?api_key={key}&field1=21.5{mac}"}
                for baseline in ("gunicorn", args.server) if args.server != "gunicorn" else ("gunicorn",):
                    bare = servers.enter_context(serve(baseline, "ingest:bare_app()", env, args.workers))
                    targets[f"bare_{baseline}"] = f"{bare}/update?api_key={key}&field1=21.5"
                out.update(single_rounds(targets, influx, args))
            if args.only == "single":
                return out
            out.update(batch_rounds(url, host, key, channel_id, influx, args))
    return out


def batch_rounds(
    url: str, host: str, key: str, channel_id: int, influx: Influx | None, args: argparse.Namespace
) -> dict[str, Any]:
    """5,000-point batches in rounds: line protocol, JSON API, raw inserts, InfluxDB's line protocol.

    Every batch carries new timestamps (InfluxDB's too), as a logger's would, and
    every ratio is taken within a round. Returns each workload's median rate,
    every round's rates, and the medians (and ranges) of the rounds' ratios.
    """
    auth = {"Authorization": "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    entries = f"/api/v1/channels/{channel_id}/entries" + ("?mac=bench-02" if args.monitoring else "")
    write = "/write?db=bench" + ("&mac=bench-03" if args.monitoring else "")

    def numbers(count: int) -> range:
        first = args.batch_offset
        args.batch_offset += count
        return range(first, first + count)

    warm = numbers(2)  # the workers' first batches (imports, caches), not timed
    batched_load(host, write, [line_body(b) for b in warm], auth, args.clients)
    batched_load(host, entries, [json_body(b) for b in numbers(2)], headers, args.clients)
    rates: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        batches = numbers(args.batches)
        settle()
        line = batched_load(host, write, [line_body(b) for b in batches], auth, args.clients)
        settle()
        bodies = [json_body(b) for b in numbers(args.batches)]
        figures = {"line": line, "json": batched_load(host, entries, bodies, headers, args.clients)}
        settle()
        figures.update({f"raw_{method}": rate for method, rate in raw_executemany(url, args.batches).items()})
        if influx:
            settle()
            bodies = [line_body(b) for b in batches]
            figures["influx_line"] = batched_load(influx.host, "/write?db=bench", bodies, {}, args.clients)
            quiet(influx.pid)
        for name, rate in figures.items():
            rates.setdefault(name, []).append(rate)
    out: dict[str, Any] = {name: statistics.median(r) for name, r in rates.items()}
    out["batch_rounds"] = rates
    pairs = {"line_over_raw": ("line", "raw_executemany"), "json_over_raw": ("json", "raw_executemany")}
    if influx:
        pairs["line_over_influx"] = ("line", "influx_line")
    for name, (top, bottom) in pairs.items():
        out[name] = spread(a / b for a, b in zip(rates[top], rates[bottom], strict=True))
    return out


def spread(ratios: Iterable[float]) -> dict[str, float]:
    """The median of the rounds' ratios, and the lowest and highest."""
    ordered = sorted(ratios)
    return {"median": statistics.median(ordered), "low": ordered[0], "high": ordered[-1]}


@dataclass(frozen=True)
class Influx:
    """A running InfluxDB: where it listens, and its process (to wait for its background work)."""

    host: str
    pid: int


#: InfluxDB's single-point write, as wrk posts it (its Lua script).
INFLUX_POST = 'wrk.method = "POST"\nwrk.body = "single v=21.5"\n'


def single_rounds(targets: dict[str, str], influx: Influx | None, args: argparse.Namespace) -> dict[str, Any]:
    """Single-reading load on every target in turn, ``args.rounds`` times: ``name -> figures``.

    On a shared machine the rate of the same code drifts by a quarter within
    minutes, so each ratio is taken between runs made one after the other in
    the same round, and the figures are the rounds' medians.
    """
    script = None
    if influx:
        targets = {**targets, "influx": f"{influx.host}/write?db=bench"}
        script = Path(tempfile.mkdtemp(prefix="fieldstation-bench-wrk-")) / "post.lua"
        script.write_text(INFLUX_POST)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for number in range(args.rounds):
        for name, target in targets.items():
            host, _, path = target.partition("/")
            if number == 0:  # warm-up: workers' first requests, InfluxDB's first shard
                if name != "influx":
                    answered(host, "/" + path)
                load(name, host, "/" + path, args, 1, script)
            settle()
            rounds[name].append(load(name, host, "/" + path, args, args.duration, script))
            if name == "influx" and influx:
                quiet(influx.pid)
    if script:
        shutil.rmtree(script.parent)
    return {name: _median_round(runs, rounds["single"]) for name, runs in rounds.items()}


def answered(host: str, path: str, timeout: float = 60) -> None:
    """Wait until the server answers ``path``: uWSGI's --lazy-apps workers load the app after the
    port opens (2-3 s on a busy machine), and a 1 s warm-up run then saw no answer at all."""
    import http.client

    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection(*host.split(":"), timeout=timeout)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def load(
    name: str, host: str, path: str, args: argparse.Namespace, duration: float, script: Path | None
) -> dict[str, float]:
    """One timed single-reading run against ``host`` (InfluxDB gets its POST)."""
    if name == "influx":
        if not shutil.which("wrk"):
            raise RuntimeError("InfluxDB's single-point writes need wrk")
        return wrk(f"http://{host}{path}", args.connections, duration, str(script))
    return single_load(host, path, args.connections, duration)


def _median_round(runs: list[dict[str, float]], single: list[dict[str, float]]) -> dict[str, Any]:
    """Each figure's median over the rounds, every round's rate, and Fieldstation's rate over this."""
    figures: dict[str, Any] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    figures["rounds"] = [run["rps"] for run in runs]
    # A run can serve nothing at all when a shared disk stalls every fsync for its whole duration.
    figures["single_over_this"] = spread(
        s["rps"] / r["rps"] if r["rps"] else 0.0 for s, r in zip(single, runs, strict=True)
    )
    return figures


@contextlib.contextmanager
def influx_server(tmp: Path) -> Iterator[Influx | None]:
    """A throwaway InfluxDB 1.x with database ``bench``, when `influxd` is installed."""
    influxd = shutil.which("influxd") or (os.path.exists("/usr/bin/influxd") and "/usr/bin/influxd")
    if not influxd:
        yield None
        return
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
        host = f"127.0.0.1:{port}"
        subprocess.run(
            ["curl", "-s", "-XPOST", f"http://{host}/query", "--data-urlencode", "q=CREATE DATABASE bench"],
            check=True,
            capture_output=True,
        )
        yield Influx(host, proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stderr:
            proc.stderr.close()


def quiet(pid: int, timeout: float = 20) -> None:
    """Wait until process ``pid`` stops working in the background (below 8% of a core for 0.25 s).

    InfluxDB compacts what it was sent after the request is answered; left alone,
    that work would run during the next workload, whichever server it measures.
    """
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    deadline = time.monotonic() + timeout
    before = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu()
        if now - before < 0.02:
            return
        before = now


# -- report ----------------------------------------------------------------------------------


def report(results: dict[str, Any], influx: bool, args: argparse.Namespace) -> None:
    generator = "wrk -t2" if shutil.which("wrk") else "Python load generator"
    print(
        f"\nFieldstation ingest bench: {args.server} and gunicorn, {args.workers} workers, "
        f"{args.connections} connections ({generator}), single readings in {args.rounds} rounds of "
        f"{args.duration:g} s per server, and {args.rounds} rounds of {args.batches} batches of "
        f"{POINTS_PER_BATCH} points per format, interleaved; {args.clients} batch clients; "
        f"{os.cpu_count()} CPUs shared with the load generator"
    )
    for engine, r in results.items():
        server = " server: fsync on, synchronous_commit off (not crash-safe);" if engine == "postgres" else ""
        print(f"\n[{engine}]{server} DURABILITY={DURABILITY}")
        if "single" in r:
            print(_single_line("single reading  /update", args.server, r["single"], None))
            for key in sorted(k for k in r if k.startswith("bare_")):
                print(
                    _single_line(
                        "bare Flask      /update", key.removeprefix("bare_"), r[key], "single / this"
                    )
                )
            if "influx" in r:
                print(_single_line("InfluxDB        /write ", "influxd", r["influx"], "single / InfluxDB"))
        for method in ("executemany", "copy"):
            if f"raw_{method}" in r:
                print(_batch_line(f"raw {method:<11} (same rows)", r, f"raw_{method}", None, ""))
        for name, label in (("line", "line protocol"), ("json", "JSON API")):
            if name in r:
                says = f"{label} / raw executemany"
                print(_batch_line(f"batched {label:<13}", r, name, f"{name}_over_raw", says))
        if "influx_line" in r:
            says = "line protocol / InfluxDB's"
            print(_batch_line("InfluxDB line protocol", r, "influx_line", "line_over_influx", says))
    if not influx:
        print("\n[influxdb] skipped: influxd is not installed (Debian package `influxdb`)")


def _batch_line(label: str, r: dict[str, Any], name: str, ratio: str | None, says: str) -> str:
    """A batched result: median rate and its rounds, and the median ratio of the rounds."""
    rounds = "/".join(f"{rate:,.0f}" for rate in r["batch_rounds"][name])
    line = f"  {label:<29} {r[name]:11,.0f} points/s  (rounds {rounds})"
    return line + (_ratio(says, r[ratio]) if ratio else "")


def _single_line(label: str, server: str, figures: dict[str, Any], ratio: str | None) -> str:
    """A single-reading result: median rate, its rounds, latencies and the median ratio of the rounds."""
    rounds = "/".join(f"{rate:,.0f}" for rate in figures["rounds"])
    line = (
        f"  {label} ({server:<8})  {figures['rps']:9,.0f} req/s  p50 {figures['p50_ms']:.1f} ms  "
        f"p99 {figures['p99_ms']:.1f} ms  errors {figures['errors']:.0f}  (rounds {rounds})"
    )
    return line + (_ratio(ratio, figures["single_over_this"]) if ratio else "")


def _ratio(label: str, spread: dict[str, float]) -> str:
    """A ratio's median over the rounds, and its lowest and highest round."""
    return (
        f"\n      ratio {label}: {spread['median']:.2f}x (rounds {spread['low']:.2f}-{spread['high']:.2f}x)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--engines", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--duration", type=float, default=3, help="seconds per single-reading run")
    parser.add_argument("--rounds", type=int, default=3, help="single-reading runs per server, interleaved")
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
    parser.add_argument(
        "--durability",
        choices=("power-loss", "process"),
        default="power-loss",
        help="Fieldstation's DURABILITY; the raw baselines sync the same way",
    )
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    parser.add_argument(
        "--monitoring",
        action="store_true",
        help="devices named, threshold rules on, the worker running (#19)",
    )
    args = parser.parse_args(argv)
    global DURABILITY
    DURABILITY = args.durability
    args.batch_offset = 0  # batch numbers used so far: every batch sent carries new timestamps
    tmp = Path(tempfile.mkdtemp(prefix="fieldstation-bench-"))
    try:
        with influx_server(tmp) as influx:
            results = {engine: run_engine(engine, args, tmp, influx) for engine in args.engines.split(",")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, influx is not None, args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
