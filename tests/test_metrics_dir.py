"""``fieldstation serve``'s metrics folder: files of dead processes go, a running worker's stay."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fieldstation.metrics import MULTIPROC_ENV, prepare_multiprocess_dir


def test_only_dead_processes_files_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    folder = tmp_path / "metrics"
    folder.mkdir()
    dead_pid = subprocess.Popen(["true"])  # noqa: S607
    dead_pid.wait()
    (folder / f"counter_{dead_pid.pid}.db").write_bytes(b"x")
    (folder / f"counter_{os.getpid()}.db").write_bytes(b"x")
    assert prepare_multiprocess_dir(folder) == folder and os.environ[MULTIPROC_ENV] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == [f"counter_{os.getpid()}.db"]
