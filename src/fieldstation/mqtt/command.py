"""``fieldstation mqtt``: run one MQTT ingest worker in the foreground (systemd, a container)."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext

from fieldstation import metrics
from fieldstation.broker import Broker
from fieldstation.errors import FieldstationError
from fieldstation.mqtt import topics
from fieldstation.mqtt.listener import Listener, Settings, tasmota_maps


@click.command("mqtt")
@click.argument("url", envvar="FIELDSTATION_MQTT_URL")
@click.option("--topic", "topic_filters", multiple=True, help="Topic filter; repeat. Default: every scheme.")
@click.option("--shared", "shared_group", help="Share the stream with other workers ($share/GROUP/…).")
@click.option("--client-id", help="Fixed client id; the broker keeps its session across restarts.")
@click.option("--qos", type=click.IntRange(0, 1), default=1, show_default=True, help="Subscription QoS.")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="CA bundle for mqtts://.")
@click.option("--cert-file", type=click.Path(exists=True, dir_okay=False), help="Client certificate.")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False), help="Client certificate's key.")
@click.option("--insecure", is_flag=True, help="Do not check the broker's host name (testing only).")
@with_appcontext
def mqtt_command(
    url: str,
    topic_filters: tuple[str, ...],
    shared_group: str | None,
    client_id: str | None,
    qos: int,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    insecure: bool,
) -> None:
    """Subscribe to the broker at URL (mqtt://user:pass@host:1883, mqtts://…) and store what arrives."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = current_app.config
    metrics.set_process_protocol("mqtt")  # its writes in /metrics (issue 19)
    try:
        settings = Settings(
            broker=Broker.from_url(url),
            topics=topic_filters or topics.DEFAULT_TOPICS,
            shared_group=shared_group,
            qos=qos,
            batch_size=int(config["MQTT_BATCH_SIZE"]),
            batch_interval=int(config["MQTT_BATCH_INTERVAL_MS"]) / 1000,
            session_expiry=int(config["MQTT_SESSION_EXPIRY_S"]),
            auth_cache_s=float(config["MQTT_AUTH_CACHE_S"]),
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            insecure=insecure,
        )
        if client_id:
            settings.client_id = client_id
        maps = tasmota_maps(config["MQTT_TASMOTA"])
    except FieldstationError as exc:
        raise click.ClickException(exc.message) from None
    listener = Listener(current_app._get_current_object(), settings, maps)  # type: ignore[attr-defined]

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        listener.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stats = listener.run()
    click.echo(f"stopped: {stats}")
