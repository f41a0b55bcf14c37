"""The app as a long-lived server worker runs it: what ``fieldstation serve`` points uWSGI or gunicorn at."""

from __future__ import annotations

import gc

from flask import Flask

from fieldstation import create_app

#: The collector's youngest-generation threshold in a worker (CPython's default is 700).
GC_YOUNG = 10_000
#: A worker's app: no CLI, no Alembic (a quicker start, a smaller worker).
WORKER = {"COMMANDS": False}


def served_app() -> Flask:
    """:func:`fieldstation.create_app` for a long-lived worker process, with the collector tuned.

    What exists once the app is built (modules, the app, SQLAlchemy's caches) lives
    as long as the worker: ``gc.freeze()`` takes it out of every later collection.
    A 1,440-row read makes about ten thousand short-lived objects, which at
    CPython's default threshold set off a dozen young collections per request;
    both together were a tenth of the 24-hour InfluxQL query's CPU (issue #4).
    Reference counting still frees nearly everything at once; only cycles wait longer.
    No full collection before the freeze: it found about 20 objects to free and cost
    each worker 50–100 ms of its start (issue #21).
    """
    app = create_app(WORKER)
    gc.freeze()
    gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])
    return app


def load_modules() -> None:
    """Import every module a worker's app needs, before the server forks its workers.

    An app is built and dropped: :func:`fieldstation.create_app`'s imports are the list of
    modules (no second list here), and building one binds no connection (the engine connects
    on first use), so nothing a worker must own crosses the fork. ``gc.freeze()`` then keeps the
    collector from writing to the shared pages in the workers (copy-on-write).
    """
    create_app(WORKER)
    gc.freeze()
