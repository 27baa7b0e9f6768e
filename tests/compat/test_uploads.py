"""`request.files` and catzilla.exceptions as Catzilla 0.2.3 documents them, over a real server."""
from __future__ import annotations

import pytest

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
