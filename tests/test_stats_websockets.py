"""WebSocket connections in the stats: open now, accepted, messages in and out, counted by
each worker into the shared block and shown by get_handler_stats(), the metrics endpoint
and `catzilla stats`. A real 2-worker server and the `websockets` client; the block's own
counting (and a gone worker's fold) in process at the end."""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from conftest import APPS, ROOT, run_server, wait_for


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(APPS), os.environ.get("PYTHONPATH", "")]))


def catzilla_cli() -> list[str]:
    script = Path(sys.executable).with_name("catzilla")
    return [str(script)] if script.exists() else [sys.executable, "-m", "catzilla"]


def metric(text: str, name: str) -> int:
    found = re.search(rf"^{name} (\d+)$", text, re.M)
    assert found, f"no {name} in the metrics:\n{text[-2000:]}"
    return int(found.group(1))


@pytest.fixture(scope="module")
def server():
    with run_server("ws_stats_app:app", "--workers", "2", "--metrics-path", "/metrics", "--no-access-log") as s:
        yield s


def test_websockets_are_counted_and_shown_everywhere(server):
    ws_url = f"ws://{server.host}:{server.port}"

    async def talk() -> None:
        sockets = [await connect(f"{ws_url}/ws/echo") for _ in range(3)]  # spread over the workers
        for n, websocket in enumerate(sockets):
            for i in range(n + 1):  # 1 + 2 + 3 = 6 messages in, 12 out
                await websocket.send(f"m{i}")
                assert await websocket.recv() == f"m{i}"
                assert await websocket.recv() == f"{i}m"
        with pytest.raises(InvalidStatus):  # refused: neither open nor accepted
            await connect(f"{ws_url}/ws/refuse")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            # while the three are open, every worker sees the same sums
            for _ in range(6):
                assert client.get("/stats").json()["websockets"] == {
                    "open": 3, "accepted": 3, "messages_in": 6, "messages_out": 12}
            text = client.get("/metrics").text
            assert metric(text, "catzilla_websockets_open") == 3
            assert metric(text, "catzilla_websocket_connections_total") == 3
            assert metric(text, "catzilla_websocket_messages_received_total") == 6
            assert metric(text, "catzilla_websocket_messages_sent_total") == 12
            assert "# TYPE catzilla_websockets_open gauge" in text
            assert "# TYPE catzilla_websocket_connections_total counter" in text
            result = subprocess.run([*catzilla_cli(), "stats", "--pid", str(server.proc.pid), "--once"],
                                    capture_output=True, text=True, timeout=30, env=cli_env(), cwd=ROOT)
            assert result.returncode == 0, result.stderr
            assert "websockets 3 open, 3 accepted, 6 msg in, 12 msg out" in result.stdout, result.stdout
            for websocket in sockets:
                await websocket.close()
            # closed: no longer open, still counted
            wait_for(lambda: client.get("/stats").json()["websockets"]["open"] == 0, 10,
                     message="the closed WebSockets to leave the open count")
            assert client.get("/stats").json()["websockets"] == {
                "open": 0, "accepted": 3, "messages_in": 6, "messages_out": 12}

    asyncio.run(talk())


def test_the_block_counts_websockets_and_folds_a_gone_workers():
    from catzilla.stats import StatsBoard, websocket_totals

    board = StatsBoard.create(4, 2)
    first, second = board.attach(0, 1, [("GET /a", False)]), board.attach(1, 1, [("GET /a", False)])
    first.websocket(1, 0, 0)
    first.websocket(1, 0, 0)
    first.websocket(0, 5, 7)
    second.websocket(1, 2, 0)
    first.websocket(-1, 0, 0)
    assert websocket_totals(board.snapshot()) == {"open": 2, "accepted": 3, "messages_in": 7, "messages_out": 7}
    board.retire(0)  # its open one is gone with it; what it counted stays
    assert websocket_totals(board.snapshot()) == {"open": 1, "accepted": 3, "messages_in": 7, "messages_out": 7}
    second.websocket(-1, 0, 0)
    second.websocket(-1, 0, 0)  # one close too many never goes below zero
    assert websocket_totals(board.snapshot())["open"] == 0
    with pytest.raises(TypeError):
        second.websocket(1, 0)
