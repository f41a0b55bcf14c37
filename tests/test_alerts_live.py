"""The maintenance worker as it runs: a separate process, killed mid-delivery, and end to end with uWSGI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from flask import Flask

from fieldstation import devices
from fieldstation.alerts import rules
from fieldstation.extensions import db
from fieldstation.models import AlertDelivery, WorkerJob
from fieldstation.timeunits import now_us
from tests.conftest import unavailable
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import served
from tests.servers import SmtpServer, WebhookReceiver

FIELDSTATION = str(Path(sys.executable).with_name("fieldstation"))


@contextmanager
def worker(app: Flask, **settings: object) -> Iterator[subprocess.Popen[bytes]]:
    """``fieldstation worker`` on the app's database, polling every 0.2 s."""
    env = {
        **os.environ,
        "FIELDSTATION_ENV": "production",
        "FIELDSTATION_SECRET_KEY": "worker-test-secret-not-for-production-0123456789",
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": app.instance_path,
        "FIELDSTATION_ALERT_POLL_S": "0.2",
        "FIELDSTATION_ALERT_LEASE_S": "2",
    }
    env |= {f"FIELDSTATION_{k}": str(v) for k, v in settings.items()}
    process = subprocess.Popen(
        [FIELDSTATION, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


def wait_for(check: Callable[[], object], timeout: float = 10) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def channel(app: Flask) -> ChannelKeys:
    return make_channel(make_user().user)


def worker_started() -> bool:
    """The worker has run a round (each round makes sure its scheduled jobs have rows)."""
    db.session.rollback()
    return bool(db.session.query(WorkerJob).count())


def deliveries() -> list[AlertDelivery]:
    db.session.rollback()
    return list(db.session.query(AlertDelivery))


def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_with_the_same_id(
    app: Flask, channel: ChannelKeys
) -> None:
    receiver = WebhookReceiver()
    try:
        rules.create_rule(
            channel.channel, now_us(), name="hot", kind="threshold", field=1, op="above", threshold=30.0,
            webhook_url=receiver.url,
        )  # fmt: skip
        requests_ok = app.test_client().get(f"/update?api_key={channel.write_key}&field1=31")
        assert requests_ok.text != "0"
        receiver.hold.clear()  # the receiver gets the notification and does not answer yet
        with worker(app) as first:
            wait_for(receiver.arrived.is_set, timeout=60)  # includes the worker loading the app
            first.send_signal(signal.SIGKILL)  # after deciding and sending, before recording
            first.wait(5)
        (pending,) = deliveries()
        assert pending.delivered_us is None and pending.attempts == 0
        receiver.hold.set()
        with worker(app):
            wait_for(lambda: deliveries()[0].delivered_us is not None, timeout=60)
            time.sleep(1.5)  # a lease and more: a recorded delivery is not sent again
        ids = [headers["x-fieldstation-delivery"] for headers, _ in receiver.requests]
        assert ids == [pending.id, pending.id]
    finally:
        receiver.stop()


def test_end_to_end_threshold_and_silence(app: Flask, channel: ChannelKeys) -> None:
    """ "temperature above 30 for 2 minutes": one webhook and one e-mail within 5 s of the reading that
    completes the 2 minutes, resolved once; a device that stops is shown silent and its rule fires."""
    try:
        smtp = SmtpServer(tls="starttls")
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    receiver = WebhookReceiver()
    try:
        hot = rules.create_rule(
            channel.channel, now_us(), name="freezer warm", kind="threshold", field="temperature", op="above",
            threshold=30.0, for_s=120, hysteresis=0.5, webhook_url=receiver.url, email_to="ops@example.org",
        )  # fmt: skip
        gone = rules.create_rule(
            channel.channel, now_us(), name="sensor gone", kind="silence", silence_s=10, device="aa:01",
            webhook_url=receiver.url,
        )  # fmt: skip
        devices.set_expected(channel.id, "aa:01", 5)
        key = channel.write_key
        with served(app, "uwsgi", workers=2) as (url, _proc), worker(app, **smtp.config()):
            wait_for(lambda: requests.get(f"{url}/readyz", timeout=60).status_code == 200, timeout=60)
            wait_for(
                worker_started, timeout=60
            )  # its first round is done: the 5 s count from a running worker
            start = time.time() - 121
            body = [{"values": {"temperature": 31.0}, "time": start}]
            answer = requests.post(
                f"{url}/api/v1/channels/{channel.id}/entries?mac=aa:01", json=body,
                headers={"Authorization": f"Bearer {key}"}, timeout=20,
            )  # fmt: skip
            assert answer.status_code == 201, answer.text
            time.sleep(1)
            assert receiver.requests == [] and smtp.messages == []  # one reading: not two minutes yet
            assert (
                requests.get(f"{url}/update", params={"api_key": key, "field1": 31.5, "mac": "aa:01"}).text
                != "0"
            )
            took = wait_for(lambda: receiver.requests and smtp.messages, timeout=5)
            assert took < 5
            requests.get(f"{url}/update", params={"api_key": key, "field1": 31.2, "mac": "aa:01"})
            assert requests.get(f"{url}/update", params={"api_key": key, "field1": 25}).text != "0"
            wait_for(lambda: len(receiver.requests) == 2 and len(smtp.messages) == 2, timeout=5)
            assert [b["event"] for b in receiver.bodies()] == ["firing", "resolved"]
            # aa:01 wrote last about now; 5 s later it is silent, 10 s later its rule fires
            wait_for(lambda: any(d.silent for d in devices.seen(channel.id, now_us())), timeout=8)
            wait_for(lambda: len(receiver.requests) == 3, timeout=12)
            time.sleep(1)
        bodies = receiver.bodies()
        assert [(b["rule"]["name"], b["event"]) for b in bodies] == [
            ("freezer warm", "firing"), ("freezer warm", "resolved"), ("sensor gone", "firing")
        ]  # fmt: skip
        assert len(smtp.messages) == 2
        assert rules.history(hot.id)[0].state == "ok" and rules.history(gone.id)[0].state == "firing"
        # the owner's channel page shows both transitions and the silent device
        from tests.test_dashboard import sign_in

        app.config["WTF_CSRF_ENABLED"] = False
        web = app.test_client()
        sign_in(web)
        page = web.get(f"/dashboard/channels/{channel.id}").text
        assert page.count('class="transition firing"') == 2 and page.count('class="transition ok"') == 1
        assert (
            "temperature is 31.5: above 30 for 2 min" in page
            and "temperature is 25: back from above 30" in page
        )
        assert 'class="silent"' in page
        listing = web.get("/dashboard/channels").text
        assert "sensor gone: firing" in listing and "aa:01: silent" in listing
    finally:
        receiver.stop()
        smtp.stop()
