"""Apps written as Catzilla 0.2.3's docs tell its users to write them, served by our server.

`compat_server("validation_app:app")` runs one of tests/compat/apps/ under `catzilla run`."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import httpx

from conftest import ROOT, run_server  # tests/conftest.py

COMPAT_APPS = Path(__file__).resolve().parent / "apps"


@contextlib.contextmanager
def compat_client(target: str, *args: str, env: dict[str, str] | None = None) -> Iterator[httpx.Client]:
    path = os.pathsep.join([str(ROOT), str(COMPAT_APPS), os.environ.get("PYTHONPATH", "")])
    with run_server(target, *args, env={"PYTHONPATH": path, **(env or {})}) as server:
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            client.server = server  # type: ignore[attr-defined]
            yield client
