"""Static files over a real server (tests/apps/responses_app.py): `app.mount_static` at
/static, with html=True at /site, and a Starlette-style StaticFiles at /starlette. Escapes
from the directory are sent on raw sockets, byte for byte (clients would normalise them)."""
from __future__ import annotations

import gzip

import httpx
import pytest

from conftest import run_server
from responses_files import make_tree

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_tree(tmp_path_factory.mktemp("static"))


@pytest.fixture(scope="module")
def server(files):
    with run_server("responses_app:app", "--workers", "1", env={"RESPONSES_FILES": str(files)}) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def raw_get(server, target: bytes, method: bytes = b"GET") -> tuple[int, bytes, bytes]:
    with server.connect() as sock:
        sock.sendall(b"%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % (method, target))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def test_serves_files_with_validators(client):
    response = client.get("/static/hello.txt")
    assert response.status_code == 200
    assert response.content == b"hello world\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["accept-ranges"] == "bytes"
    etag = response.headers["etag"]
    assert client.get("/static/hello.txt", headers={"If-None-Match": etag}).status_code == 304
    ranged = client.get("/static/hello.txt", headers={"Range": "bytes=0-4"})
    assert ranged.status_code == 206 and ranged.content == b"hello"
    assert client.get("/static/hello.txt", headers={"Range": "bytes=50-"}).status_code == 416
    assert client.get("/static/sub/page.txt").content == b"in sub\n"


def test_head(server):
    status, head, body = raw_get(server, b"/static/hello.txt", b"HEAD")
    assert status == 200
    assert b"content-length: 12" in head
    assert body == b""


def test_index_and_directory_redirect(client):
    response = client.get("/static/sub/")
    assert response.status_code == 200
    assert response.content == b"<h1>index</h1>\n"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    redirect = client.get("/static/sub", follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "/static/sub/"
    assert client.get("/static/sub", follow_redirects=True).content == b"<h1>index</h1>\n"


def test_missing_and_hidden_are_404(client):
    for path in ("/static/nope.txt", "/static/.hidden", "/static/sub/nope/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "Not Found"}
    assert client.get("/static/").status_code == 404  # no index.html at the top


def test_only_get_and_head(client):
    assert client.post("/static/hello.txt").status_code == 405


@pytest.mark.parametrize("target", [
    b"/static/../secret.txt",
    b"/static/sub/../../secret.txt",
    b"/static/%2e%2e/secret.txt",
    b"/static/%2E%2E/secret.txt",
    b"/static/%2e%2e%2fsecret.txt",
    b"/static/..%2fsecret.txt",
    b"/static/sub/%2e%2e/%2e%2e/secret.txt",
    b"/static/..%5csecret.txt",
    b"/static/sub\\..\\..\\secret.txt",
    b"/static/hello.txt%00.png",
    b"/static/%00",
    b"/static/link-out",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/starlette/%2e%2e/secret.txt",
])
def test_no_escape_from_the_directory(server, target):
    status, head, body = raw_get(server, target)
    assert status in (400, 404), (target, head)
    assert b"TOP SECRET" not in body and b"root:" not in body


def test_symlink_inside_the_directory_is_served(client):
    assert client.get("/static/link-in").content == b"hello world\n"


def test_precompressed_siblings(server, client):
    plain = client.get("/static/app.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    original = plain.content

    gzipped = client.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["content-encoding"] == "gzip"
    assert gzipped.headers["vary"] == "Accept-Encoding"
    assert gzipped.content == original  # httpx decoded the .gz sibling
    assert int(gzipped.headers["content-length"]) < len(original)
    assert gzipped.headers["content-type"] == "text/javascript; charset=utf-8"

    # br preferred when both are accepted (read raw: the bytes are not real brotli).
    with server.connect() as sock:
        sock.sendall(b"GET /static/app.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, br\r\n"
                     b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-encoding: br" in head
    assert body == b"BROTLI-BYTES"

    refused = client.get("/static/app.js", headers={"Accept-Encoding": "gzip;q=0, br;q=0"})
    assert "content-encoding" not in refused.headers and refused.content == original
    css = client.get("/static/style.css", headers={"Accept-Encoding": "br, gzip"})
    assert css.headers["content-encoding"] == "gzip"
    assert css.content == gzip.decompress(gzip.compress(b"body{}\n" * 20))
    assert "vary" not in client.get("/static/hello.txt").headers


def test_html_mode_serves_the_custom_404(client):
    response = client.get("/site/nothing-here")
    assert response.status_code == 404
    assert response.text == "<h1>custom not found</h1>\n"
    assert client.get("/site/sub/").text == "<h1>index</h1>\n"


def test_starlette_static_files_object(client):
    response = client.get("/starlette/hello.txt")
    assert response.status_code == 200 and response.content == b"hello world\n"
    assert client.get("/starlette/sub/").text == "<h1>index</h1>\n"


def test_mount_static_refuses_what_it_does_not_know(tmp_path):
    from catzilla import Catzilla
    from catzilla.staticfiles import StaticFiles
    app = Catzilla()
    with pytest.raises(TypeError, match="unknown arguments: colour"):
        app.mount_static("/s", str(tmp_path), colour="red")
    with pytest.raises(ValueError, match="must start with '/'"):
        app.mount_static("s", str(tmp_path))
    with pytest.raises(RuntimeError, match="does not exist"):
        StaticFiles(directory=tmp_path / "missing")
    assert StaticFiles.catzilla_static is True


def test_directory_listing_when_asked(tmp_path):
    (tmp_path / "a<b>.txt").write_text("x")
    (tmp_path / "d").mkdir()
    with run_server("static_listing_app:app", "--workers", "1", env={"LISTING_DIR": str(tmp_path)}) as s:
        response = httpx.get(s.url + "/files/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert 'href="a%3Cb%3E.txt">a&lt;b&gt;.txt</a>' in response.text
    assert 'href="d/"' in response.text


def test_directory_redirect_never_leaves_the_site(tmp_path):
    (tmp_path / "evil.com").mkdir()
    with run_server("static_listing_app:app", "--workers", "1", env={"LISTING_DIR": str(tmp_path)}) as s:
        with s.connect() as sock:
            sock.sendall(b"GET //evil.com HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    assert data.startswith(b"HTTP/1.1 307 ")
    assert b"\r\nlocation: /evil.com/\r\n" in data


def test_a_file_url_with_a_trailing_slash_is_404(client):
    assert client.get("/static/hello.txt/").status_code == 404


def test_packages_directories(tmp_path, monkeypatch):
    package = tmp_path / "assetpkg"
    (package / "statics").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "statics" / "a.txt").write_text("from a package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from catzilla.staticfiles import StaticFiles
    static = StaticFiles(packages=["assetpkg"])
    found = static.lookup("a.txt")
    assert found is not None and found[0] == str((package / "statics" / "a.txt").resolve())
    assert static.lookup("../__init__.py") is None
    with pytest.raises(RuntimeError, match="not installed"):
        StaticFiles(packages=["no_such_package_here"])


def _files_app(files):
    from catzilla import Catzilla
    from catzilla.responses import FileResponse
    app = Catzilla()

    @app.get("/file")
    def file(request):
        return FileResponse(files / "big.bin")

    app.mount_static("/static", str(files))
    return app


def test_files_through_the_test_client(files):
    """TestClient's transport has no socket: the file goes through transport.write."""
    from catzilla.testclient import TestClient
    from responses_files import big_content
    with TestClient(_files_app(files)) as client:
        assert client.get("/static/hello.txt").content == b"hello world\n"
        ranged = client.get("/static/hello.txt", headers={"Range": "bytes=0-4"})
        assert ranged.status_code == 206 and ranged.content == b"hello"
        assert client.get("/file").content == big_content()
        etag = client.get("/static/hello.txt").headers["etag"]
        assert client.get("/static/hello.txt", headers={"If-None-Match": etag}).status_code == 304


def test_files_through_the_asgi_interface(files):
    """Under an ASGI server the file is the body iterator's (no ranges there)."""
    import asyncio
    from responses_files import big_content
    app = _files_app(files)

    async def fetch():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/static/hello.txt"), await client.get("/file")

    small, big = asyncio.run(fetch())
    assert small.status_code == 200 and small.content == b"hello world\n"
    assert small.headers["content-type"] == "text/plain; charset=utf-8"
    assert big.content == big_content()


def test_url_path_for_a_mounted_file():
    from catzilla import Catzilla
    from catzilla.staticfiles import StaticFiles
    app = Catzilla()
    app.mount("/assets", StaticFiles(directory=".", check_dir=False), name="static")
    assert app.url_path_for("static", path="css/app.css") == "/assets/css/app.css"  # Starlette's url_for


def test_static_routes_stay_out_of_the_openapi_document(client):
    paths = client.get("/openapi.json").json().get("paths", {})
    assert not [path for path in paths if path.startswith(("/static", "/site", "/starlette"))]
    assert "/cookies" in paths
