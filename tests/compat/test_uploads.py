"""`request.files` and catzilla.exceptions as Catzilla 0.2.3 documents them, over a real server."""
from __future__ import annotations

import os

import pytest

from conftest import wait_for

from catzilla.exceptions import FileSizeError, MimeTypeError
from catzilla.errors import HTTPException
from compat_support import compat_client


@pytest.fixture(scope="module")
def client():
    # A tiny spool and file limit: an upload over 64 bytes is on disk, over 4096 refused.
    with compat_client("uploads_app:app", "--threads", "4", "--upload-spool-size", "64",
                       "--max-file-size", "4096") as client:
        yield client


@pytest.mark.parametrize("path", ["/upload", "/upload-async"])
def test_request_files_is_a_dict_of_upload_descriptions(client, path):
    r = client.post(path, files={"file": ("notes.txt", b"hello", "text/plain")}, data={"title": "t"})
    assert r.status_code == 201, r.text
    assert r.json() == {"file": {"field_name": "file", "filename": "notes.txt", "content_type": "text/plain",
                                 "size": 5, "text": "hello", "is_streamed": False}}


def test_several_fields_and_a_repeated_one_keep_the_last(client):
    r = client.post("/upload", files=[("a", ("1.txt", b"one", "text/plain")),
                                      ("a", ("2.txt", b"two", "text/plain")),
                                      ("b", ("3.bin", b"\x00three", "application/octet-stream"))])
    assert r.status_code == 201, r.text
    assert {name: (d["filename"], d["size"]) for name, d in r.json().items()} == {"a": ("2.txt", 3), "b": ("3.bin", 6)}


def test_no_upload_is_an_empty_dict(client):
    assert client.post("/upload", data={"title": "t"}).status_code == 400
    assert client.post("/upload", json={"x": 1}).status_code == 400
    assert client.post("/upload").status_code == 400


def test_an_upload_spooled_to_disk_reads_whole(client):
    body = b"x" * 3000
    r = client.post("/upload", files={"file": ("big.txt", body, "text/plain")})
    assert r.status_code == 201
    assert (r.json()["file"]["size"], r.json()["file"]["text"]) == (3000, body.decode())


def test_a_malformed_multipart_body_is_a_400_not_a_500(client):
    r = client.post("/upload", content=b"--b\r\nno headers here",
                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400


def test_exceptions_module_names_are_http_errors():
    assert issubclass(FileSizeError, HTTPException) and issubclass(MimeTypeError, HTTPException)
    assert FileSizeError("x").status_code == 413 and MimeTypeError("x").status_code == 415


def test_mime_type_error_uncaught_is_a_415_and_caught_is_the_handlers(client):
    ok = client.post("/images", files={"image": ("a.png", b"\x89PNG", "image/png")})
    assert (ok.status_code, ok.json()) == (200, {"size": 4})
    refused = client.post("/images", files={"image": ("a.gif", b"GIF89a", "image/gif")})
    assert refused.status_code == 415
    assert "image/png" in refused.text
    caught = client.post("/checked")
    assert caught.status_code == 413
    assert caught.json() == {"error": {"type": "FileSizeError", "message": "too big for this handler",
                                       "status_code": 413}}


def test_the_servers_file_size_limit_raises_file_size_error(client):
    small = client.post("/declared", files={"file": ("a.txt", b"a" * 100, "text/plain")})
    assert small.status_code == 200 and small.json() == {"size": 100, "files": ["file"]}
    assert client.post("/declared", files={"file": ("a.txt", b"a" * 5000, "text/plain")}).status_code == 413
    assert client.post("/declared", files={"file": ("a.txt", b"a", "text/plain")}).status_code == 200  # alive


def test_a_large_upload_is_left_on_disk_with_its_temp_path(client):
    # 0.2.3's request.files: a file past the spool size is streamed to a temporary file,
    # `content` None and `temp_path` where it is, removed once the request is done.
    body = "y" * 3000  # over the server's --upload-spool-size of 64 bytes
    r = client.post("/spooled", files={"file": ("big.txt", body.encode(), "text/plain")})
    assert r.status_code == 200, r.text
    info = r.json()
    assert (info["is_streamed"], info["content"], info["exists"], info["text"]) == (True, None, True, body)
    assert os.path.basename(info["temp_path"]).startswith("catzilla-upload-")
    wait_for(lambda: not os.path.exists(info["temp_path"]), 10, message="the temporary file removed")
    small = client.post("/spooled", files={"file": ("small.txt", b"tiny", "text/plain")}).json()
    assert (small["is_streamed"], small["content"], small["temp_path"]) == (False, "tiny", None)


def test_file_max_size_and_allowed_types(client):
    assert client.post("/limited", files={"file": ("a.txt", b"a" * 1024, "text/plain")}).json() == {"size": 1024}
    too_big = client.post("/limited", files={"file": ("a.txt", b"a" * 1025, "text/plain")})
    assert too_big.status_code == 413 and "1024" in too_big.text
    wrong = client.post("/limited", files={"file": ("a.png", b"\x89PNG", "image/png")})
    assert wrong.status_code == 415 and "text/plain" in wrong.text
    assert client.post("/limited", files={"file": ("a.txt", b"ok", "text/plain; charset=utf-8")}).status_code == 200


def test_file_max_files(client):
    two = [("files", (f"{n}.txt", b"x", "text/plain")) for n in range(2)]
    assert client.post("/several", files=two).json() == {"names": ["0.txt", "1.txt"]}
    three = client.post("/several", files=two + [("files", ("2.txt", b"x", "text/plain"))])
    assert three.status_code == 422
    assert three.json()["detail"][0]["type"] == "too_long"
    assert three.json()["detail"][0]["loc"] == ["body", "files"]
    assert client.post("/several", files=[("files", ("big.txt", b"x" * 101, "text/plain"))]).status_code == 413


@pytest.mark.parametrize("sent, kept", [("report.txt", "report.txt"), ("../../escape.txt", "escape.txt"),
                                        ("..\\\\win.txt", "win.txt")])
def test_save_to_a_directory_keeps_the_files_own_name_inside_it(client, sent, kept):
    r = client.post("/save", files={"file": (sent, b"saved bytes", "text/plain")})
    assert r.status_code == 200, r.text
    assert r.json() == {"dir": True, "name": kept, "content": "saved bytes", "again": "saved bytes"}


def test_file_limits_are_checked_when_the_route_is_declared():
    from catzilla import File
    with pytest.raises(ValueError, match="50 lightyears"):
        File(max_size="50 lightyears")
    with pytest.raises(ValueError, match="max_files"):
        File(max_files=0)
    from catzilla import Query
    with pytest.raises(TypeError, match="File\\(\\) keywords"):
        Query(max_size=10)
