"""The IMAP poller behind ``fieldstation mail``: unseen messages -> rules -> store -> \\Seen.

Messages are fetched with ``BODY.PEEK[]`` (which does not set \\Seen) and flagged \\Seen only
after their entry is committed, so a crash in between re-reads them next time; the rules'
timestamps make that re-read land on the same entry. A message no rule matches (or whose
entry the store refuses) stays unseen and is reported on every poll until someone acts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import imaplib
import logging
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal
from urllib.parse import unquote, urlsplit

from flask import Flask

from fieldstation import store
from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.mail.rules import Mail, Rule, header_time, to_batch
from fieldstation.timeunits import datetime_to_us, now_us

log = logging.getLogger(__name__)

Security = Literal["tls", "starttls", "plain"]
_SCHEMES: dict[str, tuple[Security, int]] = {
    "imaps": ("tls", 993),
    "imap+starttls": ("starttls", 143),
    "imap": ("plain", 143),
}
_UID_RE = re.compile(rb"UID (\d+)")


@dataclass(frozen=True, slots=True)
class Mailbox:
    """An IMAP account and folder, from ``imaps://user:pass@host[:port]/Folder``."""

    host: str
    port: int
    security: Security
    username: str
    password: str
    folder: str = "INBOX"

    @classmethod
    def from_url(cls, url: str, password: str | None = None) -> Mailbox:
        """Parse ``imaps://`` (TLS), ``imap+starttls://`` or ``imap://`` (plain, local servers).

        The path is the folder or Gmail label (percent-encoded); ``password`` overrides the URL's.

        :raise BadRequest: another scheme, or no host, user or password.
        """
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise BadRequest("the mailbox URL must look like imaps://user:pass@host/Folder")
        security, default_port = _SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise BadRequest("the mailbox URL has a bad port") from None
        user = unquote(parts.username or "")
        secret = password if password is not None else unquote(parts.password or "")
        if not user or not secret:
            raise BadRequest("the mailbox URL needs a user, and a password (in it or --password)")
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(parts.hostname, port, security, user, secret, folder)


@dataclass(slots=True)
class PollResult:
    """What one poll did."""

    stored: int = 0
    unmatched: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def connect(mailbox: Mailbox, ca_file: str | None = None, timeout: float = 30) -> imaplib.IMAP4:
    """Log in and select the folder (read-write, so \\Seen can be set)."""
    context = ssl.create_default_context(cafile=ca_file)
    conn: imaplib.IMAP4
    if mailbox.security == "tls":
        conn = imaplib.IMAP4_SSL(mailbox.host, mailbox.port, ssl_context=context, timeout=timeout)
    else:
        conn = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=timeout)
    try:
        if mailbox.security == "starttls":
            conn.starttls(context)
        conn.login(mailbox.username, mailbox.password)
        status, data = conn.select(_quote(mailbox.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot open folder {mailbox.folder!r}: {data!r}")
    except BaseException:
        with contextlib.suppress(OSError):  # a failed STARTTLS has closed it already
            conn.shutdown()
        raise
    return conn


def poll(app: Flask, mailbox: Mailbox, rules: Sequence[Rule], ca_file: str | None = None) -> PollResult:
    """Process every unseen message once.

    :raise imaplib.IMAP4.error, OSError: the server is unreachable or refuses us.
    """
    result = PollResult()
    conn = connect(mailbox, ca_file)
    try:
        status, data = conn.uid("SEARCH", "UNSEEN")
        if status != "OK":
            raise imaplib.IMAP4.error(f"SEARCH failed: {data!r}")
        for uid in data[0].split() if data and data[0] else []:
            _process(app, conn, uid.decode(), rules, result)
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return result


def _process(app: Flask, conn: imaplib.IMAP4, uid: str, rules: Sequence[Rule], result: PollResult) -> None:
    try:
        mail = _fetch(conn, uid)
    except BadRequest as exc:
        result.failed.append(f"uid {uid}: {exc.message}")
        return
    if mail is None:
        result.failed.append(f"uid {uid}: could not fetch")
        return
    label = f"uid {uid} {mail.subject[:80]!r}"
    try:
        matched = to_batch(rules, mail)
        if matched is None:
            log.warning("no rule matches %s; left unseen", label)
            result.unmatched.append(label)
            return
        with app.app_context():
            store.write(matched[1])
    except FieldstationError as exc:
        log.warning("%s: %s; left unseen", label, exc.message)
        result.failed.append(f"{label}: {exc.message}")
        return
    # Only now, after the commit: flag it \Seen.
    conn.uid("STORE", uid, "+FLAGS", "(\\Seen)")
    result.stored += 1
    log.info("stored %s by rule %r", label, matched[0].config.name)


def _fetch(conn: imaplib.IMAP4, uid: str) -> Mail | None:
    """One message by UID without setting \\Seen."""
    status, data = conn.uid("FETCH", uid, "(INTERNALDATE BODY.PEEK[])")
    if status != "OK":
        return None
    for part in data:
        if isinstance(part, tuple):
            return _mail(part[0], part[1])
    return None


def _mail(envelope: bytes, raw: bytes) -> Mail:
    """What the rules need from a fetched message; whatever the sender put in it.

    :raise BadRequest: headers the email package cannot read at all.
    """
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        subject = " ".join(str(message.get("Subject", "")).split())
        sender = str(message.get("From", ""))
        message_id = str(message.get("Message-ID", "")).strip()
        date = str(message.get("Date", ""))
        body = _body(message)
    except (ValueError, TypeError, LookupError, AttributeError) as exc:
        raise BadRequest(f"unreadable message: {exc}") from None
    except RecursionError:  # MIME parts nested thousands deep: the parser recurses once per level
        raise BadRequest("unreadable message: MIME parts nested too deeply") from None
    return Mail(
        subject=subject,
        body=body,
        sender=sender,
        # Without a Message-ID the content itself tells a re-read from another message.
        message_id=message_id or hashlib.sha256(raw).hexdigest(),
        date=header_time(date or None),
        arrived=_internal_date(envelope),
    )


_INTERNALDATE_RE = re.compile(rb'INTERNALDATE "([^"]+)"')


def _internal_date(envelope: bytes) -> int:
    """IMAP INTERNALDATE (``24-Nov-2026 10:46:43 +0000``) in µs; now if missing or odd."""
    match = _INTERNALDATE_RE.search(envelope)
    if match is not None:
        try:
            parsed = dt.datetime.strptime(match.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
        except (ValueError, UnicodeDecodeError):
            return now_us()
        return datetime_to_us(parsed)
    return now_us()


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        return ""


def _quote(folder: str) -> str:
    """A folder name as an IMAP quoted string (labels may hold spaces and slashes)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DURATION_RE = re.compile(r"(\d+)\s*(s|m|h)?")


def parse_every(text: str) -> float:
    """``90``, ``90s``, ``15m`` or ``1h`` -> seconds.

    :raise BadRequest: anything else, or zero.
    """
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise BadRequest(f"not a duration: {text!r} (use 90s, 15m or 1h)")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
