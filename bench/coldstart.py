#!/usr/bin/env python3
"""Cold start to the first answer, and idle memory, beside InfluxDB 1.x's measured in the same run.

For each way to run Fieldstation — ``fieldstation serve`` as a user starts it
(uWSGI when installed, and gunicorn), and the bare web server command that
``serve`` starts (what remains once the launcher's own checks are done) — the
bench starts it on a migrated SQLite database, 2 workers, and times from the
process start until ``GET /ping`` first answers; five cold starts, median and
range. Then, with the server idle for a few seconds after one request per worker,
it sums the memory of the server's process tree: PSS (each shared page split
between the processes sharing it; what the processes cost together) and RSS.
``influxd`` (Debian package ``influxdb``) gets the same: start to first
``/ping``, and its idle memory with an empty database.

The CPU column is the CPU time all the server's processes used until the first
answer (median), the path column that of its busiest chain (the launcher, the
master, the busiest worker: each had to run before the next could start or answer,
while the workers start side by side). On a busy shared machine the wall time
waits for other people's work; on a quiet one with a core per worker it comes
close to the path figure.

The starts of all the servers take turns (one of each, then the next round), so a
machine whose speed drifts weighs on all of them alike. ``--against DIR`` adds the
same Fieldstation starts from another checkout (its ``src`` first on PYTHONPATH),
taking turns with this one's: before and after a change, in the same run.

Each source tree is compiled to bytecode first (``compileall``), as installing a
wheel does and a checkout's first run does: with ``PYTHONDONTWRITEBYTECODE`` set,
as on some CI machines, every start would compile Fieldstation's modules again.

Usage: ``.venv/bin/python bench/coldstart.py`` (a few minutes); ``--runs 9``;
``--against /path/to/other/checkout``. Import times of a worker: ``python -X
importtime -c "from fieldstation.wsgi import served_app; served_app()"``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "src"))

from tests.pgserver import free_port  # noqa: E402

FIELDSTATION = str(Path(sys.executable).with_name("fieldstation"))


def answered(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/ping")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def own_cpu(pid: int) -> float:
    """CPU seconds of one process (and of its children that were waited for), 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime


def cpu_seconds(pid: int) -> float:
    """CPU time the process tree has used so far."""
    return sum(own_cpu(member) for member in tree(pid))


def cpu_path(pid: int) -> float:
    """CPU time along the tree's busiest chain: this process, then its busiest child's chain.

    Each process of the chain had to run before the next could start or answer (the
    launcher before the server, the master before its workers), while sibling workers
    start side by side: on a quiet machine with a core per worker, the wait for the first
    answer is about this.
    """
    return own_cpu(pid) + max((cpu_path(child) for child in children(pid)), default=0.0)


def first_answer(
    command: list[str], port: int, env: dict[str, str]
) -> tuple[float, float, float, subprocess.Popen[bytes]]:
    """Seconds from starting ``command`` to its first answer on ``port``, the CPU seconds its
    processes used until then, and those of its busiest chain (:func:`cpu_path`); it keeps running."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not answered(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {proc.returncode}")
        if time.perf_counter() - started > 60:
            proc.kill()
            raise RuntimeError(f"{command[0]} did not answer in 60 s")
        time.sleep(0.01)
    return time.perf_counter() - started, cpu_seconds(proc.pid), cpu_path(proc.pid), proc


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children(current)
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """(PSS, RSS) of the process tree in MiB, from /proc/<pid>/smaps_rollup."""
    pss = rss = 0
    for member in tree(pid):
        try:
            text = Path(f"/proc/{member}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name in ("Pss", "Rss"):
                kib = int(rest.split()[0])
                pss += kib if name == "Pss" else 0
                rss += kib if name == "Rss" else 0
    return pss / 1024, rss / 1024


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


Start = Callable[[int], tuple[list[str], dict[str, str]]]


def measure(servers: list[tuple[str, Start]], runs: int) -> list[dict[str, object]]:
    """Start each of ``servers`` ``runs`` times, taking turns; each one's last start stays up a
    moment to be weighed idle."""
    results: list[dict[str, object]] = [
        {"name": name, "times": [], "cpu": [], "path": [], "pss": 0.0, "rss": 0.0} for name, _ in servers
    ]
    for run in range(runs):
        for (_, make), result in zip(servers, results, strict=True):
            port = free_port()
            command, env = make(port)
            seconds, cpu, path, proc = first_answer(command, port, env)
            result["times"].append(seconds)  # type: ignore[attr-defined]
            result["cpu"].append(cpu)  # type: ignore[attr-defined]
            result["path"].append(path)  # type: ignore[attr-defined]
            if run == runs - 1:
                for _ in range(4):  # a request per worker, whichever takes it
                    answered(port)
                time.sleep(3)
                result["pss"], result["rss"] = memory_mib(proc.pid)
            stop(proc)
    return results


def with_source(env: dict[str, str], source: Path) -> dict[str, str]:
    """``env`` with the checkout ``source``'s modules first on the path, compiled to bytecode."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(source / "src")], check=True)
    return env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(source / "src"), env.get("PYTHONPATH")]))}


def fieldstation_starts(label: str, env: dict[str, str]) -> list[tuple[str, Start]]:
    """``fieldstation serve`` and the bare server command (this checkout's) with ``env``."""
    from fieldstation.serving import default_server, server_command

    starts: list[tuple[str, Start]] = []
    for server in ["uwsgi", "gunicorn"] if default_server() == "uwsgi" else ["gunicorn"]:
        starts.append(
            (
                f"{label}serve ({server})",
                lambda port, s=server: (
                    [FIELDSTATION, "serve", "--port", str(port), "--workers", "2", "--server", s],
                    env,
                ),
            )
        )
        starts.append(
            (
                f"{label}bare {server} command",
                lambda port, s=server: (server_command(s, "127.0.0.1", port, 2), env),
            )
        )
    return starts


def influxd_start(influxd: str, home: Path) -> Start:
    """``influxd`` with an empty database of its own in ``home`` for each start."""

    def start(port: int) -> tuple[list[str], dict[str, str]]:
        data = Path(tempfile.mkdtemp(dir=home))
        config = data / "influxdb.conf"
        config.write_text(
            "reporting-disabled = true\nreporting-enabled = false\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{data}/meta"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{data}/data"\n  wal-dir = "{data}/wal"\n  query-log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        )
        return [influxd, "-config", str(config)], dict(os.environ)

    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout, measured taking turns with this one")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fs-coldstart-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {
        "FIELDSTATION_INSTANCE_PATH": str(home / "instance"),
        "FIELDSTATION_ADMIN_PASSWORD": "bench-password",
    }
    this = with_source(env, ROOT)
    subprocess.run([FIELDSTATION, "init"], env=this, check=True, capture_output=True)
    servers = fieldstation_starts("fieldstation " if args.against is None else "this: ", this)
    if args.against is not None:
        servers += fieldstation_starts("against: ", with_source(env, args.against.resolve()))
    influxd = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").exists() else None)
    if influxd:
        servers.append(("influxd 1.x", influxd_start(influxd, home)))
    else:
        print("influxd is not installed (Debian package `influxdb`): no baseline")
    try:
        results = measure(servers, args.runs)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    report(results, args.runs)


def report(results: list[dict[str, object]], runs: int) -> None:
    """One line per server; ratios to influxd, and with --against, of this checkout to the other."""
    by_name = {str(r["name"]): r for r in results}
    baseline = by_name.get("influxd 1.x")
    print(f"\ncold start to the first answer ({runs} starts), idle memory of the process tree")
    print(
        f"{'':34} {'median s':>9} {'range s':>13} {'CPU s':>6} {'path s':>6} {'PSS MiB':>8} {'RSS MiB':>8}"
        "  vs influxd (time, PSS)  this vs against (time, CPU, PSS)"
    )
    for r in results:
        times = sorted(r["times"])  # type: ignore[type-var]
        median = statistics.median(times)
        ratio = ""
        if baseline is not None and r is not baseline:
            base_median = statistics.median(baseline["times"])  # type: ignore[arg-type]
            ratio = f"  {median / base_median:6.1f}x, {r['pss'] / baseline['pss']:5.1f}x"  # type: ignore[operator]
        other = by_name.get(str(r["name"]).replace("this: ", "against: ", 1))
        if other is not None and other is not r:
            ratio += "  {:.2f}x, {:.2f}x, {:.2f}x".format(
                median / statistics.median(other["times"]),  # type: ignore[arg-type]
                statistics.median(r["cpu"]) / statistics.median(other["cpu"]),  # type: ignore[arg-type]
                r["pss"] / other["pss"],  # type: ignore[operator]
            )
        print(
            f"{r['name']:34} {median:9.2f} {times[0]:6.2f}-{times[-1]:<6.2f} "
            f"{statistics.median(r['cpu']):6.2f} {statistics.median(r['path']):6.2f} "  # type: ignore[arg-type]
            f"{r['pss']:8.1f} {r['rss']:8.1f}{ratio}"
        )
    print(f"\nload average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
