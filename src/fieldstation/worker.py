"""``fieldstation worker``: the maintenance worker (issue 19).

Every ``ALERT_POLL_S`` it looks at the threshold rules of channels written
since its last look, judges the silence rules against the clock, and sends due
notifications from the outbox. On its schedule (``WORKER_*_EVERY_S``) it
applies each channel's retention, refreshes the rollups and folds old
devices-seen rows.

Several workers may run at once, on one host or many (PostgreSQL): a state
change is a compare-and-set (``alerts.evaluate``), a delivery is leased
(``alerts.deliver``), and a scheduled job is claimed by moving its next run
forward in ``worker_jobs`` with ``UPDATE … WHERE next_run_us <= now``, which
one worker wins. Time comes from ``clock`` so tests can move it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text

from fieldstation import devices, metrics, retention, rollups
from fieldstation.alerts import deliver, evaluate
from fieldstation.extensions import db
from fieldstation.timeunits import US, now_us

log = logging.getLogger(__name__)
Clock = Callable[[], int]

#: job name -> (config key of its interval, what it runs)
JOBS: dict[str, tuple[str, Callable[[int], object]]] = {
    "retention": ("WORKER_RETENTION_EVERY_S", lambda now: retention.purge(now=now)),
    "rollups": ("WORKER_ROLLUPS_EVERY_S", lambda now: rollups.refresh()),
    "compact_devices": ("WORKER_COMPACT_EVERY_S", devices.compact),
}

_ENSURE_JOB = text(
    "INSERT INTO worker_jobs (name, next_run_us) VALUES (:name, :now) ON CONFLICT (name) DO NOTHING"
)
_CLAIM_JOB = text("UPDATE worker_jobs SET next_run_us = :next WHERE name = :name AND next_run_us <= :now")


def claim_job(name: str, every_s: float, now: int) -> bool:
    """True when this worker takes the job's run that is due at ``now`` (no other worker does)."""
    session = db.session
    session.execute(_ENSURE_JOB, {"name": name, "now": now})
    claimed = session.execute(_CLAIM_JOB, {"name": name, "now": now, "next": now + int(every_s * US)})
    session.commit()
    return bool(claimed.rowcount == 1)  # type: ignore[attr-defined]


def run_once(config: Any, clock: Clock) -> dict[str, int]:
    """One round: thresholds, silences, the outbox, and whatever scheduled job is due."""
    done = {
        "thresholds": evaluate.evaluate_thresholds(clock()),
        "silences": evaluate.evaluate_silences(clock()),
        "delivered": deliver.deliver_due(deliver.Settings.from_config(config), clock),
    }
    for name, (setting, job) in JOBS.items():
        every = float(config[setting])
        if every > 0 and claim_job(name, every, clock()):
            try:
                job(clock())
                metrics.JOBS.labels(name).inc()
                done[name] = 1
            except Exception:
                db.session.rollback()
                log.exception("worker job %s failed", name)
    return done


def run(app: Flask, clock: Clock = now_us, stop: threading.Event | None = None) -> None:
    """Rounds until ``stop`` is set; a failed round is logged and the next one tries again."""
    stop = stop or threading.Event()
    interval = float(app.config["ALERT_POLL_S"])
    while not stop.is_set():
        try:
            with app.app_context():
                run_once(app.config, clock)
        except Exception:
            log.exception("worker round failed; retrying")
        stop.wait(interval)


@click.command("worker")
@click.option("--once", is_flag=True, help="One round, then exit (for cron or a check).")
@with_appcontext
def worker_command(once: bool) -> None:
    """Evaluate alerts, send notifications, apply retention, refresh rollups, on a schedule."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics.set_process_protocol("worker")
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        click.echo(" ".join(f"{k}={v}" for k, v in run_once(app.config, now_us).items()))
        return
    stop = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("worker started (every %s s)", app.config["ALERT_POLL_S"])
    run(app, now_us, stop)
