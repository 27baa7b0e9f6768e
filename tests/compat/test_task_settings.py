"""The task engine's defaults are server settings: --task-* flags and CATZILLA_TASK_*
variables, which an app's own enable_background_tasks() keywords override."""
from __future__ import annotations

from compat_support import compat_client


def test_defaults_without_flags():
    with compat_client("task_settings_app:app") as client:
        assert client.get("/settings").json() == {"workers": 4, "queue_size": 10000, "max_retries": 3,
                                                  "timeout": 30.0, "keep_results": 10000}


def test_flags_and_environment_set_the_engine():
    with compat_client("task_settings_app:app", "--task-workers", "3", "--task-max-retries", "1",
                       "--task-timeout", "2.5", env={"CATZILLA_TASK_QUEUE_SIZE": "50"}) as client:
        assert client.get("/settings").json() == {"workers": 3, "queue_size": 50, "max_retries": 1,
                                                  "timeout": 2.5, "keep_results": 10000}
        # one run and one retry, then the task's error
        assert client.get("/retries").json() == {"attempts": 2, "error": "ConnectionError"}


def test_the_apps_own_keywords_win_over_the_settings():
    with compat_client("task_settings_app:app", "--task-workers", "3", env={"GIVE_WORKERS": "2"}) as client:
        assert client.get("/settings").json()["workers"] == 2


def test_a_bad_setting_stops_the_server_with_its_name():
    import os
    import subprocess
    import sys

    from conftest import ROOT
    done = subprocess.run([sys.executable, "-m", "catzilla", "run", "task_settings_app:app", "--task-workers", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=f"{ROOT}:{ROOT}/tests/compat/apps"))
    assert done.returncode != 0
    assert "task-workers must be above 0" in done.stdout + done.stderr
