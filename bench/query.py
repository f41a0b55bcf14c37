"""Read-path benchmark (issue #4, "Speed"): Fieldstation under gunicorn vs bare SQL on the same database.

Loads readings through ``store.write`` (batches of ~5,000 readings), into SQLite and into a throwaway
PostgreSQL cluster (or ``--pg-url``), builds the rollups with the refresh job, starts the server as a
user would (``gunicorn 'fieldstation:create_app()'``, 2 sync workers) and prints, per engine:

* last 24 h of one field (1,440 rows) over HTTP: p50/p99, and the ratio to the bare SQL range query;
* ~1,000 buckets avg/min/max over one year of one-minute data (525,600 readings): p50/p99 over HTTP,
  ``every=auto`` (what a chart asks) and ``every=9h`` (974 buckets); ratio to bare SQL GROUP BY;
* CSV export of the year field over HTTP: rows/s and the server worker's RSS before/after/peak;
* InfluxDB 1.x: only when ``influxd`` is installed (it is not installed here: reported as skipped).

Default: 100 fields x 10,000 one-minute points (1 M) + the year field (about a minute per engine on
2 shared cores). ``--full``: 100 fields x 100,000 points (10 M), the issue's size.

    .venv/bin/python bench/query.py [--full] [--engines sqlite,postgres] [--pg-url URL] [--requests 200]
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINUTE = 60_000_000
DAY = 24 * 60 * MINUTE
YEAR_POINTS = 525_600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Milliseconds per call of ``fn`` after one warm-up call."""
    fn()  # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


# -- loading ---------------------------------------------------------------------------------


def load(url: str, instance: Path, fields: int, points: int) -> dict[str, object]:
    """Migrate, create the channels and load through store.write; returns ids and keys."""
    from flask_migrate import upgrade

    from fieldstation import create_app, manage, rollups, store
    from fieldstation.extensions import db
    from fieldstation.models import KeyKind
    from fieldstation.points import Batch, Entry

    os.environ["FIELDSTATION_INSTANCE_PATH"] = str(instance)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "TESTING": False})
    with app.app_context():
        upgrade()
        user = manage.create_user("bench", "bench-password")
        wide = manage.create_channel(user, "wide", fields=[f"f{i}" for i in range(1, fields + 1)])
        year = manage.create_channel(user, "year", fields=["temperature"])
        _, key_wide = manage.create_key(user, KeyKind.READ, channel=wide)
        _, key_year = manage.create_key(user, KeyKind.READ, channel=year)
        end = (time.time_ns() // 1000) // MINUTE * MINUTE
        t = time.perf_counter()
        per_batch = max(1, 5000 // fields)
        for first in range(0, points, per_batch):
            entries = [
                Entry(
                    {f: float((i * 7 + f) % 1000) / 10 for f in range(1, fields + 1)},
                    ts=end - (points - i) * MINUTE,
                )
                for i in range(first, min(points, first + per_batch))
            ]
            store.write(Batch(wide.id, entries))
        wide_s = time.perf_counter() - t
        t = time.perf_counter()
        for first in range(0, YEAR_POINTS, 5000):
            entries = [
                Entry({1: 15.0 + (i % 1440) / 100}, ts=end - (YEAR_POINTS - i) * MINUTE)
                for i in range(first, min(YEAR_POINTS, first + 5000))
            ]
            store.write(Batch(year.id, entries))
        year_s = time.perf_counter() - t
        t = time.perf_counter()
        hours = rollups.refresh()
        refresh_s = time.perf_counter() - t
        year_field = year.fields[0].id
        wide_field = wide.fields[0].id
        ids = {"wide": wide.id, "year": year.id, "year_field": year_field, "wide_field": wide_field}
        db.session.remove()
        db.engine.dispose()
    loaded = fields * points + YEAR_POINTS
    print(
        f"  loaded {loaded:,} readings through store.write: {fields}x{points:,} in {wide_s:.1f} s "
        f"({fields * points / wide_s:,.0f}/s), year field in {year_s:.1f} s ({YEAR_POINTS / year_s:,.0f}/s); "
        f"rollups refresh job: {hours:,} hours in {refresh_s:.1f} s"
    )
    return {**ids, "key_wide": key_wide, "key_year": key_year, "end": end}


# -- bare SQL baselines ----------------------------------------------------------------------


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

    def close(self) -> None:
        self.conn.close()


# -- server ----------------------------------------------------------------------------------


def start_server(url: str, instance: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        FIELDSTATION_DATABASE_URL=url,
        FIELDSTATION_SECRET_KEY="bench-secret",
        FIELDSTATION_INSTANCE_PATH=str(instance),
    )
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--timeout",
        "120",
    ]
    proc = subprocess.Popen(
        [*cmd, "fieldstation:create_app()"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(base + "/api/v1/openapi.json", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("gunicorn did not start")


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            values[line.split(":")[0]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


# -- one engine ------------------------------------------------------------------------------


def bench_engine(name: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    print(f"\n== {name}")
    instance = Path(tempfile.mkdtemp(prefix="fs-bench-inst-"))
    info = load(url, instance, 100, args.points)
    end = int(info["end"])  # type: ignore[call-overload]
    bare = Bare(url)
    proc, base = start_server(url, instance)
    session = requests.Session()
    figures: dict[str, float] = {}
    try:
        # 1. last 24 h of one field (1,440 rows)
        start24 = end - DAY  # readings at whole minutes up to end - 1 min: 1,440 in [start24, end)
        wide, field = info["wide"], int(info["wide_field"])  # type: ignore[call-overload]
        params = {
            "fields": "1",
            "start": str(start24),
            "end": str(end),
            "limit": "1440",
            "api_key": info["key_wide"],
        }

        def http_24h() -> bytes:
            """One request, until the whole body has arrived (decoding it is the client's business)."""
            r = session.get(f"{base}/api/v1/channels/{wide}/readings", params=params, timeout=30)
            assert r.status_code == 200, r.text[:200]
            return r.content

        assert len(json.loads(http_24h())["readings"]) == 1440

        assert bare.rows(field, start24, end) == 1440
        http = timed(http_24h, args.requests)
        sql = timed(lambda: bare.rows(field, start24, end), args.requests)
        figures["24h_http_p50"] = statistics.median(http)
        print(
            f"  last 24 h of one field (1,440 rows) over HTTP: p50 {statistics.median(http):.2f} ms, "
            f"p99 {percentile(http, 0.99):.2f} ms; bare SQL p50 {statistics.median(sql):.2f} ms "
            f"-> ratio {statistics.median(http) / statistics.median(sql):.1f}x"
        )
        # 2. ~1,000 buckets over a year of one-minute data
        year, yfield = info["year"], int(info["year_field"])  # type: ignore[call-overload]
        ystart = end - YEAR_POINTS * MINUTE
        for every, label in (
            ("auto", "every=auto&points=1000 (12h, 731 buckets)"),
            ("9h", "every=9h (974 buckets)"),
        ):
            q = {"fields": "1", "start": str(ystart), "end": str(end), "every": every, "points": "1000",
                 "fn": "avg,min,max", "api_key": info["key_year"]}  # fmt: skip

            def http_buckets(q: dict[str, object] = q) -> bytes:
                r = session.get(f"{base}/api/v1/channels/{year}/buckets", params=q, timeout=30)
                assert r.status_code == 200, r.text[:200]
                return r.content

            assert len(json.loads(http_buckets())["series"][0]["buckets"]) > 700

            http = timed(http_buckets, max(20, args.requests // 4))
            width = 9 * 3600 * 10**6 if every == "9h" else 12 * 3600 * 10**6
            sql = timed(lambda width=width: bare.buckets(yfield, ystart, end, width), 5)
            figures[f"buckets_{every}_p50"] = statistics.median(http)
            print(
                f"  1 year of 1-minute data, {label}, avg/min/max over HTTP: "
                f"p50 {statistics.median(http):.2f} ms, p99 {percentile(http, 0.99):.2f} ms; "
                "bare SQL GROUP BY on raw readings p50 "
                f"{statistics.median(sql):.1f} ms -> ratio "
                f"{statistics.median(http) / statistics.median(sql):.2f}x"
            )
        # 3. CSV export
        workers = worker_pids(proc.pid)
        before = {pid: memory_kib(pid) for pid in workers}
        t = time.perf_counter()
        rows = 0
        with session.get(
            f"{base}/api/v1/channels/{year}/fields/1/export.csv",
            params={"start": str(ystart), "end": str(end), "api_key": info["key_year"]},
            stream=True,
            timeout=300,
        ) as r:
            for chunk in r.iter_lines(chunk_size=1 << 16):
                rows += 1 if chunk else 0
        seconds = time.perf_counter() - t
        rows -= 1  # header
        after = {pid: memory_kib(pid) for pid in workers}
        grown = max(after[p][0] - before[p][0] for p in workers)
        peak = max(after[p][1] for p in workers)
        figures["export_rows_s"] = rows / seconds
        print(
            f"  CSV export of {rows:,} rows over HTTP: {rows / seconds:,.0f} rows/s; "
            f"worker RSS grew by at most {grown / 1024:.1f} MiB during it "
            f"(peak RSS of any worker {peak / 1024:.0f} MiB)"
        )
    finally:
        session.close()
        bare.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(instance, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="100 fields x 100,000 points (10 M readings)")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    args = parser.parse_args()
    args.points = 100_000 if args.full else 10_000
    print(
        f"Fieldstation read benchmark: 100 fields x {args.points:,} one-minute points"
        f" + 1 field x {YEAR_POINTS:,}"
        f" ({'--full' if args.full else 'default size; --full for 10 M'})"
    )
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="fs-bench-"))
    try:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                results[engine] = bench_engine("SQLite (WAL)", f"sqlite:///{tmp / 'bench.db'}", args)
            elif engine == "postgres":
                if args.pg_url:
                    results[engine] = bench_engine("PostgreSQL", args.pg_url, args)
                    continue
                from tests import pgserver

                cluster = pgserver.start_cluster()
                try:
                    results[engine] = bench_engine(
                        "PostgreSQL (throwaway cluster, fsync off)", cluster.url, args
                    )
                finally:
                    cluster.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    influxd = shutil.which("influxd")
    print(
        "\n== InfluxDB 1.x: "
        + ("installed but not driven by this script" if influxd else "influxd not installed; skipped")
    )
    print(
        "\nTargets (issue #4): 24 h query <= 0.5x InfluxDB's 7.8 ms (so <= 3.9 ms);"
        " 1,000 buckets <= 50 ms p50;"
    )
    print("export >= 200,000 rows/s with flat memory.")
    for engine, f in results.items():
        print(
            f"  {engine}: 24 h {f['24h_http_p50']:.2f} ms | buckets auto {f['buckets_auto_p50']:.1f} ms, "
            f"9h {f['buckets_9h_p50']:.1f} ms | export {f['export_rows_s']:,.0f} rows/s"
        )


if __name__ == "__main__":
    main()
