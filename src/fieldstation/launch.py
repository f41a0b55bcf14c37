"""Start the web server as a child and say where it is only once it answers.

uWSGI and gunicorn print a banner of dozens of lines before they listen, and a
busy port's error came 18 lines after "Fieldstation on http://…". Here the port
is tried first (one line when it is taken), the server's start-up output is held
back, and the address is announced when the server answers its first request;
if the server dies first, its last line is the error. After that its output
(errors, the access log) passes through.
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

#: How long a server may take to answer its first request.
START_TIMEOUT_S = 120.0
ANY_ADDRESS = {"0.0.0.0", "::", ""}


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


def run(argv: list[str], host: str, port: int, announce: Callable[[], None], *, verbose: bool = False) -> int:
    """Run the server ``argv``; call ``announce`` once it answers; return its exit status.

    :raise LaunchError: the port is unusable, or the server died before answering.
    """
    check_port(host, port)
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    relay = _Relay(child, verbose)
    relay.start()
    # Ctrl-C reaches the whole process group, the server included: let it stop, then report.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for forwarded in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(forwarded, lambda signum, _frame: child.send_signal(signum))
    if not wait_for_answer(host, port, lambda: child.poll() is None):
        if child.poll() is None:
            child.terminate()
        child.wait()
        relay.join(5)
        why = relay.last_line() or f"exit status {child.returncode}"
        raise LaunchError(f"the server did not start: {why}")
    relay.pass_through()
    announce()
    return child.wait()


class _Relay(threading.Thread):
    """Reads the server's output: held back (the last lines kept) until it answers, then passed on."""

    def __init__(self, child: subprocess.Popen[bytes], verbose: bool) -> None:
        super().__init__(daemon=True)
        self.child = child
        self.held: deque[str] = deque(maxlen=50)
        self.passing = threading.Event()
        if verbose:
            self.passing.set()

    def run(self) -> None:
        assert self.child.stdout is not None
        for raw in self.child.stdout:
            line = raw.decode(errors="replace")
            if self.passing.is_set():
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self.held.append(line.rstrip())

    def pass_through(self) -> None:
        """From now on pass lines on; what the server wrote before its first answer stays held."""
        assert self.child.stdout is not None
        pipe = self.child.stdout.fileno()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and select.select([pipe], [], [], 0)[0]:
            time.sleep(0.01)  # the reader is still taking in start-up lines
        time.sleep(0.05)
        self.passing.set()

    def last_line(self) -> str:
        """The server's last meaningful line (its error, usually)."""
        lines = [line.strip() for line in self.held if line.strip()]
        for line in reversed(lines):
            if "error" in line.lower() or "exception" in line.lower():
                return line[:300]
        return lines[-1][:300] if lines else ""
