"""What the uWSGI master imports before it forks its workers (``--shared-import``, see
:func:`fieldstation.serving.server_command`).

Each worker still builds its own app and database pool after the fork (``--lazy-apps``),
but the modules those need, nine tenths of a worker's start, are imported once, here, and
shared by the workers copy-on-write: less CPU until the first answer, and less memory idle
(README, Performance). A worker that uWSGI replaces starts from them too.

gunicorn's workers import their own: gevent patches the standard library in each worker
after the fork, and what a module binds on import before that stays unpatched (psycopg
picks its blocking wait function on import; locks made on import would block the whole
worker instead of one greenlet).
"""

from __future__ import annotations

from fieldstation.wsgi import load_modules

load_modules()
