"""Parameter binding, the Request object, return values, errors and schedule_task
(DESIGN.md section 3): through the TestClient (the same protocol, router, executor and pool
in memory), and against a real `catzilla run params_app:app` where the wire or the threads
matter (raw requests, a loop that is the main thread, a response sent before its tasks)."""
from __future__ import annotations

import json
import time

import httpx
import pytest
import requests

from conftest import app_client, run_server

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server():
    with run_server("params_app:app", "--workers", "1", "--threads", "8") as s:
        yield s


@pytest.fixture(scope="module")
def wire(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


@pytest.fixture(scope="module")
def client():
    with app_client("params_app:app", threads=8) as c:
        yield c


def only_error(response: httpx.Response) -> dict:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["detail"]
    (error,) = body["detail"]
    return error


def missing(*loc) -> dict:
    return {"type": "missing", "loc": list(loc), "msg": "Field required", "input": None}


INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"


# --- path parameters ------------------------------------------------------------------------

def test_path_int(client):
    r = client.get("/path/int/42")
    assert r.status_code == 200
    # the converted value is also what request.path_params holds
    assert r.json() == {"item_id": 42, "type": "int", "path_params": {"item_id": 42}}
    assert client.get("/path/int/-7").json()["item_id"] == -7


def test_path_int_invalid_is_422(client):
    r = client.get("/path/int/abc")
    assert r.json() == {"detail": [{"type": "int_parsing", "loc": ["path", "item_id"],
                                    "msg": INT_PARSING, "input": "abc"}]}
    assert r.status_code == 422
    assert only_error(client.get("/path/int/1.5"))["loc"] == ["path", "item_id"]


def test_path_float_and_str(client):
    assert client.get("/path/float/2.5").json() == {"value": 2.5, "type": "float"}
    assert client.get("/path/float/3").json() == {"value": 3.0, "type": "float"}
    error = only_error(client.get("/path/float/x"))
    assert error["type"] == "float_parsing" and error["loc"] == ["path", "value"]
    # percent-decoded before it reaches the handler; a str is never converted
    assert client.get("/path/str/hello%20world").json() == {"name": "hello world", "type": "str"}
    assert client.get("/path/str/123").json() == {"name": "123", "type": "str"}


def test_two_path_params_and_path_converter(client):
    assert client.get("/path/two/5/sub/five").json() == {"a": 5, "b": "five"}
    assert client.get("/path/file/a/b/c.txt").json() == {"file_path": "a/b/c.txt"}
    # {name} matches one segment only
    assert client.get("/path/str/a/b").status_code == 404


def test_path_marker_constraints(client):
    assert client.get("/path/marker/1").json() == {"item_id": 1}
    assert client.get("/path/marker/100").json() == {"item_id": 100}
    error = only_error(client.get("/path/marker/0"))
    assert error == {"type": "greater_than_equal", "loc": ["path", "item_id"],
                     "msg": "Input should be greater than or equal to 1", "input": "0",
                     "ctx": {"ge": 1}}
    error = only_error(client.get("/path/marker/101"))
    assert error["type"] == "less_than_equal" and error["ctx"] == {"le": 100}


# --- plain scalar query parameters ------------------------------------------------------------

def test_query_required_and_defaults(client):
    r = client.get("/query/plain", params={"q": 3})
    assert r.status_code == 200
    assert r.json() == {"q": 3, "name": None, "page": 1, "ratio": 0.5}
    r = client.get("/query/plain", params={"q": "-4", "name": "x y", "page": 2, "ratio": "1e-3"})
    assert r.json() == {"q": -4, "name": "x y", "page": 2, "ratio": 0.001}


def test_query_missing_required(client):
    r = client.get("/query/plain")
    assert r.status_code == 422
    assert r.json() == {"detail": [missing("query", "q")]}


def test_query_wrong_type(client):
    error = only_error(client.get("/query/plain", params={"q": "1.5"}))
    assert error == {"type": "int_parsing", "loc": ["query", "q"], "msg": INT_PARSING, "input": "1.5"}


def test_query_several_invalid_all_listed(client):
    r = client.get("/query/plain", params={"q": "x", "page": "y", "ratio": "z"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(e["type"], e["loc"], e["input"]) for e in detail] == [
        ("int_parsing", ["query", "q"], "x"),
        ("int_parsing", ["query", "page"], "y"),
        ("float_parsing", ["query", "ratio"], "z"),
    ]


def test_query_missing_and_invalid_together(client):
    r = client.get("/query/plain", params={"page": "y"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        missing("query", "q"),
        {"type": "int_parsing", "loc": ["query", "page"], "msg": INT_PARSING, "input": "y"},
    ]


@pytest.mark.parametrize("raw, value", [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
    ("y", True), ("false", False), ("False", False), ("0", False), ("no", False),
    ("off", False), ("n", False), ("OFF", False),
])
def test_query_bool_parsing(client, raw, value):
    r = client.get("/query/bool", params={"flag": raw})
    assert r.status_code == 200, r.text
    assert r.json() == {"flag": value}


@pytest.mark.parametrize("raw, value", [("t", True), ("f", False)])
def test_query_bool_pydantic_single_letters(client, raw, value):
    # pydantic v2 (hence FastAPI) accepts t/f as well as y/n.
    r = client.get("/query/bool", params={"flag": raw})
    assert r.status_code == 200, r.text
    assert r.json() == {"flag": value}


@pytest.mark.parametrize("raw", ["maybe", "2", ""])
def test_query_bool_invalid(client, raw):
    error = only_error(client.get("/query/bool", params={"flag": raw}))
    assert error["type"] == "bool_parsing"
    assert error["loc"] == ["query", "flag"]
    assert error["input"] == raw


def test_query_bool_missing_and_default(client):
    assert client.get("/query/bool").json() == {"detail": [missing("query", "flag")]}
    assert client.get("/query/bool-default").json() == {"flag": False}
    assert client.get("/query/bool-default?flag=on").json() == {"flag": True}


# --- Query(...) constraints -------------------------------------------------------------------

def test_query_constraints_defaults_and_valid(client):
    assert client.get("/query/constraints").json() == {
        "ge_v": 0, "gt_v": 1, "le_v": 10.0, "lt_v": 0.0, "short": "abc", "long": "abc",
        "code": "AB12", "aliased": "none"}
    r = client.get("/query/constraints", params={
        "ge_v": 0, "gt_v": 1, "le_v": 10, "lt_v": 9.99, "short": "abcd", "long": "abcde",
        "code": "ZZ99", "item-query": "via alias"})
    assert r.status_code == 200
    assert r.json() == {"ge_v": 0, "gt_v": 1, "le_v": 10.0, "lt_v": 9.99, "short": "abcd",
                        "long": "abcde", "code": "ZZ99", "aliased": "via alias"}


def test_query_alias_replaces_the_name(client):
    # only the alias is read from the query string, like FastAPI
    assert client.get("/query/constraints", params={"aliased": "by name"}).json()["aliased"] == "none"


@pytest.mark.parametrize("name, raw, kind, ctx", [
    ("ge_v", "-1", "greater_than_equal", {"ge": 0}),
    ("le_v", "10.5", "less_than_equal", {"le": 10}),
    ("lt_v", "10", "less_than", {"lt": 10}),
    ("short", "ab", "string_too_short", {"min_length": 3}),
    ("long", "abcdef", "string_too_long", {"max_length": 5}),
    ("code", "ab12", "string_pattern_mismatch", {"pattern": "^[A-Z]{2}[0-9]{2}$"}),
])
def test_query_constraint_violations(client, name, raw, kind, ctx):
    error = only_error(client.get("/query/constraints", params={name: raw}))
    assert error["type"] == kind
    assert error["loc"] == ["query", name]
    assert error["input"] == raw
    assert error["ctx"] == ctx


def test_query_constraint_violation_on_alias(client):
    r = client.get("/query/constraints", params={"item-query": "x"})
    assert r.status_code == 200  # no constraint on it: the alias is just read
    error = only_error(client.get("/query/required-marker", params={"token": "a"}))
    assert error["type"] == "string_too_short" and error["loc"] == ["query", "token"]


def test_query_gt_is_reported_as_greater_than(client):
    # FastAPI: Query(gt=0) -> {"type": "greater_than", "msg": "Input should be greater
    # than 0", "ctx": {"gt": 0}}; clients switch on the type.
    error = only_error(client.get("/query/constraints", params={"gt_v": "0"}))
    assert error == {"type": "greater_than", "loc": ["query", "gt_v"],
                     "msg": "Input should be greater than 0", "input": "0", "ctx": {"gt": 0}}


def test_query_every_constraint_violation_listed(client):
    r = client.get("/query/constraints", params={
        "ge_v": -1, "le_v": 11, "lt_v": 10, "short": "a", "long": "toolong", "code": "no"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [e["loc"] for e in detail] == [["query", n] for n in ("ge_v", "le_v", "lt_v", "short", "long", "code")]


def test_query_required_marker(client):
    assert client.get("/query/required-marker", params={"token": "ok"}).json() == {"token": "ok"}
    assert client.get("/query/required-marker").json() == {"detail": [missing("query", "token")]}


def test_query_list(client):
    r = client.get("/query/list?ids=1&ids=2&ids=30&tags=a&tags=b")
    assert r.json() == {"ids": [1, 2, 30], "tags": ["a", "b"]}
    assert client.get("/query/list?ids=5").json() == {"ids": [5], "tags": []}
    assert client.get("/query/list").json() == {"detail": [missing("query", "ids")]}
    error = only_error(client.get("/query/list?ids=1&ids=x"))
    assert error["type"] == "int_parsing"
    assert error["loc"] == ["query", "ids", 1]


# --- Header(...) and Cookie(...) --------------------------------------------------------------

def test_headers_underscore_to_hyphen_and_alias(client):
    r = client.get("/headers", headers={"User-Agent": "tester/1.0", "X-Token": "secret",
                                        "x-custom-name": "custom!", "X-COUNT": "7"})
    assert r.status_code == 200
    assert r.json() == {"user_agent": "tester/1.0", "x_token": "secret", "custom": "custom!",
                        "count": 7}


def test_headers_defaults(client):
    r = client.get("/headers", headers={"User-Agent": "ua"})
    assert r.json() == {"user_agent": "ua", "x_token": None, "custom": "dflt", "count": 0}


def test_headers_underscore_name_is_not_the_header(client):
    # x_token is read from "x-token"; a header literally called x_token is not it
    r = client.get("/headers", headers={"User-Agent": "ua", "x_token": "wrong"})
    assert r.json()["x_token"] is None


def test_headers_convert_underscores_false(client):
    assert client.get("/headers/no-convert", headers={"x_raw_name": "raw"}).json() == {"x_raw_name": "raw"}
    assert client.get("/headers/no-convert", headers={"x-raw-name": "raw"}).json() == {"x_raw_name": None}


def test_headers_missing_and_invalid(server):
    # a raw request, so that no User-Agent is sent
    with server.connect() as sock:
        sock.sendall(b"GET /headers HTTP/1.1\r\nHost: t\r\nX-Count: many\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 422 ")
    detail = json.loads(body)["detail"]
    assert detail[0] == missing("header", "user-agent")
    assert detail[1]["type"] == "int_parsing"
    assert [part.lower() for part in detail[1]["loc"]] == ["header", "x-count"]
    assert detail[1]["input"] == "many"
    assert len(detail) == 2


def test_cookies(client):
    r = client.get("/cookies", headers={"Cookie": "session=abc123; visits=3"})
    assert r.status_code == 200
    assert r.json() == {"session": "abc123", "theme": "light", "visits": 3}
    r = client.get("/cookies", headers={"Cookie": "theme=dark; session=s"})
    assert r.json() == {"session": "s", "theme": "dark", "visits": 0}


def test_cookies_missing_and_invalid(client):
    r = client.get("/cookies", headers={"Cookie": "visits=lots"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        missing("cookie", "session"),
        {"type": "int_parsing", "loc": ["cookie", "visits"], "msg": INT_PARSING, "input": "lots"},
    ]
    assert client.get("/cookies").json() == {"detail": [missing("cookie", "session")]}


# --- bodies -------------------------------------------------------------------------------

def test_body_dict(client):
    r = client.post("/body/dict", json={"a": 1, "b": [True, None]})
    assert r.json() == {"got": {"a": 1, "b": [True, None]}, "type": "dict"}
    error = only_error(client.post("/body/dict", json=[1, 2]))
    assert error["type"] == "dict_type" and error["loc"] == ["body"]


def test_body_list(client):
    assert client.post("/body/list", json=[1, "a", {}]).json() == {"got": [1, "a", {}], "len": 3}
    error = only_error(client.post("/body/list", json={"a": 1}))
    assert error["type"] == "list_type" and error["loc"] == ["body"]


def test_body_list_of_int(client):
    assert client.post("/body/list-int", json=[1, 2, 3]).json() == {"sum": 6, "count": 3}
    error = only_error(client.post("/body/list-int", json=[1, "a", 3]))
    assert error == {"type": "int_parsing", "loc": ["body", 1], "msg": INT_PARSING, "input": "a"}


def test_body_struct(client):
    r = client.post("/body/struct", json={"name": "widget", "price": 3})
    assert r.json() == {"name": "widget", "price": 3.0, "tags": [], "type": "Item"}
    r = client.post("/body/struct", json={"name": "w", "price": 1.5, "tags": ["x", "y"]})
    assert r.json()["tags"] == ["x", "y"]


def test_body_struct_wrong_field_type(client):
    error = only_error(client.post("/body/struct", json={"name": "w", "price": "cheap"}))
    assert error["loc"] == ["body", "price"]
    assert error["type"] == "float_parsing"
    assert error["input"] == "cheap"
    error = only_error(client.post("/body/struct", json={"name": "w", "price": 1, "tags": ["ok", 5]}))
    assert error["loc"] == ["body", "tags", 1]
    assert error["type"] == "string_type"


def test_body_struct_missing_field(client):
    assert client.post("/body/struct", json={"price": 1}).json() == {"detail": [missing("body", "name")]}


def test_body_struct_every_invalid_field_listed(client):
    # FastAPI reports every invalid field of a body model in one 422.
    r = client.post("/body/struct", json={"name": 5, "price": "cheap"})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "name"], ["body", "price"]]


def test_body_dataclass(client):
    r = client.post("/body/dataclass", json={"username": "ann", "age": 30})
    assert r.json() == {"username": "ann", "age": 30, "type": "User", "is_dataclass": True}
    error = only_error(client.post("/body/dataclass", json={"username": "ann", "age": "old"}))
    assert error == {"type": "int_parsing", "loc": ["body", "age"], "msg": INT_PARSING, "input": "old"}


def test_body_invalid_json(client):
    error = only_error(client.post("/body/dict", content=b'{"a": ', headers={"content-type": "application/json"}))
    assert error["type"] == "json_invalid"
    assert error["loc"][0] == "body"
    error = only_error(client.post("/body/struct", content=b"not json at all"))
    assert error["type"] == "json_invalid"


def test_body_missing(client):
    r = client.post("/body/dict")
    assert r.status_code == 422
    assert r.json() == {"detail": [missing("body")]}


def test_body_embed(client):
    r = client.post("/body/embed", json={"item": {"name": "n", "price": 2}})
    assert r.json() == {"name": "n", "price": 2.0}
    # not embedded: the item alone is not accepted
    assert only_error(client.post("/body/embed", json={"name": "n", "price": 2})) == missing("body", "item")
    error = only_error(client.post("/body/embed", json={"item": {"name": "n", "price": "x"}}))
    assert error["loc"] == ["body", "item", "price"]


def test_body_multiple_params_are_embedded(client):
    r = client.post("/body/multi", json={"item": {"name": "n", "price": 1},
                                         "user": {"username": "u", "age": 2}})
    assert r.json() == {"item": "n", "user": "u"}
    assert only_error(client.post("/body/multi", json={"item": {"name": "n", "price": 1}})) == \
        missing("body", "user")
    error = only_error(client.post("/body/multi", json={"item": {"name": "n", "price": 1},
                                                        "user": {"username": "u", "age": "x"}}))
    assert error["loc"] == ["body", "user", "age"]


def test_body_scalar(client):
    assert client.post("/body/scalar", json=5).json() == {"importance": 5}
    error = only_error(client.post("/body/scalar", json="high"))
    assert error["loc"] == ["body"] and error["type"] == "int_parsing"


def test_body_and_query_errors_listed_together(client):
    # README: "failures answer 422 ... listing every invalid parameter" (FastAPI does too).
    r = client.post("/body/with-query", params={"q": "x"}, json={"price": 1})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["query", "q"] in locs
    assert ["body", "name"] in locs


def test_body_with_query_valid(client):
    r = client.post("/body/with-query", params={"q": "9"}, json={"name": "n", "price": 1})
    assert r.json() == {"item": "n", "q": 9}


# --- Form(...) ------------------------------------------------------------------------------

def test_form_urlencoded(client):
    r = client.post("/form", data={"username": "bob smith", "age": "30", "remember": "on"})
    assert r.status_code == 200
    assert r.json() == {"username": "bob smith", "age": 30, "remember": True}
    r = client.post("/form", data={"username": "b&b=1", "age": "5"})
    assert r.json() == {"username": "b&b=1", "age": 5, "remember": False}


def test_form_multipart(client):
    r = client.post("/form", data={"username": "ann", "age": "7"},
                    files={"unused": ("u.txt", b"ignored")})
    assert r.status_code == 200
    assert r.json() == {"username": "ann", "age": 7, "remember": False}


def test_form_errors(client):
    r = client.post("/form", data={"age": "old"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert [(e["type"], e["loc"][-1]) for e in detail] == [("missing", "username"), ("int_parsing", "age")]


def test_form_error_loc_is_body_like_fastapi(client):
    # FastAPI reports Form and File fields under "body": ["body", "username"].
    r = client.post("/form", data={"age": "1"})
    assert r.status_code == 422
    assert r.json() == {"detail": [missing("body", "username")]}


def test_form_with_json_body_is_a_client_error(client):
    r = client.post("/form", json={"username": "x", "age": 1})
    assert r.status_code in (400, 422)
    assert "detail" in r.json()


# --- File(...) -------------------------------------------------------------------------------

UPLOAD = b"ab\r\n--boundary-lookalike\r\n\x00\xff" + bytes(range(256))


@pytest.mark.parametrize("path, main", [("/upload/sync", False), ("/upload/async", True)])
def test_upload_object(wire, path, main):
    r = wire.post(path, files={"file": ("report.csv", UPLOAD, "text/csv")}, data={"note": "hello"})
    assert r.status_code == 200
    body = r.json()
    assert body["filename"] == "report.csv"
    assert body["content_type"] == "text/csv"
    assert body["size"] == len(UPLOAD)
    assert body["first3"] == list(UPLOAD[:3])
    assert body["data"].encode("latin-1") == UPLOAD  # read(3) then read() gives it all
    assert body["class"] == "UploadFile"
    assert body["note"] == "hello"
    assert body["main"] is main  # def handlers in the pool, async def on the loop


def test_upload_default_content_type_and_annotation_only(server):
    # `file: UploadFile` without File(...) is an upload too; requests sends no part type
    r = requests.post(server.url + "/upload/annotated", files={"file": ("plain.bin", UPLOAD)},
                      timeout=TIMEOUT)
    assert r.status_code == 200
    body = r.json()
    assert body["filename"] == "plain.bin"
    assert body["size"] == len(UPLOAD)
    assert body["data"].encode("latin-1") == UPLOAD


def test_upload_many(client):
    files = [("files", ("a.txt", b"aaa", "text/plain")), ("files", ("b.txt", b"bb", "text/plain"))]
    r = client.post("/upload/many", files=files)
    assert r.json() == {"names": ["a.txt", "b.txt"], "sizes": [3, 2]}


def test_upload_missing(client):
    error = only_error(client.post("/upload/sync", data={"note": "no file"}, files={"x": ("x", b"1")}))
    assert error["type"] == "missing"
    assert error["loc"][-1] == "file"


def test_upload_malformed_multipart_is_400(client):
    r = client.post("/upload/sync", content=b"--XYZ\r\nno headers here",
                    headers={"content-type": "multipart/form-data; boundary=XYZ"})
    assert r.status_code == 400
    assert isinstance(r.json()["detail"], str)


# --- the Request object ------------------------------------------------------------------------

def test_request_object(server):
    with server.connect() as sock:
        local_port = sock.getsockname()[1]
        body = b'{"k": [1, 2], "s": "\xc3\xa9"}'
        sock.sendall(
            b"POST /request/abc?x=1&x=2&y=a%%20b+c HTTP/1.1\r\nHost: t\r\n"
            b"X-Mixed-Case: Val\r\nCookie: a=1; b=two\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(payload) == {
        "method": "POST",
        "path": "/request/abc",
        "query_x": ["1", "2"],
        "query_last_x": "2",
        "query_y": "a b c",
        "query_missing": "dflt",
        "path_params": {"thing": "abc"},
        "header_lower": "Val",
        "header_upper": "Val",
        "header_default": "fallback",
        "header_in": True,
        "body_type": "bytes",
        "body_len": len(body),
        "body_hex": body.hex(),
        "json": {"k": [1, 2], "s": "é"},
        "cookies": {"a": "1", "b": "two"},
        "client_host": "127.0.0.1",
        "client_port": local_port,
        "state_marker": "set-in-handler",
        "state_missing": "AttributeError",
    }


def test_request_object_get_and_put(client):
    r = client.put("/request/zz", content=b"\x00\x01")
    body = r.json()
    assert body["method"] == "PUT"
    assert body["body_hex"] == "0001"
    assert body["json"] is None
    r = client.get("/request/q", params=[("x", "only")])
    assert r.json()["query_x"] == ["only"] and r.json()["body_len"] == 0


def test_request_async_state_and_headers(client):
    r = client.get("/request-async", headers={"user-agent": "ua/9"})
    assert r.json() == {"method": "GET", "path": "/request-async", "state": 42, "ua": "ua/9"}


# --- return values -----------------------------------------------------------------------------

def test_return_dict_and_list_are_json(client):
    r = client.get("/ret/dict")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"a": 1, "nested": {"b": [1, 2]}}
    r = client.get("/ret/list")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == [1, "two", None, True]


def test_return_struct_is_json(client):
    r = client.get("/ret/struct")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"name": "widget", "price": 2.5, "tags": []}


def test_return_str_is_text(client):
    r = client.get("/ret/str")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.content == "héllo text".encode()
    assert r.headers["content-length"] == str(len("héllo text".encode()))


def test_return_bytes_is_octet_stream(client):
    r = client.get("/ret/bytes")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"\x00\x01raw\xff"


def test_plain_text_response_status_and_headers(client):
    r = client.get("/ret/plain")
    assert r.status_code == 202
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-kind"] == "plain"
    assert r.text == "plain body"


def test_html_response(client):
    r = client.get("/ret/html")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == "<h1>Hi</h1>"


def test_custom_response(client):
    r = client.get("/ret/custom")
    assert r.status_code == 418
    assert r.headers["content-type"] == "application/x-custom"
    assert r.headers["x-custom"] == "yes" and r.headers["x-other"] == "2"
    assert r.content == b"custom"


def test_json_response_status_and_headers(client):
    r = client.get("/ret/json-status")
    assert r.status_code == 201
    assert r.headers["location"] == "/things/1"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"created": True}


def test_no_content(client):
    r = client.get("/ret/no-content")
    assert r.status_code == 204
    assert r.content == b""
    assert "content-length" not in r.headers


def test_streaming_from_sync_generator(wire):
    r = wire.get("/ret/stream-sync")
    assert r.status_code == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in r.headers
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["x-stream"] == "sync"
    # the generator is advanced in the thread pool, not on the loop's (main) thread
    assert r.text == "".join(f"line {i} False\n" for i in range(5))


def test_streaming_from_async_generator(client):
    r = client.get("/ret/stream-async")
    assert r.status_code == 200
    assert r.headers["transfer-encoding"] == "chunked"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == b"chunk-0;chunk-1;chunk-2;chunk-3;"
    # and the connection stays usable after a chunked response
    assert client.get("/ret/dict").status_code == 200


# --- HTTPException, 404, 405, 500 -----------------------------------------------------------

def test_http_exception_detail_and_headers(client):
    r = client.get("/http-error/404")
    assert r.status_code == 404
    assert r.json() == {"detail": "Item not found"}
    assert r.headers["x-error"] == "missing-item"
    assert r.headers["content-type"] == "application/json"
    r = client.get("/http-error/409")
    assert r.status_code == 409
    assert r.json() == {"detail": {"reason": "conflict", "ids": [1, 2]}}
    r = client.get("/http-error/403")
    assert r.status_code == 403
    assert r.json() == {"detail": "Forbidden"}


def test_http_exception_from_async(client):
    r = client.get("/http-error-async")
    assert r.status_code == 401
    assert r.json() == {"detail": "Not authenticated"}
    assert r.headers["www-authenticate"] == "Bearer"


def test_unknown_path_404(client):
    r = client.get("/definitely/not/here")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "Not Found"}


def test_wrong_method_405_with_allow(client):
    r = client.post("/only-get")
    assert r.status_code == 405
    assert r.json() == {"detail": "Method Not Allowed"}
    assert r.headers["allow"] == "GET, HEAD"
    r = client.delete("/get-post")
    assert r.status_code == 405
    assert [m.strip() for m in r.headers["allow"].split(",")] == ["GET", "HEAD", "POST"]
    assert client.post("/get-post").json() == {"method": "POST"}


@pytest.mark.parametrize("path, secret, exc_type, via", [
    ("/crash/sync", "secret-internal-sync-9f3a", "RuntimeError", "wire"),  # on a real keep-alive connection
    ("/crash/sync", "secret-internal-sync-9f3a", "RuntimeError", "client"),
    ("/crash/async", "secret-internal-async-7c1b", "KeyError", "client"),
    ("/crash/inline", "division by zero", "ZeroDivisionError", "client"),
])
def test_handler_exception_is_500(request, path, secret, exc_type, via):
    client = request.getfixturevalue(via)
    logs_of = request.getfixturevalue("server").logs if via == "wire" else client.logs
    r = client.get(path)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"detail": "Internal Server Error"}
    assert secret.encode() not in r.content and b"Traceback" not in r.content
    # the same keep-alive connection and the server keep serving
    assert client.get("/ret/dict").json() == {"a": 1, "nested": {"b": [1, 2]}}
    deadline = time.monotonic() + 5
    while secret not in logs_of() and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = logs_of()
    assert f"Exception in handler for GET {path}" in logs
    assert "Traceback (most recent call last)" in logs
    assert f"{exc_type}: " in logs and secret in logs


# --- schedule_task ------------------------------------------------------------------------------

def wait_events(client, token: str, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        events = client.get("/bg/events", params={"token": token}).json()
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


@pytest.mark.parametrize("route", ["/bg/schedule-sync", "/bg/schedule-async", "/bg/schedule-inline"])
def test_schedule_task_runs_after_response(wire, route):
    token = f"tok-{route.rsplit('-', 1)[1]}-{time.monotonic_ns()}"
    r = wire.get(route, params={"token": token})
    assert r.status_code == 200
    assert r.json() == {"scheduled": token, "seen_now": []}
    events = sorted(wait_events(wire, token, 2), key=lambda e: e["fn"])
    assert events == [
        # async fn on the loop thread, def fn in the pool; both after the response was sent
        {"token": token, "fn": "async", "responded": True, "main": True},
        {"token": token, "fn": "sync", "responded": True, "main": False},
    ]


def test_schedule_task_does_not_delay_response(wire):
    token = f"slow-{time.monotonic_ns()}"
    t0 = time.monotonic()
    r = wire.get("/bg/schedule-sync", params={"token": token, "delay": "0.8"})
    elapsed = time.monotonic() - t0
    assert r.status_code == 200
    assert elapsed < 0.6 * 0.8
    assert wire.get("/bg/events", params={"token": token}).json() == []
    assert len(wait_events(wire, token, 2)) == 2


def test_failing_background_task_is_logged(client):
    token = f"f{time.monotonic_ns()}"
    r = client.get("/bg/fail", params={"token": token})
    assert r.status_code == 200
    assert r.json() == {"scheduled": token}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logs = client.logs()
        if f"bg-sync-boom-{token}" in logs and f"bg-async-boom-{token}" in logs:
            break
        time.sleep(0.05)
    logs = client.logs()
    assert "background task failing_sync_task failed" in logs
    assert "background task failing_async_task failed" in logs
    assert f"ValueError: bg-sync-boom-{token}" in logs
    assert f"LookupError: bg-async-boom-{token}" in logs
    assert client.get("/ret/dict").status_code == 200


# --- Annotated markers, on the direct path -----------------------------------------------------

def test_annotated_markers_on_the_direct_path(client):
    assert client.get("/annotated/3", params={"n": 4}, headers={"x-tag": "t"}).json() == {
        "item_id": 3, "n": 4, "x_tag": "t"}
    assert client.get("/annotated/3", params={"x_tag": "not from the query"}).json()["x_tag"] is None
    error = only_error(client.get("/annotated/3", params={"n": 1}))
    assert error == {"type": "greater_than_equal", "loc": ["query", "n"],
                     "msg": "Input should be greater than or equal to 2", "input": "1", "ctx": {"ge": 2}}
    assert only_error(client.get("/annotated/0"))["loc"] == ["path", "item_id"]


def test_annotated_markers_on_a_def_handler(client):
    r = client.get("/annotated-sync", params={"n": 5}, headers={"cookie": "session=abc"})
    assert r.json() == {"n": 5, "session": "abc"}
    error = only_error(client.get("/annotated-sync", params={"n": 6}))
    assert (error["type"], error["msg"]) == ("less_than_equal", "Input should be less than or equal to 5")


def test_annotated_routes_have_no_pipeline():
    from conftest import load_test_app

    app = load_test_app("params_app").app
    app.prepare(None)
    for route in app.routes:
        if route.path.startswith("/annotated"):
            assert route.plan is None and route.pipeline is None


def test_annotated_file_and_form(client):
    r = client.post("/annotated/upload", files={"file": ("a.txt", b"abc", "text/plain")}, data={"note": "hi"})
    assert r.json() == {"filename": "a.txt", "size": 3, "note": "hi"}
    r = client.post("/annotated/upload", files={"file": ("a.txt", b"abc", "text/plain")}, data={"note": "too long"})
    assert only_error(r)["loc"] == ["body", "note"]
    r = client.post("/annotated/upload", data={"note": "x"})
    assert only_error(r) == missing("body", "file")
