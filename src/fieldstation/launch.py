"""``fieldstation serve``: start the web server as a child and say where it is only once it answers.

uWSGI and gunicorn print a banner of dozens of lines before they listen, and a
busy port's error came 18 lines after "Fieldstation on http://…". Here the port
is tried first (one line when it is taken), the server's start-up output is held
back, and the address is announced when the server answers its first request;
if the server dies first, its last line is the error. After that its output
(errors, the access log) passes through.

All the launcher does is on the way to the first answer, so this module imports
only what ``serve`` needs (click, the settings, SQLAlchemy's core for one query),
and the ``fieldstation`` command loads it alone for ``serve``
(:mod:`fieldstation.__main__`): not the other commands, nor the app they build.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from flask import Config

from fieldstation.serving import SERVERS, default_server, server_command

#: How long a server may take to answer its first request.
START_TIMEOUT_S = 120.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="FIELDSTATION_HOST")
@click.option("--port", default=8000, show_default=True, type=int, envvar="FIELDSTATION_PORT")
@click.option("--workers", default=2, show_default=True, type=int, envvar="FIELDSTATION_WORKERS")
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    envvar="FIELDSTATION_SERVER",
    help="Default: uwsgi when the fieldstation[uwsgi] extra is installed, else gunicorn.",
)
@click.option("--access-log/--no-access-log", default=False, envvar="FIELDSTATION_ACCESS_LOG")
@click.option("--verbose", is_flag=True, help="Show the server's start-up output too.")
@click.option("--init", "init_first", is_flag=True, help="Run `init` first; a one-time password comes last.")
def serve_command(
    host: str, port: int, workers: int, server: str | None, access_log: bool, verbose: bool, init_first: bool
) -> None:
    """Serve with uWSGI or gunicorn (production); `fieldstation dev run` is Flask's development server."""
    one_time = _initialise() if init_first else None
    config = _check_database()
    server = server or default_server()
    from fieldstation.instance import default_instance_path
    from fieldstation.metrics import prepare_multiprocess_dir

    prepare_multiprocess_dir(Path(default_instance_path()) / "metrics")  # the workers' /metrics
    max_body = int(config["MAX_CONTENT_LENGTH"] or 0)
    args = server_command(server, host, port, workers, access_log=access_log, max_body=max_body)

    def announce() -> None:
        plural = "worker" if workers == 1 else "workers"
        click.echo(f"Fieldstation is answering on {local_url(host, port)}/ ({server}, {workers} {plural})")
        if host in ANY_ADDRESS:
            lan = lan_address()
            if lan:
                click.echo(f"devices and other computers on your network: http://{lan}:{port}/")
        if one_time:
            click.echo(one_time)  # last, under nothing that could scroll it away

    try:
        run(args, host, port, announce, verbose=verbose)  # becomes the relay; returns only on error
    except LaunchError as exc:
        if one_time:  # the admin exists now: a second run would not show the password again
            click.echo(one_time)
        raise click.ClickException(str(exc)) from None


def _initialise() -> str | None:
    """``init`` before serving (``make run``); the one-time password's line, if one was made.

    Only here does ``serve`` build the app and load Alembic; a plain ``serve`` needs neither.
    """
    from flask.cli import ScriptInfo

    from fieldstation.cligroup import friendly
    from fieldstation.dbcommands import initialise

    with click.get_current_context().ensure_object(ScriptInfo).load_app().app_context():
        return friendly(initialise)("admin", os.environ.get("FIELDSTATION_ADMIN_PASSWORD"))


def _check_database() -> Config:
    """The settings, once the database is in reach and migrated; without building the whole app.

    Only the settings are read (``configured_app``): the web server's workers build
    their own app, and building one here too would double the time to the first answer.
    """
    from sqlalchemy import create_engine

    from fieldstation.config import ConfigError
    from fieldstation.instance import default_instance_path, ensure_config
    from fieldstation.schema import DatabaseNotReady, check_migrated
    from fieldstation.settings import configured_app

    if not os.environ.get("FIELDSTATION_SECRET_KEY"):
        ensure_config(default_instance_path())
    try:
        config = configured_app().config
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    engine = create_engine(config["SQLALCHEMY_DATABASE_URI"])
    try:
        check_migrated(engine)
    except DatabaseNotReady as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    return config


class LaunchError(RuntimeError):
    """The server could not start; the message is one line."""


def check_port(host: str, port: int) -> None:
    """Bind ``host:port`` for a moment, as the server will.

    :raise LaunchError: the port is taken, not ours to use, or the address is not this host's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                message = f"port {port} on {host} is in use: stop the other server or pick --port"
                raise LaunchError(message) from None
            if exc.errno == errno.EACCES:
                raise LaunchError(f"no permission to listen on port {port}: pick --port above 1023") from None
            raise LaunchError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def lan_address() -> str | None:
    """This host's address on its local network (the one its default route uses), or None.

    Connecting a UDP socket sends nothing; it only makes the kernel choose the source address.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, never sent to
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if ipaddress.ip_address(address).is_loopback else address


def local_url(host: str, port: int) -> str:
    """A URL this host reaches the server at (loopback when it listens on every address)."""
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def wait_for_answer(
    host: str, port: int, alive: Callable[[], bool], timeout: float = START_TIMEOUT_S
) -> bool:
    """True once ``GET /ping`` on the server gets any HTTP answer; False when ``alive()`` turns false."""
    target = "127.0.0.1" if host in ANY_ADDRESS else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        connection = http.client.HTTPConnection(target, port, timeout=5)
        try:
            connection.request("GET", "/ping")
            connection.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
        finally:
            connection.close()
    return False


def run(
    argv: list[str], host: str, port: int, announce: Callable[[], None], *, verbose: bool = False
) -> None:
    """Run the server ``argv``; call ``announce`` once it answers; then become a small relay.

    Once the server answers, this process (the whole CLI, some 50 MB) replaces itself
    with :data:`RELAY`, a bare Python that passes the server's output on, forwards
    SIGTERM and SIGHUP to it, and exits with its status: the server stays this
    process's child, and the process id the user or systemd started stays the one to signal.

    :raise LaunchError: the port is unusable, or the server died before answering.
    """
    check_port(host, port)
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    relay = _Relay(child.stdout.fileno(), verbose)
    relay.start()
    # Ctrl-C reaches the whole process group, the server included: let it stop, then report.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for forwarded in _FORWARDED:
        signal.signal(forwarded, lambda signum, _frame: child.send_signal(signum))
    if not wait_for_answer(host, port, lambda: child.poll() is None):
        if child.poll() is None:
            child.terminate()
        child.wait()
        relay.join(5)
        why = relay.last_line() or f"exit status {child.returncode}"
        raise LaunchError(f"the server did not start: {why}")
    relay.stop()
    if not verbose:
        relay.drain()  # start-up lines written just before the first answer
    announce()
    sys.stdout.flush()
    sys.stderr.flush()
    pipe = child.stdout.fileno()
    os.set_inheritable(pipe, True)
    # Between execv and the relay's own handlers a SIGTERM would end the relay and orphan the
    # server: the signals wait, blocked (the mask survives execv), until the relay takes them.
    signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", RELAY, str(pipe), str(child.pid)])


#: The signals the launcher and then the relay pass on to the server.
_FORWARDED = {signal.SIGTERM, signal.SIGHUP}


#: What the launcher becomes once the server answers (argv: the output pipe's fd, the server's pid).
RELAY = """
import os, signal, sys
fd, pid = int(sys.argv[1]), int(sys.argv[2])
signal.signal(signal.SIGINT, signal.SIG_IGN)
for number in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(number, lambda n, _f: os.kill(pid, n))
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGHUP})  # blocked by the launcher
while data := os.read(fd, 65536):
    os.write(2, data)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


class _Relay(threading.Thread):
    """Reads the server's output until it answers: kept (its last 16 KiB), or shown with ``verbose``."""

    def __init__(self, pipe: int, verbose: bool) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.verbose = verbose
        self.held = bytearray()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            if not select.select([self.pipe], [], [], 0.05)[0]:
                continue
            data = os.read(self.pipe, 65536)
            if not data:
                return
            if self.verbose:
                os.write(2, data)
            else:
                self.held += data
                del self.held[:-16384]

    def stop(self) -> None:
        """Stop reading (within 50 ms); the pipe is left to the relay."""
        self.stopping.set()
        self.join()

    def drain(self) -> None:
        """Read and drop what the server has written so far (its start-up banner)."""
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and select.select([self.pipe], [], [], 0.05)[0]:
            if not os.read(self.pipe, 65536):
                return

    def last_line(self) -> str:
        """The server's last meaningful line (its error, usually)."""
        lines = [line.strip() for line in self.held.decode(errors="replace").splitlines() if line.strip()]
        for line in reversed(lines):
            if "error" in line.lower() or "exception" in line.lower():
                return line[:300]
        return lines[-1][:300] if lines else ""
