#!/usr/bin/env python3
"""A worker's peak memory for the largest bodies the limits allow (issue 17, "memory bounded").

Starts Fieldstation as ``fieldstation serve`` does (uWSGI or ``--server gunicorn``, one worker,
SQLite, production config, default limits) and sends, one at a time, the largest request of each
kind the default limits accept: line protocol just under MAX_PARSED_BODY (4 MiB) plain, line
protocol gzipped to inflate just under it, a JSON API write of as many entries of 200 fields as
fit in it, ThingSpeak bulk JSON and CSV of as many updates (at most 10,000) of eight fields and a
255-character status as fit; then two it refuses (413): 16 MiB of plain line protocol
(MAX_CONTENT_LENGTH) and a gzip body that inflates to 64 MiB. Before each, the worker's peak
resident size (``VmHWM``) is reset (``/proc/PID/clear_refs``); after it, the peak above the idle size is
printed with the answer's status, next to the documented cap (64 MiB above idle). Each body goes
to a fresh server: a worker keeps the memory of an earlier large request, which would hide the
next one's peak.

Usage: ``.venv/bin/python bench/memory.py [--server gunicorn] [--only NAME]`` (a few minutes).
Linux only (``/proc``); resetting the peak needs the worker to be ours (same user).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import http.client
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src"), str(ROOT / "bench")]

MIB = 1024 * 1024
CAP_MIB = 64
T0 = 1_700_000_000


def line_protocol(size: int) -> bytes:
    """Lines of ten series with timestamps, just under ``size`` bytes."""
    out = bytearray()
    i = 0
    while True:
        line = b"climate,device=esp%02d f0=%d.25 %d000000000\n" % (i % 10, i, T0 + i // 10)
        if len(out) + len(line) >= size:
            return bytes(out)
        out += line
        i += 1


def api_entries(count: int, fields: int, size: int) -> bytes:
    """Up to ``count`` entries of ``fields`` values each, as many as fit in ``size`` bytes."""
    names = [f"f{i}" for i in range(fields)]
    one = len(json.dumps({"time": T0 * 1000, "values": {n: count + 0.5 for n in names}})) + 2
    fit = min(count, size // one - 1)
    items = [{"time": (T0 + i) * 1000, "values": {n: i + 0.5 for n in names}} for i in range(fit)]
    return json.dumps(items).encode()


def fitting(make: Callable[[int], bytes], count: int, size: int) -> bytes:
    """``make(n)`` for the largest n <= count whose body is under ``size`` bytes."""
    body = make(count)
    while len(body) >= size:
        count = int(count * size / len(body) * 0.99)
        body = make(count)
    return body


def bulk_json(key: str, count: int) -> bytes:
    status = "s" * 255
    updates = [
        {"created_at": T0 + 10**6 + i, **{f"field{f}": i + f for f in range(1, 9)}, "status": status}
        for i in range(count)
    ]
    return json.dumps({"write_api_key": key, "updates": updates}).encode()


def bulk_csv(key: str, count: int) -> bytes:
    status = "s" * 255
    rows = "|".join(
        f"{T0 + 2 * 10**6 + i},{','.join(str(i + f) for f in range(8))},,,,{status}" for i in range(count)
    )
    return f"write_api_key={key}&time_format=absolute&updates={rows}".encode()


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def send(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    answer = response.status, response.read()[:200]
    conn.close()
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="uwsgi", choices=["uwsgi", "gunicorn"])
    parser.add_argument("--only", help="run only the case of this name")
    args = parser.parse_args()

    import subprocess

    from ingest import answered, free_port, prepare, wait_for

    from fieldstation import create_app, manage
    from fieldstation.extensions import db
    from fieldstation.models import KeyKind
    from fieldstation.serving import server_command

    with tempfile.TemporaryDirectory(prefix="fieldstation-memory-") as tmp:
        env, key, channel_id = prepare(f"sqlite:///{Path(tmp) / 'memory.db'}", Path(tmp) / "instance")
        app = create_app()
        with app.app_context():  # a channel of 200 fields for the JSON API's largest write
            user = manage.get_user("bench")
            wide = manage.create_channel(user, "wide", fields=[f"f{i}" for i in range(200)])
            _, wide_key = manage.create_key(user, KeyKind.WRITE, channel=wide)
            wide_id = wide.id
            db.session.remove()
            db.engine.dispose()
        basic = {"Authorization": "Basic " + base64.b64encode(f"bench:{key}".encode()).decode()}
        from fieldstation.config import Config

        parsed = Config.MAX_PARSED_BODY
        lp_gzip = gzip.compress(line_protocol(parsed), compresslevel=6)
        lp_bomb = gzip.compress(line_protocol(Config.MAX_DECOMPRESSED_LENGTH), compresslevel=6)
        gz = {**basic, "Content-Encoding": "gzip"}
        bearer = {"Authorization": f"Bearer {wide_key}", "Content-Type": "application/json"}
        cases: dict[str, Callable[[], tuple[str, bytes, dict[str, str]]]] = {
            "line protocol, MAX_PARSED_BODY plain": lambda: ("/write?db=bench", line_protocol(parsed), basic),
            "line protocol, gzip to MAX_PARSED_BODY": lambda: ("/write?db=bench", lp_gzip, gz),
            "JSON API, MAX_PARSED_BODY of 200 fields": lambda: (
                f"/api/v1/channels/{wide_id}/entries",
                api_entries(10_000, 200, parsed),
                bearer,
            ),
            "bulk JSON, MAX_PARSED_BODY of updates": lambda: (
                f"/channels/{channel_id}/bulk_update.json",
                fitting(lambda n: bulk_json(key, n), 10_000, parsed),
                {"Content-Type": "application/json"},
            ),
            "bulk CSV, MAX_PARSED_BODY of updates": lambda: (
                f"/channels/{channel_id}/bulk_update.csv",
                fitting(lambda n: bulk_csv(key, n), 10_000, parsed),
                {"Content-Type": "application/x-www-form-urlencoded"},
            ),
            "refused: line protocol, 16 MiB plain": lambda: (
                "/write?db=bench",
                line_protocol(Config.MAX_CONTENT_LENGTH),
                basic,
            ),
            "refused: line protocol, gzip to 64 MiB": lambda: ("/write?db=bench", lp_bomb, gz),
        }
        print(f"{args.server}, 1 worker (a fresh one for each body), SQLite; cap {CAP_MIB} MiB above idle")
        for name, make in cases.items():
            if args.only and args.only not in name:
                continue
            path, body, headers = make()
            port = free_port()
            command = server_command(args.server, "127.0.0.1", port, 1)
            proc = subprocess.Popen(command, env={**env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_for(port, proc)
                answered(port)
                pid = worker_pid(proc.pid)
                send(port, "/write?db=bench", line_protocol(100_000), basic)  # warm: imports and caches
                idle = rss_kib(pid)
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak to the current size
                status, answer = send(port, path, body, headers)
                above = (peak_kib(pid) - idle) / 1024
            finally:
                proc.terminate()
                proc.wait(30)
            verdict = "within" if above <= CAP_MIB else "OVER"
            print(
                f"  {name:<40} body {len(body) / MIB:6.1f} MiB  status {status}  "
                f"peak {above:7.1f} MiB above idle ({verdict} the cap)"
                + ("" if status < 300 else f"  {answer[:80]!r}")
            )


if __name__ == "__main__":
    main()
