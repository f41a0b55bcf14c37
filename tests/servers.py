"""Real Mosquitto and Dovecot (IMAP) servers for tests and benches, on free 127.0.0.1 ports.

Each runs in the foreground as a child process with a throwaway configuration and data
folder; ``stop()`` kills it and removes the folder. Starting raises RuntimeError when the
server is not installed or does not come up.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from tests.pgserver import free_port


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, log: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    tail = open(log, errors="replace").read()[-800:] if os.path.exists(log) else ""
    raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}: {tail}")


def make_certificate(folder: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA): (cert path, key path)."""
    openssl = _binary("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class Server:
    """A running server: its port, process and folder."""

    port: int
    process: subprocess.Popen[bytes]
    base: str

    def stop(self) -> None:
        """Kill the server and remove its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class Mosquitto(Server):
    """A broker; ``username``/``password`` are set in the password-file variant."""

    username: str | None = None
    password: str | None = None
    #: Set for a TLS listener: the certificate clients trust.
    ca_file: str | None = None

    @property
    def url(self) -> str:
        """The broker URL ``fieldstation mqtt`` takes."""
        auth = f"{self.username}:{self.password}@" if self.username else ""
        return f"{'mqtts' if self.ca_file else 'mqtt'}://{auth}127.0.0.1:{self.port}"


def start_mosquitto(
    *,
    username: str | None = None,
    password: str | None = None,
    extra: list[str] | None = None,
    port: int | None = None,
    tls: bool = False,
) -> Mosquitto:
    """Mosquitto on a free port; anonymous, or with one user in a password file; ``extra`` config lines."""
    binary = _binary("mosquitto")
    if binary is None:
        raise RuntimeError("mosquitto is not installed (Debian package mosquitto)")
    base = tempfile.mkdtemp(prefix="fieldstation-mosquitto-")
    port = port or free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        # Hold every message for a worker that is down or slow (the default drops beyond 1000).
        "max_queued_messages 0",
        "persistence false",
        f"log_dest file {base}/log",
        f"user {getpass.getuser()}",
        *(extra or []),
    ]
    ca_file = None
    if tls:
        ca_file, key = make_certificate(base)
        lines += [f"certfile {ca_file}", f"keyfile {key}"]
    if username is not None:
        passwd = _binary("mosquitto_passwd")
        if passwd is None:
            raise RuntimeError("mosquitto_passwd is not installed")
        path = os.path.join(base, "passwd")
        subprocess.run([passwd, "-b", "-c", path, username, password or ""], check=True, capture_output=True)
        os.chmod(path, 0o600)
        lines += ["allow_anonymous false", f"password_file {path}"]
    else:
        lines.append("allow_anonymous true")
    conf = os.path.join(base, "mosquitto.conf")
    with open(conf, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    process = subprocess.Popen([binary, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_port(port, process, "mosquitto", os.path.join(base, "log"))
    return Mosquitto(port, process, base, username, password, ca_file)


@dataclass
class Dovecot(Server):
    """An IMAP server with one user and a maildir."""

    username: str = "sensors"
    password: str = "imap-secret"
    #: IMAP over TLS port and the certificate to trust (plain IMAP then offers STARTTLS).
    tls_port: int = 0
    ca_file: str | None = None

    def url(self, folder: str = "INBOX", scheme: str = "imap") -> str:
        """The mailbox URL ``fieldstation mail`` takes: ``imap``, ``imap+starttls`` or ``imaps``."""
        port = self.tls_port if scheme == "imaps" else self.port
        return f"{scheme}://{self.username}:{self.password}@127.0.0.1:{port}/{folder}"


_DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{base}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid={internal} gid={group} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""


def start_dovecot(*, tls: bool = False) -> Dovecot:
    """Dovecot (``dovecot -F``) on a free port with a throwaway config and mail store.

    As root, Dovecot's own unprivileged users run its processes and own the mail store.
    """
    binary = _binary("dovecot")
    if binary is None:
        raise RuntimeError("dovecot is not installed (Debian package dovecot-imapd)")
    base = tempfile.mkdtemp(prefix="fieldstation-dovecot-")
    os.chmod(base, 0o755)
    server = Dovecot(free_port(), subprocess.Popen(["true"]), base)
    if os.geteuid() == 0:
        internal, group, login = "dovecot", "dovecot", "dovenull"
    else:
        internal = login = getpass.getuser()
        group = str(os.getgid())
    os.makedirs(os.path.join(base, "mail"))
    if os.geteuid() == 0:
        shutil.chown(os.path.join(base, "mail"), internal, group)
    with open(os.path.join(base, "passwd"), "w") as handle:
        handle.write(f"{server.username}:{{PLAIN}}{server.password}::::::\n")
    conf = os.path.join(base, "dovecot.conf")
    ssl = "ssl = no"
    if tls:
        server.ca_file, key = make_certificate(base)
        server.tls_port = free_port()
        ssl = f"ssl = yes\nssl_cert = <{server.ca_file}\nssl_key = <{key}"
    settings = {"internal": internal, "group": group, "login": login, "port": server.port}
    with open(conf, "w") as handle:
        handle.write(_DOVECOT_CONF.format(base=base, ssl=ssl, tls_port=server.tls_port, **settings))
    server.process.wait()
    server.process = subprocess.Popen(
        [binary, "-F", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_port(server.port, server.process, "dovecot", os.path.join(base, "log"))
    return server


@dataclass
class InfluxDB(Server):
    """InfluxDB 1.x over HTTP (no auth), with the databases it was started with."""

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://127.0.0.1:{self.port}"


def start_influxdb(*databases: str) -> InfluxDB:
    """``influxd`` (Debian's ``influxdb``) on free ports with a throwaway data folder, and ``databases``."""
    binary = _binary("influxd")
    if binary is None:
        raise RuntimeError("influxd is not installed (Debian package influxdb)")
    base = tempfile.mkdtemp(prefix="fieldstation-influxdb-")
    port, rpc = free_port(), free_port()
    conf = os.path.join(base, "influxdb.conf")
    with open(conf, "w") as handle:
        handle.write(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc}"\n'
            f'[meta]\n  dir = "{base}/meta"\n  logging-enabled = false\n'
            f'[data]\n  dir = "{base}/data"\n  wal-dir = "{base}/wal"\n  query-log-enabled = false\n'
            f'  index-version = "inmem"\n'
            f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
            f"[monitor]\n  store-enabled = false\n[continuous_queries]\n  enabled = false\n"
        )
    log = os.path.join(base, "log")
    with open(log, "wb") as out:
        process = subprocess.Popen([binary, "-config", conf], stdout=out, stderr=out)
    _wait_for_port(port, process, "influxd", log)
    server = InfluxDB(port, process, base)
    deadline = time.monotonic() + 10
    for name in databases:
        while True:  # the HTTP port opens a moment before the meta store takes statements
            try:
                query(server, f'CREATE DATABASE "{name}"')
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise
                time.sleep(0.05)
    return server


def query(server: InfluxDB, q: str, **params: str) -> object:
    """Run InfluxQL on ``server`` (POST /query); its JSON answer.

    :raise RuntimeError: the server answered with an error status.
    """
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    data = urllib.parse.urlencode({"q": q, **params}).encode()
    try:
        with urllib.request.urlopen(f"{server.url}/query", data=data, timeout=30) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, ConnectionError) as exc:
        raise RuntimeError(f"influxd: {exc}") from exc


class Prometheus(Server):
    """A Prometheus server scraping one target; ask it with :meth:`query`."""

    def query(self, expression: str) -> list[dict[str, object]]:
        """The instant vector of a PromQL expression."""
        import json
        import urllib.parse
        import urllib.request

        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as answer:
            result: list[dict[str, object]] = json.load(answer)["data"]["result"]
        return result


def start_prometheus(target: str, *, metrics_path: str = "/metrics") -> Prometheus:
    """Prometheus (Debian's ``prometheus``) on a free port, scraping ``target`` (host:port) every second."""
    binary = _binary("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed (Debian package prometheus)")
    base = tempfile.mkdtemp(prefix="fieldstation-prometheus-")
    port = free_port()
    conf = os.path.join(base, "prometheus.yml")
    with open(conf, "w") as handle:
        handle.write(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: fieldstation\n"
            f"    metrics_path: {metrics_path}\n    static_configs:\n      - targets: ['{target}']\n"
        )
    log = os.path.join(base, "log")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={conf}",
                f"--storage.tsdb.path={base}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _wait_for_port(port, process, "prometheus", log)
    server = Prometheus(port, process, base)
    _wait_until_ready(server)
    return server


def _wait_until_ready(server: Prometheus, timeout: float = 30) -> None:
    """Prometheus opens its port before it takes queries (503 until its storage is ready)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/-/ready", timeout=5):
                return
        except urllib.error.HTTPError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.1)


class WebhookReceiver:
    """A real HTTP server that records each POST (headers and body) and answers as told.

    ``answers`` is consumed one per request (status codes, or callables taking the
    request handler); when it runs out, requests get 200. ``hold`` blocks answering
    until set (the crash test kills the sender meanwhile).
    """

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[object] = []
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.set()
                receiver.hold.wait(60)
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if callable(answer):
                    answer(self)
                    return
                self.send_response(int(answer))  # type: ignore[call-overload]
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[dict[str, object]]:
        import json

        return [json.loads(body) for _, body in self.requests]

    def stop(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


class SmtpServer:
    """aiosmtpd on a free loopback port: STARTTLS (``tls="starttls"``), implicit TLS or plain; one login."""

    def __init__(
        self, tls: str = "starttls", username: str = "alerts", password: str = "smtp pass 1!"
    ) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.base = tempfile.mkdtemp(prefix="fieldstation-smtp-")
        self.cert, key = make_certificate(self.base)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []
        self.username, self.password = username, password
        server = self

        class Handler:
            async def handle_DATA(self, _server: object, _session: object, envelope: object) -> str:  # noqa: N802
                server.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content))  # type: ignore[attr-defined]
                return "250 OK"

        def authenticate(
            _server: object, _session: object, _envelope: object, _mechanism: str, data: object
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
                username,
                password,
            )
            if ok:
                server.logins.append(data.login.decode())  # type: ignore[union-attr]
            return AuthResult(success=ok)

        self.port = free_port()
        kwargs: dict[str, object] = {"authenticator": authenticate, "auth_require_tls": tls != "none"}
        if tls == "starttls":
            kwargs |= {"tls_context": context, "require_starttls": True}
        elif tls == "none":
            kwargs |= {"auth_require_tls": False}
        if tls == "tls":  # the whole connection is TLS; aiosmtpd counts only STARTTLS as TLS for AUTH
            kwargs |= {"ssl_context": context, "auth_require_tls": False}
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]
        self.controller.start()

    def config(self, security: str = "starttls") -> dict[str, object]:
        """The app settings that send to this server."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": self.port,
            "SMTP_SECURITY": security,
            "SMTP_USERNAME": self.username,
            "SMTP_PASSWORD": self.password,
            "SMTP_CA_FILE": self.cert,
            "SMTP_FROM": "alerts@example.org",
            "SMTP_TIMEOUT_S": 5,
        }

    def stop(self) -> None:
        self.controller.stop()
        shutil.rmtree(self.base, ignore_errors=True)
