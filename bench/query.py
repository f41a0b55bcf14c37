"""Read-path benchmark (issue #4, "Speed"): Fieldstation over HTTP vs bare SQL and vs InfluxDB 1.x.

Loads readings through ``store.write`` (batches of ~5,000 readings), into SQLite and into a throwaway
PostgreSQL cluster (or ``--pg-url``), builds the rollups with the refresh job, starts the server as a
user would (``start_server``: ``fieldstation serve``'s command line, uWSGI or ``--server gunicorn``,
2 workers, no access log) and prints, per engine:

* last 24 h of one field (1,440 rows) over HTTP: p50/p99, the ratio to the bare SQL range query, and
  the same rows from ThingSpeak's ``/channels/<id>/fields/1.json``;
* ~1,000 buckets avg/min/max over one year of one-minute data (525,600 readings): p50/p99 over HTTP,
  ``every=auto`` (what a chart asks) and ``every=9h`` (974 buckets); ratio to bare SQL GROUP BY;
* CSV export of the year field over HTTP: rows/s and the server worker's RSS growth;
* 365 daily energy totals of the year field (a power field in W: ``fn=energy&every=1d``, in UTC and
  in Europe/Berlin's local days) over HTTP, from the rollups: p50/p99, the ratio to the daily
  averages (``fn=avg``) of the same request and to the same integral as bare SQL (a window over
  the raw readings);
* InfluxQL functions over the year field through ``/query`` (``FUNCTION_QUERIES``): derivative,
  difference, cumulative_sum and moving_average of its 974 nine-hour buckets, arithmetic with
  fill(linear), integral (from the rollups' trapezoids), and the exact order statistics (median
  per bucket; median, percentile, mode and stddev of the whole year), each as p50 and its ratio to the plain
  ``mean() GROUP BY time(9h)`` of the same run (and to InfluxDB's answer to the same query).

When ``influxd`` is installed (Debian package ``influxdb``), a throwaway InfluxDB 1.x (own temp dir,
free loopback ports, reporting, HTTP log and query log off) gets the same data through ``/write``
(line protocol, large batches): the wide series as one measurement with fields f1..f100, the year
as measurement ``year``. The same three workloads run against it over HTTP (``SELECT f1 … WHERE
time >= … AND time < …`` with ``epoch=ms``; ``mean/min/max … GROUP BY time(12h|9h)``; CSV export
with ``chunked=true``), and each figure is printed next to Fieldstation's as a ratio. Latencies are
measured interleaved, one request to each in turn, so both see the same machine. One keep-alive
``http.client`` connection per server is the client for both (serve's servers close it after
every response, so Fieldstation's figures include a TCP connect each).

Default: 100 fields x 10,000 one-minute points (1 M) + the year field (two to three minutes per
engine on 2 shared cores, most of it loading). ``--full``: 100 fields x 100,000 points (10 M), the
issue's size. ``--keep DIR`` keeps the SQLite database and the InfluxDB data in DIR and reuses them
on the next run (also a ``--pg-url`` database, once loaded), to skip loading while iterating.

    .venv/bin/python bench/query.py [--full] [--engines sqlite,postgres] [--pg-url URL]
                                    [--requests 200] [--keep DIR] [--no-influx] [--server gunicorn]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
YEAR_POINTS = 525_600
FIELDS = 100
#: Bucket widths of the chart query: what ``every=auto&points=1000`` picks, and a fixed 9 h.
BUCKETS = {"auto": 12 * HOUR, "9h": 9 * HOUR}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds per call of ``fn`` after one warm-up call."""
    fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def paired(
    ours: Callable[[], object], theirs: Callable[[], object] | None, n: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each, calls alternating so that both see the same machine."""
    ours()
    if theirs is not None:
        theirs()
    a, b = [], []
    for _ in range(n):
        t = time.perf_counter()
        ours()
        a.append((time.perf_counter() - t) * 1000)
        if theirs is not None:
            t = time.perf_counter()
            theirs()
            b.append((time.perf_counter() - t) * 1000)
    return a, b


def wide_value(i: int, field: int) -> float:
    """Value of field ``field`` (1..100) at minute ``i`` of the wide series."""
    return float((i * 7 + field) % 1000) / 10


def year_value(i: int) -> float:
    return 15.0 + (i % 1440) / 100


class Client:
    """One keep-alive HTTP/1.1 connection, reopened when the server closes it.

    Light on purpose: ``requests`` reads InfluxDB's chunked answer to the 24-hour query
    in about 5-7 ms where ``http.client`` takes 2 ms (measured here, 2026-11-24), so the
    client, not the server, would set InfluxDB's figure.
    """

    def __init__(self, base: str) -> None:
        self.host, port = urllib.parse.urlsplit(base).netloc.split(":")
        self.port = int(port)
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self,
        path: str,
        params: dict[str, str],
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Any:
        url = f"{path}?{urllib.parse.urlencode(params)}"
        method = "GET" if body is None else "POST"
        if self.conn is not None:
            try:
                self.conn.request(method, url, body=body, headers=headers or {})
                return self.conn.getresponse()
            except (ConnectionError, http.client.RemoteDisconnected):
                # The server closed the connection without saying so (uWSGI's --http-socket does).
                self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        self.conn.request(method, url, body=body, headers=headers or {})
        return self.conn.getresponse()

    def get(self, path: str, params: dict[str, str], headers: dict[str, str] | None = None) -> bytes:
        """The whole body of a 200 response (decoding it is the client's business, not timed)."""
        return self.send(path, params, headers)

    def send(
        self,
        path: str,
        params: dict[str, str],
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> bytes:
        """GET (or POST ``body``); the reply's body, after checking for 200 or 204."""
        response = self.request(path, params, headers, body)
        reply: bytes = response.read()
        self.done(response)
        if response.status not in (200, 204):
            raise RuntimeError(f"{path}: {response.status} {reply[:200]!r}")
        return reply

    def lines(self, path: str, params: dict[str, str], headers: dict[str, str] | None = None) -> int:
        """Stream a response and count its lines without keeping it."""
        response = self.request(path, params, headers)
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {response.read()[:200]!r}")
        count, tail = 0, b""
        while chunk := response.read(1 << 16):
            count += chunk.count(b"\n")
            tail = chunk[-1:]
        self.done(response)
        return count + (1 if tail not in (b"", b"\n") else 0)

    def done(self, response: Any) -> None:
        if response.will_close and self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            values[line.split(":")[0]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


def children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


# -- Fieldstation: loading, bare SQL, server ------------------------------------------------------


def load(url: str, instance: Path, points: int, end: int) -> dict[str, Any]:
    """Migrate, create the channels and load through store.write; returns ids and keys."""
    from flask_migrate import upgrade

    from fieldstation import create_app, manage, rollups, store
    from fieldstation.extensions import db
    from fieldstation.models import KeyKind
    from fieldstation.points import Batch, Entry

    os.environ["FIELDSTATION_INSTANCE_PATH"] = str(instance)
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench-secret-not-for-production-0123456789", "TESTING": False}
    )
    with app.app_context():
        upgrade()
        user = manage.create_user("bench", "bench-password")
        wide = manage.create_channel(user, "wide", fields=[f"f{i}" for i in range(1, FIELDS + 1)])
        year = manage.create_channel(user, "year", fields=["temperature"])
        manage.update_field(year.fields[0], unit="W", kind="power")  # its energy: workload 4
        _, key_wide = manage.create_key(user, KeyKind.READ, channel=wide)
        _, key_year = manage.create_key(user, KeyKind.READ, channel=year)
        t = time.perf_counter()
        per_batch = max(1, 5000 // FIELDS)
        for first in range(0, points, per_batch):
            entries = [
                Entry({f: wide_value(i, f) for f in range(1, FIELDS + 1)}, ts=end - (points - i) * MINUTE)
                for i in range(first, min(points, first + per_batch))
            ]
            store.write(Batch(wide.id, entries))
        wide_s = time.perf_counter() - t
        t = time.perf_counter()
        for first in range(0, YEAR_POINTS, 5000):
            entries = [
                Entry({1: year_value(i)}, ts=end - (YEAR_POINTS - i) * MINUTE)
                for i in range(first, min(YEAR_POINTS, first + 5000))
            ]
            store.write(Batch(year.id, entries))
        year_s = time.perf_counter() - t
        t = time.perf_counter()
        hours = rollups.refresh()
        refresh_s = time.perf_counter() - t
        info = {
            "wide": wide.id,
            "year": year.id,
            "year_field": year.fields[0].id,
            "wide_field": wide.fields[0].id,
            "key_wide": key_wide,
            "key_year": key_year,
            "end": end,
        }
        db.session.remove()
        db.engine.dispose()
    print(
        f"  loaded {FIELDS * points + YEAR_POINTS:,} readings through store.write: {FIELDS}x{points:,} in "
        f"{wide_s:.1f} s ({FIELDS * points / wide_s:,.0f}/s), year field in {year_s:.1f} s "
        f"({YEAR_POINTS / year_s:,.0f}/s); rollups refresh job: {hours:,} hours in {refresh_s:.1f} s"
    )
    return info


class Bare:
    """The same questions as plain SQL on the same database, from this process."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            self.conn = sqlite3.connect(url.split("///", 1)[1])
            self.mark = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))  # type: ignore[assignment]
            self.mark = "%s"

    def rows(self, field: int, start: int, end: int) -> int:
        m = self.mark
        sql = f"SELECT ts, value FROM readings WHERE field_id = {m} AND ts >= {m} AND ts < {m} ORDER BY ts"
        return len(self.conn.execute(sql, (field, start, end)).fetchall())

    def buckets(self, field: int, start: int, end: int, every: int) -> int:
        m = self.mark
        sql = (
            f"SELECT (ts - {m}) / {m}, avg(value), min(value), max(value) FROM readings "
            f"WHERE field_id = {m} AND ts >= {m} AND ts < {m} GROUP BY 1"
        )
        return len(self.conn.execute(sql, (start, every, field, start, end)).fetchall())

    def energy(self, field: int, start: int, end: int) -> int:
        """Daily (UTC) energy from the raw readings: each held until the next, gaps up to an hour."""
        m = self.mark
        sql = (
            f"SELECT (ts - {m}) / {m}, sum(CASE WHEN nts - ts <= {m} THEN value * (nts - ts) END) FROM "
            f"(SELECT ts, value, lead(ts) OVER (ORDER BY ts) AS nts FROM readings "
            f"WHERE field_id = {m} AND ts >= {m} AND ts < {m}) r GROUP BY 1"
        )
        return len(self.conn.execute(sql, (start, DAY, HOUR, field, start, end)).fetchall())

    def close(self) -> None:
        self.conn.close()


def start_fixed_body(body: bytes, server: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """bench/fixedbody.py answering ``body`` to every request, served as Fieldstation is."""
    from fieldstation.serving import server_command

    (folder / "body.json").write_bytes(body)
    port = free_port()
    env = {**os.environ, "FIXED_BODY_FILE": str(folder / "body.json"), "PYTHONPATH": str(ROOT / "bench")}
    command = server_command(server, "127.0.0.1", port, 2, app="fixedbody:application")
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_http(f"http://127.0.0.1:{port}", "/", proc)


def start_server(
    url: str, instance: Path, server: str, source: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Serve Fieldstation as ``fieldstation serve --server SERVER`` does (2 workers, no access log,
    as InfluxDB's HTTP log is off). The one place here that knows how it is served. ``source``:
    another tree's ``src`` (``--baseline-src``) to serve instead of this one."""
    from fieldstation.serving import server_command

    port = free_port()
    env = {
        **os.environ,
        **({"PYTHONPATH": str(source)} if source else {}),
        "FIELDSTATION_DATABASE_URL": url,
        "FIELDSTATION_SECRET_KEY": "bench-secret-not-for-production-0123456789",
        "FIELDSTATION_INSTANCE_PATH": str(instance),
    }
    command = server_command(server, "127.0.0.1", port, 2)
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, wait_http(f"http://127.0.0.1:{port}", "/api/v1/openapi.json", proc)


def wait_http(base: str, path: str, proc: subprocess.Popen[bytes]) -> str:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            client = Client(base)
            response = client.request(path, {})
            response.read()
            client.close()
            if response.status in (200, 204):
                return base
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{base} did not start")


# -- InfluxDB ---------------------------------------------------------------------------------


@dataclass
class Influx:
    """A running throwaway influxd with the benchmark's data in database ``bench``."""

    proc: subprocess.Popen[bytes]
    client: Client
    end: int

    def query(self, q: str, **extra: str) -> bytes:
        return self.client.get("/query", {"db": "bench", "q": q, **extra})

    def rows(self, start: int, end: int) -> bytes:
        return self.query(
            f"SELECT f1 FROM wide WHERE time >= {start * 1000} AND time < {end * 1000}", epoch="ms"
        )

    def buckets(self, start: int, end: int, every: int) -> bytes:
        q = (
            "SELECT mean(temperature), min(temperature), max(temperature) FROM year "
            f"WHERE time >= {start * 1000} AND time < {end * 1000} GROUP BY time({every // MINUTE}m)"
        )
        return self.query(q, epoch="ms")

    def export(self, start: int, end: int) -> int:
        """Rows of the year series as chunked CSV (header line excluded)."""
        q = f"SELECT temperature FROM year WHERE time >= {start * 1000} AND time < {end * 1000}"
        params = {"db": "bench", "q": q, "chunked": "true", "chunk_size": "10000"}
        return self.client.lines("/query", params, {"Accept": "application/csv"}) - 1


def influx_config(home: Path, http_port: int) -> str:
    return (
        # reporting-disabled is upstream's name, reporting-enabled Debian's.
        f'reporting-disabled = true\nreporting-enabled = false\nbind-address = "127.0.0.1:{free_port()}"\n'
        f'[meta]\n  dir = "{home}/meta"\n  logging-enabled = false\n'
        f'[data]\n  dir = "{home}/data"\n  wal-dir = "{home}/wal"\n  query-log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
    )


@contextlib.contextmanager
def influxd(home: Path, points: int) -> Iterator[Influx]:
    """Start influxd in ``home`` and load the data unless ``home`` already holds it."""
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (home / "influxdb.conf").write_text(influx_config(home, port))
    proc = subprocess.Popen(
        [binary, "-config", str(home / "influxdb.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = Client(wait_http(f"http://127.0.0.1:{port}", "/ping", proc))
        info = home / "loaded.json"
        if info.exists() and json.loads(info.read_text())["points"] == points:
            end = int(json.loads(info.read_text())["end"])
        else:
            end = load_influx(client, points)
            info.write_text(json.dumps({"points": points, "end": end}))
        wait_idle(proc.pid)
        yield Influx(proc, client, end)
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def load_influx(client: Client, points: int) -> int:
    """The same readings through /write: line protocol, second precision, ~1 MB bodies."""
    client.get("/query", {"q": "CREATE DATABASE bench"})
    end = (time.time_ns() // 1000) // MINUTE * MINUTE

    def post(lines: list[str]) -> None:
        client.send("/write", {"db": "bench", "precision": "s"}, body="\n".join(lines).encode())

    t = time.perf_counter()
    for first in range(0, points, 1000):
        post(
            [
                "wide "
                + ",".join(f"f{f}={wide_value(i, f)}" for f in range(1, FIELDS + 1))
                + f" {(end - (points - i) * MINUTE) // 1_000_000}"
                for i in range(first, min(points, first + 1000))
            ]
        )
    wide_s = time.perf_counter() - t
    t = time.perf_counter()
    for first in range(0, YEAR_POINTS, 20_000):
        post(
            [
                f"year temperature={year_value(i)} {(end - (YEAR_POINTS - i) * MINUTE) // 1_000_000}"
                for i in range(first, min(YEAR_POINTS, first + 20_000))
            ]
        )
    year_s = time.perf_counter() - t
    print(
        f"  InfluxDB: loaded {FIELDS * points + YEAR_POINTS:,} points through /write: {FIELDS}x{points:,} "
        f"in {wide_s:.1f} s ({FIELDS * points / wide_s:,.0f}/s), year in {year_s:.1f} s "
        f"({YEAR_POINTS / year_s:,.0f}/s)"
    )
    return end


def wait_idle(pid: int, limit: float = 60) -> None:
    """Wait until a loaded influxd stops compacting (under 5% of a core for a second)."""
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + limit

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    while time.monotonic() < deadline:
        before = cpu()
        time.sleep(1)
        if cpu() - before < 0.05:
            return


# -- one engine -------------------------------------------------------------------------------


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def bench_engine(name: str, url: str, args: argparse.Namespace, influx: Influx | None) -> dict[str, float]:
    print(f"\n== {name}")
    engine = "sqlite" if url.startswith("sqlite") else "postgres"
    keep: Path | None = args.keep
    instance = keep / f"instance-{engine}" if keep else Path(tempfile.mkdtemp(prefix="fs-bench-inst-"))
    saved = keep / f"{engine}.json" if keep and (engine == "sqlite" or args.pg_url) else None
    if saved and saved.exists() and json.loads(saved.read_text())["points"] == args.points:
        info = json.loads(saved.read_text())
        print(f"  reusing the data loaded earlier ({saved})")
    else:
        if saved and engine == "sqlite":  # a different size, or a load that did not finish
            for path in keep.glob("sqlite.db*"):  # type: ignore[union-attr]
                path.unlink()
        info = load(url, instance, args.points, (time.time_ns() // 1000) // MINUTE * MINUTE)
        if saved:
            saved.write_text(json.dumps({**info, "points": args.points}))
    bare = Bare(url)
    proc, base = start_server(url, instance, args.server)
    client = Client(base)
    figures: dict[str, float] = {}
    try:
        if args.only != "energy":
            reads(client, bare, info, args, influx, figures, proc, instance)
        energy(client, bare, info, args, instance, url, figures)
        if args.only != "energy":
            # 5. InfluxQL functions over the year: transformations of ~1,000 buckets, order statistics
            functions(client, info, int(info["end"]), influx, figures, max(10, args.requests // 10))
    finally:
        client.close()
        bare.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if not keep:
            shutil.rmtree(instance, ignore_errors=True)
    return figures


def reads(
    client: Client,
    bare: Bare,
    info: dict[str, Any],
    args: argparse.Namespace,
    influx: Influx | None,
    figures: dict[str, float],
    proc: subprocess.Popen[bytes],
    instance: Path,
) -> None:
    """Workloads 1 to 3: the 24-hour read, ~1,000 buckets over a year, the CSV export."""
    n = args.requests
    end = int(info["end"])
    # 1. last 24 h of one field (1,440 rows)
    start24 = end - DAY  # readings at whole minutes up to end - 1 min: 1,440 in [start24, end)
    field = int(info["wide_field"])
    path24 = f"/api/v1/channels/{info['wide']}/readings"
    params24 = {"fields": "1", "start": str(start24), "end": str(end), "limit": "1440"}
    params24["api_key"] = info["key_wide"]
    assert len(json.loads(client.get(path24, params24))["readings"]) == 1440
    assert bare.rows(field, start24, end) == 1440
    theirs = None
    if influx:
        i_end = influx.end
        assert len(json.loads(influx.rows(i_end - DAY, i_end))["results"][0]["series"][0]["values"]) == 1440
        theirs = lambda: influx.rows(i_end - DAY, i_end)  # noqa: E731
    http, ifx = paired(lambda: client.get(path24, params24), theirs, n)
    sql = timed(lambda: bare.rows(field, start24, end), n)
    p50 = figures["24h_http_p50"] = statistics.median(http)
    print(
        f"  last 24 h of one field (1,440 rows), JSON API over HTTP: p50 {p50:.2f} ms, "
        f"p99 {percentile(http, 0.99):.2f} ms; bare SQL p50 {statistics.median(sql):.2f} ms "
        f"-> ratio {p50 / statistics.median(sql):.1f}x"
    )
    if ifx:
        figures["24h_influx_p50"] = statistics.median(ifx)
        print(
            f"    InfluxDB, same rows (epoch=ms): p50 {statistics.median(ifx):.2f} ms, "
            f"p99 {percentile(ifx, 0.99):.2f} ms -> Fieldstation / InfluxDB "
            f"{ratio(p50, statistics.median(ifx))} (target <= 0.5x)"
        )
    ts_path = f"/channels/{info['wide']}/fields/1.json"
    ts_params = {"results": "1440", "start": str(start24), "end": str(end), "api_key": info["key_wide"]}
    assert len(json.loads(client.get(ts_path, ts_params))["feeds"]) == 1440
    ts = timed(lambda: client.get(ts_path, ts_params), max(20, n // 2))
    figures["24h_thingspeak_p50"] = statistics.median(ts)
    print(
        f"    same rows as ThingSpeak's /fields/1.json?results=1440: p50 {statistics.median(ts):.2f} ms, "
        f"p99 {percentile(ts, 0.99):.2f} ms"
    )

    # The query InfluxDB answers above, sent as it is to Fieldstation's InfluxQL /query:
    # the same request and the same response shape on both sides.
    q24 = f"SELECT f1 FROM wide WHERE time >= {start24 * 1000} AND time < {end * 1000}"
    iq = {"db": "wide", "q": q24, "epoch": "ms", "u": "bench", "p": info["key_wide"]}
    assert len(json.loads(client.get("/query", iq))["results"][0]["series"][0]["values"]) == 1440
    ql, ifx = paired(lambda: client.get("/query", iq), theirs, n)
    p50 = figures["24h_influxql_p50"] = statistics.median(ql)
    line = (
        f"    same rows through InfluxQL on /query (epoch=ms): p50 {p50:.2f} ms, "
        f"p99 {percentile(ql, 0.99):.2f} ms"
    )
    if ifx:
        figures["24h_influxql_influx_p50"] = statistics.median(ifx)
        line += (
            f"; InfluxDB in the same run p50 {statistics.median(ifx):.2f} ms -> Fieldstation / InfluxDB "
            f"{ratio(p50, statistics.median(ifx))} (target <= 0.5x)"
        )
    print(line)
    # The floor under both figures: the same bytes from an app that does nothing else, same server.
    floor_proc, floor_base = start_fixed_body(client.get("/query", iq), args.server, instance)
    floor_client = Client(floor_base)
    try:
        floor = statistics.median(timed(lambda: floor_client.get("/", {}), n))
    finally:
        floor_client.close()
        floor_proc.send_signal(signal.SIGTERM)
        floor_proc.wait(timeout=30)
    figures["24h_floor_p50"] = floor + statistics.median(sql)
    line = (
        f"    floor: that body from an app that only returns it, same server, p50 {floor:.2f} ms; "
        f"+ bare SQL = {floor + statistics.median(sql):.2f} ms"
    )
    if ifx:
        line += f" = {ratio(floor + statistics.median(sql), statistics.median(ifx))} InfluxDB's time"
    print(line)

    # 2. ~1,000 buckets over a year of one-minute data
    ystart = end - YEAR_POINTS * MINUTE
    for every, width in BUCKETS.items():
        q = {"fields": "1", "start": str(ystart), "end": str(end), "every": every, "points": "1000",
             "fn": "avg,min,max", "api_key": info["key_year"]}  # fmt: skip
        path = f"/api/v1/channels/{info['year']}/buckets"
        count = len(json.loads(client.get(path, q))["series"][0]["buckets"])
        theirs = None
        if influx:
            i_start = influx.end - YEAR_POINTS * MINUTE
            body = influx.buckets(i_start, influx.end, width)
            i_count = len(json.loads(body)["results"][0]["series"][0]["values"])
            theirs = lambda w=width, s=i_start: influx.buckets(s, influx.end, w)  # noqa: E731
        http, ifx = paired(lambda q=q, path=path: client.get(path, q), theirs, max(20, n // 4))
        sql = timed(lambda width=width: bare.buckets(int(info["year_field"]), ystart, end, width), 5)
        p50 = figures[f"buckets_{every}_p50"] = statistics.median(http)
        print(
            f"  1 year of 1-minute data, every={every} ({count} buckets), avg/min/max over HTTP: "
            f"p50 {p50:.2f} ms, p99 {percentile(http, 0.99):.2f} ms; bare SQL GROUP BY on raw readings "
            f"p50 {statistics.median(sql):.1f} ms -> ratio {p50 / statistics.median(sql):.2f}x"
        )
        if ifx:
            figures[f"buckets_{every}_influx_p50"] = statistics.median(ifx)
            print(
                f"    InfluxDB GROUP BY time({width // HOUR}h) ({i_count} buckets): "
                f"p50 {statistics.median(ifx):.2f} ms, p99 {percentile(ifx, 0.99):.2f} ms "
                f"-> Fieldstation / InfluxDB {ratio(p50, statistics.median(ifx))}"
            )

    # 3. CSV export of the year field
    workers = children(proc.pid)
    before = {pid: memory_kib(pid) for pid in workers}
    t = time.perf_counter()
    params = {"start": str(ystart), "end": str(end), "api_key": info["key_year"]}
    rows = client.lines(f"/api/v1/channels/{info['year']}/fields/1/export.csv", params) - 1
    rate = figures["export_rows_s"] = rows / (time.perf_counter() - t)
    grown = max(memory_kib(p)[0] - before[p][0] for p in workers)
    print(
        f"  CSV export of {rows:,} rows over HTTP: {rate:,.0f} rows/s; "
        f"worker RSS grew by at most {grown / 1024:.1f} MiB during it"
    )
    if influx:
        rss = memory_kib(influx.proc.pid)[0]
        t = time.perf_counter()
        i_rows = influx.export(influx.end - YEAR_POINTS * MINUTE, influx.end)
        i_rate = figures["export_influx_rows_s"] = i_rows / (time.perf_counter() - t)
        print(
            f"    InfluxDB chunked CSV of {i_rows:,} rows: {i_rate:,.0f} rows/s (RSS changed by "
            f"{(memory_kib(influx.proc.pid)[0] - rss) / 1024:.1f} MiB) -> Fieldstation / InfluxDB "
            f"{ratio(rate, i_rate)}"
        )


def energy(
    client: Client,
    bare: Bare,
    info: dict[str, Any],
    args: argparse.Namespace,
    instance: Path,
    url: str,
    figures: dict[str, float],
) -> None:
    """Workload 4: 365 daily energy totals of a year of one-minute power data; with
    ``--baseline-src``, the same requests to a server of that tree, alternating."""
    n = args.requests
    end = int(info["end"])
    base_proc, base_client = None, None
    if args.baseline_src:
        base_proc, base_url = start_server(url, instance, args.server, args.baseline_src)
        base_client = Client(base_url)
    try:
        dstart = (end - YEAR_POINTS * MINUTE) // DAY * DAY + DAY
        dend = dstart + 365 * DAY
        path = f"/api/v1/channels/{info['year']}/buckets"
        sql = timed(lambda: bare.energy(int(info["year_field"]), dstart, dend), 5)
        for tz in ("UTC", "Europe/Berlin"):
            q = {"fields": "1", "start": str(dstart), "end": str(dend), "every": "1d", "fn": "energy",
                 "tz": tz, "api_key": info["key_year"]}  # fmt: skip
            body = json.loads(client.get(path, q))["series"][0]["buckets"]
            count = len(body)
            theirs = None
            if base_client is not None:
                assert json.loads(base_client.get(path, q))["series"][0]["buckets"] == body
                theirs = lambda q=q, c=base_client: c.get(path, q)  # noqa: E731
            http, old = paired(lambda q=q: client.get(path, q), theirs, max(20, n // 4))
            avg = timed(lambda q=q: client.get(path, q | {"fn": "avg"}), max(20, n // 4))
            p50 = figures[f"energy_{tz}_p50"] = statistics.median(http)
            print(
                f"  365 daily energy totals ({tz} days, {count} buckets) of 1-minute power data over HTTP: "
                f"p50 {p50:.2f} ms, p99 {percentile(http, 0.99):.2f} ms (target <= 50 ms); daily avg, same "
                f"request: p50 {statistics.median(avg):.2f} ms -> {p50 / statistics.median(avg):.2f}x; "
                f"bare SQL integral over raw readings p50 {statistics.median(sql):.1f} ms "
                f"-> ratio {p50 / statistics.median(sql):.2f}x"
            )
            if old:
                print(
                    f"    baseline ({args.baseline_src}), same requests alternating: p50 "
                    f"{statistics.median(old):.2f} ms, p99 {percentile(old, 0.99):.2f} ms -> this tree / "
                    f"baseline {p50 / statistics.median(old):.2f}x"
                )
    finally:
        if base_client is not None and base_proc is not None:
            base_client.close()
            base_proc.send_signal(signal.SIGTERM)
            base_proc.wait(timeout=30)


#: InfluxQL over the year field, ``{w}`` the window: transformations of its 974 nine-hour buckets
#: (from the rollups, then transformed), and the order statistics that read every value.
FUNCTION_QUERIES = {
    "mean (baseline)": "SELECT mean(temperature) FROM year WHERE {w} GROUP BY time(9h)",
    "derivative(mean, 1h)": "SELECT derivative(mean(temperature), 1h) FROM year WHERE {w} GROUP BY time(9h)",
    "non_negative_derivative(max)": "SELECT non_negative_derivative(max(temperature)) FROM year WHERE {w}"
    " GROUP BY time(9h)",
    "difference(last)": "SELECT difference(last(temperature)) FROM year WHERE {w} GROUP BY time(9h)",
    "non_negative_difference(last)": "SELECT non_negative_difference(last(temperature)) FROM year WHERE {w}"
    " GROUP BY time(9h)",
    "cumulative_sum(sum)": "SELECT cumulative_sum(sum(temperature)) FROM year WHERE {w} GROUP BY time(9h)",
    "moving_average(mean, 5)": "SELECT moving_average(mean(temperature), 5) FROM year WHERE {w}"
    " GROUP BY time(9h)",
    "mean / 1000 fill(linear)": "SELECT mean(temperature) / 1000 FROM year WHERE {w} GROUP BY time(9h)"
    " fill(linear)",
    "integral(f, 1h)": "SELECT integral(temperature, 1h) FROM year WHERE {w} GROUP BY time(9h)",
    # GROUP BY time() with an offset off the hour slots: the 9 h buckets come from minute slots
    "mean, GROUP BY time(9h, 30m)": "SELECT mean(temperature) FROM year WHERE {w} GROUP BY time(9h, 30m)",
    # a subquery, as Grafana sums per-series means: 8,760 hourly means inside, their max outside
    "max of hourly means (subquery)": "SELECT max(mean) FROM (SELECT mean(temperature) FROM year"
    " WHERE {w} GROUP BY time(1h)) WHERE {w} GROUP BY time(9h)",
    "median per bucket": "SELECT median(temperature) FROM year WHERE {w} GROUP BY time(9h)",
    "median of the year": "SELECT median(temperature) FROM year WHERE {w}",
    "percentile(95) of the year": "SELECT percentile(temperature, 95) FROM year WHERE {w}",
    "mode of the year": "SELECT mode(temperature) FROM year WHERE {w}",
    "stddev of the year": "SELECT stddev(temperature) FROM year WHERE {w}",
}


def functions(
    client: Client, info: dict[str, Any], end: int, influx: Influx | None, figures: dict[str, float], n: int
) -> None:
    """Workload 5: each of FUNCTION_QUERIES through /query, p50 against the plain mean's (same run)
    and against InfluxDB's answer to the same query, calls alternating."""
    ystart = end - YEAR_POINTS * MINUTE
    window = f"time >= {ystart * 1000} AND time < {end * 1000}"
    print(f"  InfluxQL functions over the year (974 buckets of 9 h, or the whole year), {n} requests each:")
    base = None
    for name, template in FUNCTION_QUERIES.items():
        q = {"db": "year", "q": template.format(w=window), "epoch": "ms", "u": "bench", "p": info["key_year"]}
        answer = json.loads(client.get("/query", q))["results"][0]
        assert "error" not in answer, (name, answer)
        theirs = None
        if influx:
            i_window = f"time >= {(influx.end - YEAR_POINTS * MINUTE) * 1000} AND time < {influx.end * 1000}"
            i_query = template.format(w=i_window)
            theirs = lambda i_query=i_query: influx.query(i_query, epoch="ms")  # noqa: E731
        # The order statistics read every value of the year (seconds each): five requests suffice.
        reads_all = "year" in name or "per bucket" in name
        ours, ifx = paired(lambda q=q: client.get("/query", q), theirs, min(n, 5) if reads_all else n)
        p50 = figures[f"fn_{name}_p50"] = statistics.median(ours)
        base = base or p50
        line = f"    {name}: p50 {p50:.1f} ms ({p50 / base:.2f}x the plain mean's)"
        if ifx:
            line += f"; InfluxDB {statistics.median(ifx):.1f} ms -> {ratio(p50, statistics.median(ifx))}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 fields x 100,000 points (10 M readings)")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    parser.add_argument("--keep", type=Path, help="keep the SQLite and InfluxDB data here and reuse it")
    parser.add_argument("--no-influx", action="store_true", help="skip InfluxDB even when installed")
    parser.add_argument("--server", default="uwsgi", choices=["uwsgi", "gunicorn"], help="as serve --server")
    parser.add_argument("--only", choices=["energy"], help="run only this workload")
    parser.add_argument(
        "--baseline-src", type=Path, help="another tree's src/: its server answers the energy workload too"
    )
    args = parser.parse_args()
    args.points = 100_000 if args.full else 10_000
    print(
        f"Fieldstation read benchmark: {FIELDS} fields x {args.points:,} one-minute points"
        f" + 1 field x {YEAR_POINTS:,}"
        f" ({'--full' if args.full else 'default size; --full for 10 M'})"
    )
    tmp = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    if args.keep:
        args.keep = args.keep.resolve()
        args.keep.mkdir(parents=True, exist_ok=True)
    results = {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        influx = None
        if args.no_influx:
            print("\n== InfluxDB 1.x: skipped (--no-influx)")
        elif not (shutil.which("influxd") or Path("/usr/bin/influxd").exists()):
            print("\n== InfluxDB 1.x: skipped, influxd is not installed (Debian package `influxdb`)")
        else:
            print("\n== InfluxDB 1.x (throwaway influxd, measured interleaved with each engine below)")
            influx = stack.enter_context(influxd((args.keep or tmp) / "influx", args.points))
        for engine in args.engines.split(","):
            if engine == "sqlite":
                db = (args.keep or tmp) / "sqlite.db"
                results[engine] = bench_engine("SQLite (WAL)", f"sqlite:///{db}", args, influx)
            elif engine == "postgres" and args.pg_url:
                results[engine] = bench_engine("PostgreSQL", args.pg_url, args, influx)
            elif engine == "postgres":
                from tests import pgserver

                cluster = pgserver.start_cluster(pgserver.BENCH)
                try:
                    results[engine] = bench_engine(
                        "PostgreSQL (throwaway; synchronous_commit off)", cluster.url, args, influx
                    )
                finally:
                    cluster.stop()
    print(
        "\nTargets (issue #4): 24 h query <= 0.5x InfluxDB's time; 1,000 buckets <= 50 ms p50; "
        "export >= 200,000 rows/s with flat memory."
    )
    for engine, f in results.items():
        if args.only == "energy":
            print(f"  {engine}: daily energy UTC {f['energy_UTC_p50']:.1f} ms, "
                  f"Europe/Berlin {f['energy_Europe/Berlin_p50']:.1f} ms")  # fmt: skip
            continue
        versus = f" (InfluxDB {f['24h_influx_p50']:.2f} ms)" if "24h_influx_p50" in f else ""
        print(
            f"  {engine}: 24 h {f['24h_http_p50']:.2f} ms{versus} | "
            f"buckets auto {f['buckets_auto_p50']:.1f} ms, 9h {f['buckets_9h_p50']:.1f} ms | "
            f"export {f['export_rows_s']:,.0f} rows/s | daily energy UTC {f['energy_UTC_p50']:.1f} ms, "
            f"Europe/Berlin {f['energy_Europe/Berlin_p50']:.1f} ms"
        )


if __name__ == "__main__":
    main()
