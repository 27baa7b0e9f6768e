"""The access log: written directly where configure_logging sends lines, as records where a
user's own logging set-up is attached (both over a real server)."""
from __future__ import annotations

import time

import httpx

from conftest import run_server, wait_for


def test_lines_of_a_burst_are_all_written_in_order():
    with run_server("hardening_app:app") as s:
        with httpx.Client(base_url=s.url) as client:
            for i in range(20):
                client.get(f"/host?n={i}")
        wait_for(lambda: s.logs().count('"GET /host HTTP/1.1" 200') == 20, 5, message="20 access lines")
        lines = [line for line in s.logs().splitlines() if "catzilla.access" in line]
        assert all(line.startswith("[") and "[INFO] catzilla.access: 127.0.0.1:" in line for line in lines)


def test_a_handler_of_the_users_own_gets_records(tmp_path):
    target = tmp_path / "access.log"
    with run_server("access_app:app", env={"ACCESS_FILE": str(target)}) as s:
        assert httpx.get(s.url + "/x").text == "x"
        wait_for(lambda: target.exists() and "GET /x 200" in target.read_text(), 5, message="the user's line")
        time.sleep(0.2)
        assert '"GET /x HTTP/1.1" 200' in s.logs()  # and the root handler still has it
