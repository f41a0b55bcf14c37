"""``fieldstation mail``: poll an IMAP mailbox once (cron) or ``--every 15m``."""

from __future__ import annotations

import imaplib
import logging
import signal
import threading
from types import FrameType

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from fieldstation import metrics
from fieldstation.errors import FieldstationError
from fieldstation.mail.poller import Mailbox, PollResult, parse_every, poll
from fieldstation.mail.rules import Rule, load_rules

log = logging.getLogger(__name__)


@click.command("mail")
@click.argument("url", envvar="FIELDSTATION_MAIL_URL")
@click.option("--password", envvar="FIELDSTATION_MAIL_PASSWORD", help="Else the one in URL.")
@click.option("--every", help="Poll again after this long (90s, 15m, 1h) until stopped.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for imaps://.")
@with_appcontext
def mail_command(url: str, password: str | None, every: str | None, ca_file: str | None) -> None:
    """Turn unseen mail at URL (imaps://user:pass@host/Folder) into entries by the MAIL_RULES setting."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        mailbox = Mailbox.from_url(url, password)
        rules = load_rules(current_app.config["MAIL_RULES"])
        interval = parse_every(every) if every else None
    except FieldstationError as exc:
        raise click.ClickException(exc.message) from None
    if not rules:
        raise click.ClickException("no MAIL_RULES configured: see docs/workers.md")
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    metrics.set_process_protocol("mail")  # its writes in /metrics (issue 19)
    if interval is None:
        try:
            _report(poll(app, mailbox, rules, ca_file))
        except (imaplib.IMAP4.error, OSError) as exc:
            raise click.ClickException(f"IMAP: {exc}") from None
        except SQLAlchemyError as exc:
            raise click.ClickException(f"database: {str(exc).splitlines()[0]}") from None
        return
    _loop(app, mailbox, rules, ca_file, interval)


def _loop(app: Flask, mailbox: Mailbox, rules: list[Rule], ca_file: str | None, interval: float) -> None:
    """Poll until SIGTERM/SIGINT; a failed poll is logged and retried next round."""
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop.is_set():
        try:
            _report(poll(app, mailbox, rules, ca_file))
        except (imaplib.IMAP4.error, OSError) as exc:
            log.error("IMAP poll failed: %s", exc)
        except SQLAlchemyError as exc:
            # Entries not committed stay unseen and are read again next round.
            log.error("database error: %s", str(exc).splitlines()[0])
        stop.wait(interval)


def _report(result: PollResult) -> None:
    click.echo(f"stored {result.stored}, unmatched {len(result.unmatched)}, failed {len(result.failed)}")
    for line in result.unmatched:
        click.echo(f"  no rule matches: {line}")
    for line in result.failed:
        click.echo(f"  not stored: {line}")
