"""Mixed sync/async traffic for Catzilla's example app (examples/hybrid.py).

    catzilla run hybrid:app --port 8000      # from examples/, or: python examples/hybrid.py
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 60s

The weights mimic an API where most calls are cheap and a few block: the point is to see that
slow `def` handlers (thread pool) never hold up the `async def` ones (event loop).
"""
from __future__ import annotations

import random

from locust import HttpUser, between, task


class HybridUser(HttpUser):
    wait_time = between(0.0, 0.05)

    @task(10)
    def sync_json(self) -> None:
        self.client.get("/sync")

    @task(5)
    def async_sleep(self) -> None:
        self.client.get("/async")

    @task(3)
    def compute_prime(self) -> None:
        self.client.get("/compute-prime", params={"n": random.randint(2, 2000)}, name="/compute-prime")

    @task(2)
    def fetch_user_data(self) -> None:
        self.client.get("/fetch-user-data", params={"user_id": random.randint(1, 1000)},
                        name="/fetch-user-data")

    @task(2)
    def process_data(self) -> None:
        items = [{"id": i, "value": random.random()} for i in range(20)]
        self.client.post("/process-data", json={"data": items})

    @task(1)
    def invalid_query(self) -> None:
        with self.client.get("/compute-prime", params={"n": "x"}, name="/compute-prime [422]",
                             catch_response=True) as response:
            if response.status_code == 422:
                response.success()
            else:
                response.failure(f"expected 422, got {response.status_code}")

    @task(1)
    def handler_stats(self) -> None:
        self.client.get("/handler-stats")
