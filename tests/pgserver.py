"""A throwaway PostgreSQL cluster for tests, started with initdb/pg_ctl on a free port.

PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser -u postgres --``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_pg_bin(name: str) -> str | None:
    """Path of a PostgreSQL server binary (PATH, then Debian's versioned folders)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Cluster:
    datadir: str
    port: int
    pg_ctl: str
    prefix: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", self.datadir, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(os.path.dirname(self.datadir), ignore_errors=True)


#: Tests trade durability for speed: nothing they write must survive a crash.
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
#: bench/: files that survive a crash (fsync, full-page writes), but commits that do not wait for
#: their WAL flush by default: not crash-safe, a crash of PostgreSQL or the machine loses the last
#: commits. Fieldstation's connections set synchronous_commit themselves (DURABILITY).
BENCH = "-c fsync=on -c synchronous_commit=off -c full_page_writes=on"


def start_cluster(durability: str = FAST) -> Cluster:
    """initdb + pg_ctl start on a free loopback port; raises RuntimeError when impossible.

    ``durability`` is :data:`FAST` (tests) or :data:`BENCH`.
    """
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    base = tempfile.mkdtemp(prefix="fieldstation-pg-")
    datadir = os.path.join(base, "data")
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if not runuser:
            raise RuntimeError("running as root needs runuser to start PostgreSQL as 'postgres'")
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
        os.chmod(base, 0o700)
    port = free_port()
    run = [
        *prefix,
        initdb,
        "-D",
        datadir,
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "-E",
        "UTF8",
    ]
    result = subprocess.run(run, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"initdb failed: {result.stderr.strip()[-500:]}")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 {durability} -c max_connections=100"
    start = [
        *prefix,
        pg_ctl,
        "-D",
        datadir,
        "-l",
        os.path.join(base, "log"),
        "-o",
        options,
        "-w",
        "start",
    ]
    result = subprocess.run(start, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()[-500:]}")
    return Cluster(datadir, port, pg_ctl, prefix)
