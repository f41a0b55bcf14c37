"""Two sides of a race: work on another thread with its own app context, and whether it is blocked."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask

from fieldstation.extensions import db


def in_thread(app: Flask, work: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``work`` in an app context on another thread; its result or exception lands in the dict."""
    out: dict[str, object] = {}

    def run() -> None:
        with app.app_context():
            try:
                out["result"] = work()
            except Exception as exc:  # noqa: BLE001 - the test inspects it
                out["error"] = exc
            finally:
                db.session.remove()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def waits(thread: threading.Thread) -> bool:
    """The thread is still blocked a moment later (on a row lock)."""
    thread.join(0.5)
    return thread.is_alive()
