"""uWSGI's master imports the workers' modules before it forks them (fieldstation.preload).

Each worker still builds its own app and database pool after the fork; what the master holds
is the modules, shared copy-on-write. bench/coldstart.py measures what that saves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from flask import Flask

from fieldstation.serving import APP, PRELOAD, server_command
from tests.factories import ChannelKeys
from tests.liveserver import served


def test_only_fieldstations_own_app_is_preloaded() -> None:
    assert PRELOAD in server_command("uwsgi", "127.0.0.1", 8000, 2)
    assert PRELOAD not in server_command("uwsgi", "127.0.0.1", 8000, 2, app="tests.bare:app()")
    assert PRELOAD not in server_command("gunicorn", "127.0.0.1", 8000, 2)  # gevent patches after the fork
    assert APP in server_command("gunicorn", "127.0.0.1", 8000, 2)


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_the_uwsgi_master_holds_the_apps_modules(app: Flask, channel: ChannelKeys) -> None:
    with served(app, "uwsgi", workers=2) as (url, master):
        assert requests.get(f"{url}/readyz", timeout=60).status_code == 200
        # pydantic's compiled core is loaded by the app's modules only, never by uWSGI itself
        assert "pydantic_core" in Path(f"/proc/{master.pid}/maps").read_text()
        for value in range(10):
            params = {"api_key": channel.write_key, "field1": value}
            answer = requests.get(f"{url}/update", params=params, timeout=60)
            assert answer.status_code == 200 and answer.text not in ("0", "-1"), answer.text
