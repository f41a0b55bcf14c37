"""E-mail ingest: rules (pure) and the IMAP poller against a real Dovecot, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import imaplib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.mail.poller import Mailbox, _mail, parse_every
from fieldstation.mail.rules import Mail, load_rules, to_batch
from fieldstation.models import EntryRecord, Field, ReadingRecord
from fieldstation.timeunits import datetime_to_us
from tests.conftest import unavailable
from tests.factories import make_channel, make_user
from tests.pgserver import free_port
from tests.servers import Dovecot, start_dovecot

NEW_YORK = dt.timezone(dt.timedelta(hours=-4))  # EDT, July 2015
MOTION_RULE: dict[str, Any] = {
    "name": "wemo-motion",
    "pattern": r"Motion detected by '(?P<sensor>[^']+)' on: (?P<time>.+)$",
    "time_format": "%B %d, %Y at %I:%M%p",
    "timezone": "America/New_York",
    "sender": r"@ifttt\.com>?$",
}
#: The seed's IFTTT mails (WeMo motion sensor): two sensors in the same minute, one later.
SEED_SUBJECTS = [
    "Motion detected by 'Hall' on: July 7, 2015 at 10:23PM",
    "Motion detected by 'Kitchen' on: July 7, 2015 at 10:23PM",
    "Motion detected by 'Hall' on: July 8, 2015 at 07:05AM",
]


def rule(channel: int, **extra: Any) -> dict[str, Any]:
    return {**MOTION_RULE, "channel": channel, **extra}


def mail(subject: str, message_id: str = "<1@ifttt.com>", sender: str = "IFTTT <action@ifttt.com>") -> Mail:
    return Mail(subject, "", sender, message_id, None, 1_436_000_000_000_000)


# -- rules (pure) ------------------------------------------------------------------------------


def test_seed_subject_becomes_a_motion_event() -> None:
    matched = to_batch(load_rules([rule(5)]), mail(SEED_SUBJECTS[0]))
    assert matched is not None
    batch = matched[1]
    (entry,) = batch.entries
    assert batch.channel_id == 5
    assert entry.values == {1: 1.0} and entry.status == "Hall"
    minute = datetime_to_us(dt.datetime(2015, 7, 7, 22, 23, tzinfo=NEW_YORK))
    assert minute <= entry.ts < minute + 1_000_000  # within the second the mail names  # type: ignore[operator]


def test_same_minute_different_sensors_get_different_timestamps_and_rereads_the_same() -> None:
    rules = load_rules([rule(5)])
    hall = to_batch(rules, mail(SEED_SUBJECTS[0], "<a@ifttt.com>"))
    kitchen = to_batch(rules, mail(SEED_SUBJECTS[1], "<b@ifttt.com>"))
    again = to_batch(rules, mail(SEED_SUBJECTS[0], "<a@ifttt.com>"))
    assert hall and kitchen and again
    assert hall[1].entries[0].ts != kitchen[1].entries[0].ts
    assert hall[1].entries[0].ts == again[1].entries[0].ts


def test_sensor_fields_channel_map_value_group_and_sender() -> None:
    rules = load_rules(
        [
            rule(5, fields={"Kitchen": 2}),
            {
                "name": "meter",
                "pattern": r"(?P<channel>\w+) meter: (?P<value>[\d.]+) kWh",
                "channels": {"garage": 9},
                "field": 3,
            },
        ]
    )
    kitchen = to_batch(rules, mail(SEED_SUBJECTS[1]))
    assert kitchen and kitchen[1].entries[0].values == {2: 1.0}
    meter = to_batch(rules, mail("garage meter: 12.5 kWh"))
    assert meter and meter[1].channel_id == 9 and meter[1].entries[0].values == {3: 12.5}
    assert to_batch(rules, mail(SEED_SUBJECTS[0], sender="Mallory <m@example.com>")) is None
    with pytest.raises(BadRequest, match="no channel"):
        to_batch(rules, mail("attic meter: 1 kWh"))


def test_body_rule_with_value_and_iso_time() -> None:
    rules = load_rules(
        [
            {
                "name": "meter",
                "pattern": r"reading (?P<value>[\d.]+) at (?P<time>\S+)",
                "match": "body",
                "channel": 4,
            }
        ]
    )
    message = Mail(
        "Daily report", "Hello,\nreading 12.25 at 2024-05-01T06:00:00+02:00\n", "m@x", "<m@x>", None, 0
    )
    matched = to_batch(rules, message)
    assert matched is not None
    (entry,) = matched[1].entries
    assert entry.values == {1: 12.25} and entry.status is None
    start = datetime_to_us(dt.datetime(2024, 5, 1, 4, tzinfo=dt.UTC))
    assert start <= entry.ts < start + 1_000_000  # type: ignore[operator]
    assert (
        to_batch(rules, Mail("reading 1 at 2024-05-01", "", "m@x", "<n@x>", None, 0)) is None
    )  # subject ignored


def test_unmatched_and_bad_times() -> None:
    rules = load_rules([rule(5)])
    assert to_batch(rules, mail("Your weekly digest")) is None
    with pytest.raises(BadRequest, match="does not match"):
        to_batch(rules, mail("Motion detected by 'Hall' on: yesterday"))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"name": "x", "pattern": "("}, "regular expression"),
        ({"name": "x", "pattern": "a"}, "channel"),
        ({"name": "x", "pattern": "a", "channel": 1, "nonsense": 1}, "nonsense"),
        ({"name": "x", "pattern": "a", "channel": 1, "timezone": "Mars/Base"}, "time zone"),
    ],
)
def test_bad_rules_are_refused_at_start(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        load_rules([bad])


def test_every_and_mailbox_url() -> None:
    assert (parse_every("15m"), parse_every("90"), parse_every("1h")) == (900, 90, 3600)
    with pytest.raises(BadRequest):
        parse_every("soon")
    box = Mailbox.from_url("imaps://me%40gmail.com:p%2Fw@imap.gmail.com/IFTTT%20Motion")
    assert (box.host, box.port, box.security, box.username, box.password, box.folder) == (
        "imap.gmail.com", 993, "tls", "me@gmail.com", "p/w", "IFTTT Motion",
    )  # fmt: skip
    assert Mailbox.from_url("imap+starttls://u:p@h").security == "starttls"
    with pytest.raises(BadRequest):
        Mailbox.from_url("http://u:p@h/")


@settings(max_examples=300, deadline=None)
@given(
    subject=st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda who, when: f"Motion detected by '{who}' on: {when}",
            st.text(max_size=300),
            st.text(max_size=40),
        ),
    )
)
def test_any_subject_matches_cleanly_or_is_refused_with_a_reason(subject: str) -> None:  # fmt: skip
    try:
        matched = to_batch(load_rules([rule(5)]), mail(subject))
    except BadRequest as exc:
        reason = exc.message
        assert reason
        return
    if matched is not None:
        (entry,) = matched[1].entries
        assert entry.values == {1: 1.0} and entry.ts is not None


@settings(max_examples=300, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.builds(
            lambda headers, body: ("\r\n".join(headers) + "\r\n\r\n" + body).encode(
                "utf-8", "surrogateescape"
            ),
            st.lists(
                st.sampled_from(
                    [
                        "Subject: =?utf-8?b?bm90IGI2NA?=",
                        "From: <<@>>",
                        "Date: yesterday",
                        "Content-Type: text/plain; charset=nonsense",
                        "Message-ID:",
                        "From: a\rb",
                        "Content-Type: multipart/mixed; boundary=x",
                        "Content-Transfer-Encoding: base64",
                    ]
                ),
                max_size=6,
            ),
            st.text(max_size=60),
        ),
    )
)
def test_any_fetched_message_is_read_or_refused_with_a_reason(raw: bytes) -> None:  # fmt: skip
    envelope = b'1 (UID 1 INTERNALDATE "24-Nov-2026 10:46:43 +0000" BODY[] {10}'
    try:
        mail = _mail(envelope, raw)
    except BadRequest as exc:
        reason = exc.message
        assert reason
        return
    assert mail.arrived == datetime_to_us(dt.datetime(2026, 11, 24, 10, 46, 43, tzinfo=dt.UTC))
    assert mail.message_id


# -- a real IMAP server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imap_server() -> Iterator[Dovecot]:
    try:
        server = start_dovecot()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    yield server
    server.stop()


@pytest.fixture
def folder(imap_server: Dovecot) -> str:
    """A fresh folder (a Gmail label looks the same over IMAP), with a space in its name."""
    name = f"IFTTT {uuid.uuid4().hex[:6]}"
    with imap(imap_server) as conn:
        conn.create(f'"{name}"')
    return name


class imap:  # noqa: N801 - used like a function in `with`
    """A logged-in IMAP connection to the test server."""

    def __init__(self, server: Dovecot) -> None:
        self.conn = imaplib.IMAP4("127.0.0.1", server.port)
        self.conn.login(server.username, server.password)

    def __enter__(self) -> imaplib.IMAP4:
        return self.conn

    def __exit__(self, *_: object) -> None:
        self.conn.logout()


def deliver(server: Dovecot, folder: str, subject: str, *, sender: str = "IFTTT <action@ifttt.com>") -> None:
    """Put a message into the folder, as the mail server would (IMAP APPEND)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "me@example.com"
    message["Subject"] = subject
    message["Date"] = "Wed, 08 Jul 2015 02:23:41 +0000"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@ifttt.com>"
    message.set_content("Sent by IFTTT\n")
    with imap(server) as conn:
        status, _ = conn.append(f'"{folder}"', "", None, message.as_bytes())
        assert status == "OK"


def unseen(server: Dovecot, folder: str) -> list[str]:
    """Subjects of the folder's unseen messages, as a mail client shows them."""
    with imap(server) as conn:
        conn.select(f'"{folder}"', readonly=True)
        _, data = conn.search(None, "UNSEEN")
        subjects = []
        for num in data[0].split():
            _, parts = conn.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(parts[0][1].decode().split(":", 1)[1].strip())  # type: ignore[index,union-attr]
        return subjects


def events(channel_id: int) -> list[tuple[str | None, float | None]]:
    """(sensor, value) of every entry in time order."""
    db.session.rollback()
    rows = db.session.execute(
        select(EntryRecord.status, ReadingRecord.value)
        .join(Field, Field.channel_id == EntryRecord.channel_id)
        .join(ReadingRecord, (ReadingRecord.field_id == Field.id) & (ReadingRecord.ts == EntryRecord.ts))
        .where(EntryRecord.channel_id == channel_id)
        .order_by(EntryRecord.ts)
    ).all()
    return [(status, value) for status, value in rows]


def test_seed_mails_become_entries_once_each(
    app: Flask, runner: FlaskCliRunner, imap_server: Dovecot, folder: str
) -> None:
    channel = make_channel(make_user().user, "motion", ("motion",))
    app.config["MAIL_RULES"] = [rule(channel.id)]
    for subject in SEED_SUBJECTS:
        deliver(imap_server, folder, subject)
    deliver(imap_server, folder, "Your weekly digest")
    deliver(imap_server, folder, SEED_SUBJECTS[0].replace("Hall", "Porch"), sender="Mallory <m@example.com>")

    first = runner.invoke(args=["mail", imap_server.url(folder)])
    assert first.exit_code == 0, first.output
    assert "stored 3, unmatched 2" in first.output
    assert "Your weekly digest" in first.output
    second = runner.invoke(args=["mail", imap_server.url(folder)])
    assert "stored 0, unmatched 2" in second.output

    stored = events(channel.id)
    # Hall and Kitchen share a minute: two entries (their order inside the minute is unknown).
    assert sorted(stored[:2]) == [("Hall", 1.0), ("Kitchen", 1.0)]
    assert stored[2:] == [("Hall", 1.0)]
    assert sorted(unseen(imap_server, folder)) == sorted(
        ["Your weekly digest", "Motion detected by 'Porch' on: July 7, 2015 at 10:23PM"]
    )


def test_rereading_a_mail_does_not_duplicate_it(
    app: Flask, runner: FlaskCliRunner, imap_server: Dovecot, folder: str
) -> None:
    """A crash after the commit but before \\Seen means the mail is read again next time."""
    channel = make_channel(make_user().user, "motion", ("motion",))
    app.config["MAIL_RULES"] = [rule(channel.id)]
    deliver(imap_server, folder, SEED_SUBJECTS[0])
    assert "stored 1" in runner.invoke(args=["mail", imap_server.url(folder)]).output
    with imap(imap_server) as conn:
        conn.select(f'"{folder}"')
        conn.store("1:*", "-FLAGS", "(\\Seen)")  # as if \Seen had never been set
    assert "stored 1" in runner.invoke(args=["mail", imap_server.url(folder)]).output
    assert events(channel.id) == [("Hall", 1.0)]


def test_store_refusal_leaves_the_mail_unseen(
    app: Flask, runner: FlaskCliRunner, imap_server: Dovecot, folder: str
) -> None:
    app.config["MAIL_RULES"] = [rule(999_999)]  # a channel that does not exist
    deliver(imap_server, folder, SEED_SUBJECTS[0])
    result = runner.invoke(args=["mail", imap_server.url(folder)])
    assert "stored 0, unmatched 0, failed 1" in result.output
    assert unseen(imap_server, folder) == [SEED_SUBJECTS[0]]


def _nested(depth: int, subject: str) -> bytes:
    """A message whose MIME parts nest ``depth`` deep (the email parser recurses once per level)."""
    raw = f"Subject: {subject}\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n".encode()
    for i in range(1, depth):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
    return raw + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n" % (depth - 1)


def test_a_mail_nested_thousands_deep_is_refused_and_the_rest_are_stored(
    app: Flask, runner: FlaskCliRunner, imap_server: Dovecot, folder: str
) -> None:
    channel = make_channel(make_user().user, "motion", ("motion",))
    app.config["MAIL_RULES"] = [rule(channel.id)]
    deliver(imap_server, folder, SEED_SUBJECTS[0])
    with imap(imap_server) as conn:
        assert conn.append(f'"{folder}"', "", None, _nested(2000, SEED_SUBJECTS[1]))[0] == "OK"
    deliver(imap_server, folder, SEED_SUBJECTS[2])
    result = runner.invoke(args=["mail", imap_server.url(folder)])
    assert result.exit_code == 0, result.output
    assert "stored 2, unmatched 0, failed 1" in result.output and "nested too deeply" in result.output
    assert len(events(channel.id)) == 2
    assert unseen(imap_server, folder) == [SEED_SUBJECTS[1]]


def test_unreachable_server_is_one_line(app: Flask, runner: FlaskCliRunner) -> None:
    # (A wrong password would do too, but Dovecot then slows every later login from 127.0.0.1.)
    app.config["MAIL_RULES"] = [rule(1)]
    result = runner.invoke(args=["mail", f"imap://u:p@127.0.0.1:{free_port()}/INBOX"])
    assert result.exit_code == 1
    assert "IMAP" in result.output and "Traceback" not in result.output


def test_every_loop_runs_as_its_own_process(
    app: Flask, imap_server: Dovecot, folder: str, tmp_path: Path
) -> None:
    channel = make_channel(make_user().user, "motion", ("motion",))
    (tmp_path / "mail-instance").mkdir()
    (tmp_path / "mail-instance" / "config.py").write_text(f"MAIL_RULES = [{rule(channel.id)!r}]\n")
    env = {
        **os.environ,
        "FIELDSTATION_ENV": "testing",
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": str(tmp_path / "mail-instance"),
    }
    command = [
        sys.executable,
        "-c",
        "from fieldstation.__main__ import main; main()",
        "mail",
        imap_server.url(folder),
    ]
    with open(tmp_path / "mail.log", "ab") as log:
        process = subprocess.Popen([*command, "--every", "1s"], env=env, stdout=log, stderr=log)
    try:
        deliver(imap_server, folder, SEED_SUBJECTS[2])
        deadline = time.monotonic() + 20
        while not events(channel.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events(channel.id) == [("Hall", 1.0)]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


@pytest.fixture(scope="module")
def tls_imap_server() -> Iterator[Dovecot]:
    try:
        server = start_dovecot(tls=True)
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    yield server
    server.stop()


@pytest.mark.parametrize("scheme", ["imaps", "imap+starttls"])
def test_tls_and_starttls(app: Flask, runner: FlaskCliRunner, tls_imap_server: Dovecot, scheme: str) -> None:
    channel = make_channel(make_user().user, "motion", ("motion",))
    app.config["MAIL_RULES"] = [rule(channel.id)]
    name = f"TLS {uuid.uuid4().hex[:6]}"
    with imap(tls_imap_server) as conn:
        conn.create(f'"{name}"')
    deliver(tls_imap_server, name, SEED_SUBJECTS[0])
    url = tls_imap_server.url(name.replace(" ", "%20"), scheme=scheme)
    untrusted = runner.invoke(args=["mail", url])
    assert untrusted.exit_code == 1 and "certificate" in untrusted.output  # not the system's CAs
    result = runner.invoke(args=["mail", url, "--ca-file", str(tls_imap_server.ca_file)])
    assert "stored 1" in result.output, result.output
    assert events(channel.id) == [("Hall", 1.0)]
