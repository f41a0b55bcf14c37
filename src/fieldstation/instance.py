"""Create the instance folder's ``config.py`` with a random SECRET_KEY, once.

Every ``fieldstation`` command that needs the app writes it on first use
(``init``, ``serve --init``, which ``make run`` runs). Secrets live in the
instance folder, which git ignores, never in the repository.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

#: The package's own folder: the migrations travel inside it, so a wheel can set a database up.
PACKAGE = Path(__file__).resolve().parent
MIGRATIONS = PACKAGE / "migrations"
#: The checkout's root when the package runs from one (an editable install, ``make run``).
ROOT = PACKAGE.parents[1]

TEMPLATE = """\
# Fieldstation instance configuration: secrets and site settings. Never commit this file.
# Every setting can also be given as an environment variable FIELDSTATION_<NAME>.
SECRET_KEY = {secret!r}
# DATABASE_URL = "postgresql+psycopg://fieldstation:password@127.0.0.1:5432/fieldstation"
"""


def default_instance_path() -> str:
    """The instance folder: FIELDSTATION_INSTANCE_PATH, else ``instance/`` in the checkout.

    An installed package (a wheel, pipx) has no checkout: its instance is
    ``$XDG_DATA_HOME/fieldstation`` (``~/.local/share/fieldstation``), the same
    from whichever folder a command runs.
    """
    given = os.environ.get("FIELDSTATION_INSTANCE_PATH")
    if given:
        return given
    if (ROOT / "pyproject.toml").is_file() and (ROOT / "src" / "fieldstation").is_dir():
        return str(ROOT / "instance")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data_home) / "fieldstation")


def ensure_config(instance_path: str) -> Path:
    """Write ``config.py`` (mode 0600) in ``instance_path`` unless it exists; return its path."""
    folder = Path(instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.py"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(TEMPLATE.format(secret=secrets.token_hex(32)))
    return path


def main() -> None:
    """Entry point of ``python -m fieldstation.instance``."""
    path = ensure_config(default_instance_path())
    sys.stdout.write(f"instance configuration: {path}\n")


if __name__ == "__main__":
    main()
