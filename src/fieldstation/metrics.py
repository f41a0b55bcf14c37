"""Prometheus metrics of every Fieldstation process (issue 19); pure, no Flask.

Under uWSGI and gunicorn each worker is its own process, so the counters live in
prometheus-client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` names a
directory where each process keeps its values in a memory-mapped file, and a
scrape adds them up (:func:`exposition`). ``fieldstation serve`` sets it (the
instance folder's ``metrics/``) and clears out dead processes' files at start; the MQTT, mail and
maintenance workers write to the same directory when they are given the same
``PROMETHEUS_MULTIPROC_DIR``, so one scrape of the web server shows them too.
Without the variable (tests, ``flask run``) the values stay in the process.

The variable must be set before this module is imported: prometheus-client
chooses where values live when it is first imported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Which way the current write came in: "thingspeak", "influxdb", "json", "csv", "mqtt", "mail".
PROTOCOL: ContextVar[str] = ContextVar("fieldstation_protocol")
#: The protocol of writes outside a request: a worker process names its own (:func:`set_process_protocol`).
_process_protocol = "other"


def set_process_protocol(name: str) -> None:
    """Count this process's writes under ``name`` unless a request says otherwise (workers: mqtt, mail)."""
    global _process_protocol
    _process_protocol = name


WRITES = Counter("fieldstation_writes", "Writes stored (requests, messages), by protocol", ["protocol"])
READINGS = Counter("fieldstation_readings_stored", "Readings (values) stored, by protocol", ["protocol"])
REFUSALS = Counter("fieldstation_refusals", "Requests refused (4xx), by reason (error code)", ["reason"])
LATENCY = Histogram(
    "fieldstation_request_seconds",
    "Time from a request's arrival to the end of its answer, by endpoint family",
    ["family"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMMIT = Histogram(
    "fieldstation_db_commit_seconds",
    "Time of a write's commit",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
DELIVERIES = Counter("fieldstation_alert_deliveries", "Alert notifications delivered, by channel", ["via"])
DELIVERY_FAILURES = Counter(
    "fieldstation_alert_delivery_failures", "Alert delivery attempts that failed, by channel", ["via"]
)
JOBS = Counter("fieldstation_worker_jobs", "Maintenance worker jobs run, by job", ["job"])


#: Labelled children by label: ``labels()`` takes a lock and builds a key on every call.
_children: dict[tuple[str, str], Any] = {}


def _child(metric: Any, name: str, label: str) -> Any:
    child = _children.get((name, label))
    if child is None:
        child = _children[(name, label)] = metric.labels(label)
    return child


def stored(points: int) -> None:
    """Count one write of ``points`` readings for the current protocol."""
    protocol = PROTOCOL.get(_process_protocol)
    _child(WRITES, "writes", protocol).inc()
    _child(READINGS, "readings", protocol).inc(points)


def latency(family: str) -> Any:
    """The latency histogram of an endpoint family."""
    return _child(LATENCY, "latency", family)


def prepare_multiprocess_dir(default: Path) -> Path:
    """Use ``PROMETHEUS_MULTIPROC_DIR`` (else ``default``), without the files of processes gone.

    The files of live processes (a worker sharing the folder) stay; those of the
    server's earlier workers go, so their counts start again (Prometheus reads a
    counter that drops as a restart). Sets the variable for the processes started from here.
    """
    folder = Path(os.environ.get(MULTIPROC_ENV) or default)
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    for path in folder.glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if not pid.isdigit() or not _alive(int(pid)):
            path.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Computed(Collector):
    """Gauges computed at scrape time by callables (name, help, value)."""

    def __init__(self, gauges: Iterable[tuple[str, str, Callable[[], float | None]]]) -> None:
        self.gauges = list(gauges)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, text, read in self.gauges:
            value = read()
            if value is not None:
                yield GaugeMetricFamily(name, text, value=value)


def exposition(gauges: Iterable[tuple[str, str, Callable[[], float | None]]] = ()) -> bytes:
    """Every process's metrics in Prometheus's text format, plus gauges computed now."""
    computed = CollectorRegistry()
    computed.register(_Computed(gauges))
    if not os.environ.get(MULTIPROC_ENV):
        return generate_latest(REGISTRY) + generate_latest(computed)  # this process's own
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry) + generate_latest(computed)


@contextmanager
def commit_timer() -> Iterator[None]:
    """Time a write's commit (``fieldstation_db_commit_seconds``): every writer wraps its commit in this."""
    start = time.perf_counter()
    yield
    COMMIT.observe(time.perf_counter() - start)
