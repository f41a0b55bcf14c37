"""Create the instance folder's ``config.py`` with a random SECRET_KEY, once.

Run as ``python -m fieldstation.instance`` (``make run`` does). Secrets live
in the instance folder, which git ignores, never in the repository.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

#: The checkout's root: ``instance/`` and ``migrations/`` live there (the package is installed editable).
ROOT = Path(__file__).resolve().parents[2]

TEMPLATE = """\
# Fieldstation instance configuration: secrets and site settings. Never commit this file.
# Every setting can also be given as an environment variable FIELDSTATION_<NAME>.
SECRET_KEY = {secret!r}
# DATABASE_URL = "postgresql+psycopg://fieldstation:password@127.0.0.1:5432/fieldstation"
"""


def default_instance_path() -> str:
    """The instance folder: FIELDSTATION_INSTANCE_PATH, else ``instance/`` in the checkout."""
    return os.environ.get("FIELDSTATION_INSTANCE_PATH") or str(ROOT / "instance")


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
