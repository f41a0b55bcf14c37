"""A WSGI app that answers every request with the bytes of one file: the HTTP floor in bench/query.py.

Served with the same server command as Fieldstation, it shows what a response of
that size costs before any application work (parsing, database, formatting).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BODY = Path(os.environ["FIXED_BODY_FILE"]).read_bytes()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Every request: 200 and the file's bytes as JSON."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
