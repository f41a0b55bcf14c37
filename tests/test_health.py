"""/healthz, /readyz and /metrics: what an operator's load balancer and Prometheus see."""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from fieldstation.extensions import db
from tests import pgserver, servers
from tests.conftest import make_app, migrate_to_head, unavailable
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import served


@pytest.fixture
def channel(app: Flask) -> ChannelKeys:
    return make_channel(make_user().user)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition by (name, sorted labels); the parser checks the format."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json == {"status": "ready"}


def test_readyz_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path / "instance")
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503 and "fieldstation db upgrade" in answer.json["reason"]
    assert app.test_client().get("/healthz").status_code == 200
    with app.app_context():
        from flask_migrate import downgrade, upgrade

        upgrade()
        assert app.test_client().get("/readyz").status_code == 200
        downgrade(revision="0006_compact_rollup_slots")  # one step behind the head
        answer = app.test_client().get("/readyz")
        assert answer.status_code == 503 and "schema at 0006_compact_rollup_slots" in answer.json["reason"]
        db.engine.dispose()


def _pg_ctl(cluster: pgserver.Cluster, *action: str) -> None:
    subprocess.run(
        [*cluster.prefix, cluster.pg_ctl, "-D", cluster.datadir, *action], check=True, capture_output=True
    )


def test_readyz_follows_the_database_going_away_and_coming_back(tmp_path: Path) -> None:
    try:
        cluster = pgserver.start_cluster()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    try:
        app = make_app(cluster.url, tmp_path / "instance")
        migrate_to_head(app)
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        _pg_ctl(cluster, "-m", "fast", "stop")  # fast: the FAST cluster loses unflushed commits on immediate
        answer = client.get("/readyz")
        assert answer.status_code == 503 and answer.json["reason"].startswith("database unreachable")
        base = os.path.dirname(cluster.datadir)
        options = f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1 {pgserver.FAST}"
        _pg_ctl(cluster, "-l", os.path.join(base, "log"), "-o", options, "-w", "start")
        answer = client.get("/readyz")
        assert answer.status_code == 200, answer.json
        with app.app_context():
            db.engine.dispose()
    finally:
        cluster.stop()


def test_metrics_count_writes_refusals_and_latency(client: FlaskClient, channel: ChannelKeys) -> None:
    before = client.get("/metrics").text
    key = channel.write_key
    # buffered: the test client closes the answer, as a server does when it has sent it
    assert client.get(f"/update?api_key={key}&field1=1&field2=2", buffered=True).text != "0"
    single = client.post("/write?db=weather", data="weather temperature=3", auth=("x", key), buffered=True)
    lines = "weather temperature=4 1700000000000000000\nweather temperature=5 1700000001000000000"
    batch = client.post("/write?db=weather&precision=ns", data=lines, auth=("x", key), buffered=True)
    assert single.status_code == batch.status_code == 204
    assert client.get("/update?api_key=wrong&field1=1", buffered=True).status_code == 401
    after = client.get("/metrics")
    assert after.status_code == 200 and after.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = after.text

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("fieldstation_writes_total", protocol="thingspeak") == 1
    assert delta("fieldstation_readings_stored_total", protocol="thingspeak") == 2
    assert delta("fieldstation_writes_total", protocol="influxdb") == 2
    assert delta("fieldstation_readings_stored_total", protocol="influxdb") == 3
    assert delta("fieldstation_refusals_total", reason="unauthorized") == 1
    assert delta("fieldstation_request_seconds_count", family="write") == 4
    assert delta("fieldstation_db_commit_seconds_count") >= 1  # the batch's, at least (see writehooks)
    assert "fieldstation_rollup_backlog" in text


def test_metrics_access(app: Flask, client: FlaskClient) -> None:
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/metrics").status_code == 200  # loopback, the default
    assert client.get("/metrics", environ_base=remote).status_code == 403
    app.config["METRICS_ACCESS"] = "token"
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}, environ_base=remote)
    assert ok.status_code == 200
    app.config["METRICS_ACCESS"] = "open"
    assert client.get("/metrics", environ_base=remote).status_code == 200


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_metrics_add_up_every_worker_and_prometheus_scrapes_them(
    app: Flask, channel: ChannelKeys, server: str, tmp_path: Path
) -> None:
    """Two workers each count what they stored; a scrape of either shows the sum, and so does Prometheus."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    with served(app, server, workers=2, extra_env=env) as (url, _proc):
        session = requests.Session()
        # each worker loads the app after the port opens (uWSGI's --lazy-apps): seconds on a busy machine
        assert session.get(f"{url}/readyz", timeout=60).status_code == 200
        sent = 0

        def write(i: int) -> None:
            answer = requests.get(
                f"{url}/update", params={"api_key": channel.write_key, "field1": i}, timeout=60
            )
            assert answer.text not in ("0", "-1"), answer.text

        with ThreadPoolExecutor(8) as pool:  # until both workers have stored some (uWSGI favours one)
            while sent < 4000 and len({re.sub(r"\D", "", p.name) for p in folder.glob("counter_*.db")}) < 2:
                list(pool.map(write, range(sent, sent + 40)))
                sent += 40
        assert len(list(folder.glob("counter_*.db"))) == 2
        for _ in range(4):  # whichever worker answers, the sum is the same
            text = session.get(f"{url}/metrics", timeout=60).text
            assert value(text, "fieldstation_writes_total", protocol="thingspeak") == sent
        if server == "gunicorn":
            return  # one Prometheus run is enough for the suite
        try:
            prometheus = servers.start_prometheus(url.removeprefix("http://"))
        except RuntimeError as exc:
            unavailable(str(exc))
            return
        try:
            deadline = time.monotonic() + 30
            result: list[dict[str, object]] = []
            while time.monotonic() < deadline:
                result = prometheus.query('sum(fieldstation_writes_total{protocol="thingspeak"})')
                if result:
                    break
                time.sleep(0.5)
            assert result and float(result[0]["value"][1]) == sent  # type: ignore[index]
            up = prometheus.query('up{job="fieldstation"}')
            assert up and up[0]["value"][1] == "1"  # type: ignore[index]
        finally:
            prometheus.stop()
