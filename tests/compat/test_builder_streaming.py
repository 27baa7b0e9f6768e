"""`response` (ResponseBuilder) and StreamingWriter over a real server."""
from __future__ import annotations

import concurrent.futures

import pytest

from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    with compat_client("builder_app:app", "--threads", "8") as client:
        yield client


def test_builder_chains_do_not_leak_between_concurrent_requests(client):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: client.get(f"/created/{n}"), range(1, 25)))
    for n, r in enumerate(answers, start=1):
        assert (r.status_code, r.headers["x-n"], r.json()) == (201 + n % 2, str(n), {"n": n})


def test_html_and_text(client):
    r = client.get("/page")
    assert r.headers["content-type"].startswith("text/html") and r.text == "<h1>hi</h1>"
    r = client.get("/plain")
    assert (r.status_code, r.text) == (418, "teapot") and r.headers["content-type"].startswith("text/plain")


def test_streaming_writer_sends_what_was_written(client):
    r = client.get("/rows.csv")
    assert r.headers["transfer-encoding"] == "chunked"
    lines = r.text.splitlines()
    assert len(lines) == 1000 and lines[999] == "row-999,999,998001"


def test_a_writer_left_open_ends_its_body_and_refuses_later_writes(client):
    assert client.get("/late").text == "early\n"  # answered, not hung
    assert "closed" in client.get("/late-write").json()["error"]


def test_builder_cookies_are_two_set_cookie_fields(client):
    r = client.get("/login")
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2 and cookies[0].startswith("session=abc") and "HttpOnly" in cookies[0]
    assert r.cookies["theme"] == "dark" and r.json() == {"ok": True}


def test_content_type_keyword_is_sent_exactly_and_media_type_gets_a_charset(client):
    def sent(path):
        r = client.get(path)
        assert r.status_code == 200
        return r.headers["content-type"]
    assert sent("/typed/content-type") == "text/csv"  # 0.2.3's keyword: the whole value
    assert sent("/typed/media-type") == "text/csv; charset=utf-8"  # Starlette's rule
    assert sent("/typed/default") == "text/plain"  # 0.2.3's default for a stream
    assert sent("/typed/response") == "text/plain; format=flowed"
    assert sent("/typed/assigned") == "text/html"
    assert client.get("/typed/content-type").text == "a,b\n1,2\n"
