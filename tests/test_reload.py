"""--reload: a real master watching a real directory; edits reload the workers through the
HUP path while a client keeps asking, and no request fails."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from conftest import ROOT, run_server, wait_for

APP = '''
import os
from catzilla import Catzilla, JSONResponse

app = Catzilla()


@app.get("/version")
def version(request):
    return JSONResponse({{"version": {version}, "pid": os.getpid()}})
'''


@pytest.fixture
def project(tmp_path):
    """A directory with an app module of a name no other test imports."""
    name = f"reload_app_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(APP.format(version=1))
    return tmp_path, name, path


def serve_reloading(project, *args: str):
    directory, name, _ = project
    return run_server(f"{name}:app", "--reload", "--reload-dir", str(directory), "--reload-delay", "0.1",
                      *args, env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)])})


def edit(path, version) -> None:
    path.write_text(APP.format(version=version) if isinstance(version, int) else version)


class Asker(threading.Thread):
    """Asks /version without pause on one keep-alive client; records answers and failures."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.versions, self.failures, self.stopped = url, [], [], threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stopped.is_set():
                try:
                    response = client.get(self.url + "/version")
                    assert response.status_code == 200, response.text
                    self.versions.append(response.json()["version"])
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    self.failures.append(repr(exc))

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


def test_an_edit_is_served_after_a_reload_with_no_failed_request(project):
    with serve_reloading(project) as server:
        asker = Asker(server.url)
        asker.start()
        wait_for(lambda: asker.versions, 10, message="first answers")
        edit(project[2], 2)
        wait_for(lambda: asker.versions and asker.versions[-1] == 2, 20, message="version 2 served")
        time.sleep(0.5)
        asker.stop()
        logs = server.logs()
    assert asker.failures == []
    assert len(asker.versions) > 20 and set(asker.versions) == {1, 2}
    assert asker.versions.index(2) > 0 and 1 not in asker.versions[asker.versions.index(2):]
    assert "changed; reloading" in logs and "reload complete" in logs


def test_several_workers_reload_and_a_broken_edit_keeps_the_old_code_serving(project):
    with serve_reloading(project, "--workers", "2") as server:
        first = httpx.get(server.url + "/version").json()
        edit(project[2], "this is not python(")
        wait_for(lambda: "reload failed" in server.logs(), 20, message="the failed reload")
        assert httpx.get(server.url + "/version").json()["version"] == 1  # still serving
        edit(project[2], 3)
        wait_for(lambda: httpx.get(server.url + "/version").json()["version"] == 3, 20, message="version 3")
        # A new worker answering is not the reload's end: the old ones serve until the new
        # generation is ready, then drain.
        wait_for(lambda: "reload complete" in server.logs(), 20, message="the reload to complete")

        def both_new() -> set[int] | None:
            pids = {httpx.get(server.url + "/version", headers={"connection": "close"}).json()["pid"]
                    for _ in range(30)}
            return pids if first["pid"] not in pids and len(pids) == 2 else None

        wait_for(both_new, 20, message="both workers replaced")


def test_include_and_exclude_patterns(project):
    directory = project[0]
    with serve_reloading(project, "--reload-include", "*.html", "--reload-exclude", "scratch_*.py") as server:
        (directory / "scratch_notes.py").write_text("x = 1\n")
        (directory / "notes.txt").write_text("not watched\n")
        time.sleep(1.5)
        assert "changed; reloading" not in server.logs()
        (directory / "page.html").write_text("<p>watched</p>\n")
        wait_for(lambda: "page.html changed; reloading" in server.logs(), 10, message="the html reload")


@pytest.mark.parametrize("args, why", [
    (["--preload"], "--preload"),
])
def test_reload_refuses_what_cannot_work(project, args, why):
    directory, name, _ = project
    result = subprocess.run([sys.executable, "-m", "catzilla", "run", f"{name}:app", "--port", "0", "--reload", *args],
                            cwd=directory, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)])})
    assert result.returncode == 3 and why in result.stderr


def test_app_listen_with_reload_says_why_not(project):
    directory, name, _ = project
    code = f"import {name}; {name}.app.listen(port=0, reload=True)"
    result = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(directory)])})
    assert result.returncode == 3 and "module:attribute" in result.stderr
