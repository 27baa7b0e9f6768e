"""At the edge: proxy headers (believed from trusted peers only), root_path, and TLS with a
self-signed certificate made here. Raw sockets from 127.0.0.1, httpx, the websockets client."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import subprocess
import sys
import time

import httpx
import pytest
import websockets

from conftest import ROOT, read_response, run_server, wait_for


def ask(server, path: str = "/where", headers: dict[str, str] | None = None) -> dict:
    lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    with server.connect() as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: example.org\r\n{lines}\r\n".encode())
        status, _, body = read_response(sock)
        own_port = sock.getsockname()[1]
    assert status == 200, body
    answer = json.loads(body)
    answer["own_port"] = own_port
    return answer


FORGED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


# -- proxy headers ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trusting():
    with run_server("edge_app:app") as server:  # the default: 127.0.0.1 is trusted
        yield server


def test_a_trusted_peer_sets_the_client_and_the_scheme(trusting):
    answer = ask(trusting, headers=FORGED)
    assert answer["client"] == ["203.0.113.7", 0]
    assert answer["scheme"] == "https" and answer["url"] == "https://example.org/where"


def test_the_access_log_names_the_client_a_trusted_proxy_named(trusting):
    ask(trusting, headers={"X-Forwarded-For": "203.0.113.99"})
    wait_for(lambda: 'catzilla.access: 203.0.113.99 - "GET /where HTTP/1.1" 200' in trusting.logs(), 5,
             message="the forwarded client in the access log")
    answer = ask(trusting)  # and the peer itself, host:port, without them
    wait_for(lambda: f'catzilla.access: 127.0.0.1:{answer["own_port"]} - "GET /where' in trusting.logs(), 5,
             message="the peer in the access log")


def test_without_proxy_headers_the_peer_is_the_client(trusting):
    answer = ask(trusting)
    assert answer["client"] == ["127.0.0.1", answer["own_port"]] and answer["scheme"] == "http"


def test_forwarded_rfc7239(trusting):
    answer = ask(trusting, headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https;by=10.0.0.1'})
    assert answer["client"] == ["2001:db8::1", 0] and answer["scheme"] == "https"


def test_a_websocket_through_a_trusted_proxy(trusting):
    async def go():
        async with websockets.connect(f"ws://{trusting.host}:{trusting.port}/ws/rooms/x",
                                      additional_headers=FORGED) as ws:
            room = json.loads(await ws.recv())
        async with websockets.connect(f"ws://{trusting.host}:{trusting.port}/ws/json",
                                      additional_headers=FORGED) as ws:
            await ws.send("1")
            return room, json.loads(await ws.recv())
    room, echoed = asyncio.run(go())
    assert room["client"] == ["203.0.113.7", 0]
    assert echoed["url"].startswith("wss://")


def test_an_untrusted_peer_is_not_believed():
    with run_server("edge_app:app", "--forwarded-allow-ips", "10.0.0.1") as server:
        answer = ask(server, headers={**FORGED, "Forwarded": "for=6.6.6.6;proto=https"})
    assert answer["client"] == ["127.0.0.1", answer["own_port"]]
    assert answer["scheme"] == "http" and answer["url"] == "http://example.org/where"


def test_no_proxy_headers_turns_them_off():
    with run_server("edge_app:app", "--no-proxy-headers") as server:
        answer = ask(server, headers=FORGED)
    assert answer["client"][0] == "127.0.0.1" and answer["scheme"] == "http"


def test_a_chain_yields_the_first_untrusted_hop_from_the_right():
    chain = {"X-Forwarded-For": "198.51.100.1, 6.6.6.6, 10.1.2.3"}
    with run_server("edge_app:app", "--forwarded-allow-ips", "127.0.0.1, 10.0.0.0/8") as server:
        assert ask(server, headers=chain)["client"] == ["6.6.6.6", 0]  # forged 198.51.100.1 never reached
    with run_server("edge_app:app", "--forwarded-allow-ips", "*") as server:
        assert ask(server, headers=chain)["client"] == ["198.51.100.1", 0]


def test_forwarded_allow_ips_from_the_environment():
    with run_server("edge_app:app", env={"CATZILLA_FORWARDED_ALLOW_IPS": "192.0.2.1"}) as server:
        assert ask(server, headers=FORGED)["client"][0] == "127.0.0.1"


# -- root_path ---------------------------------------------------------------------------------

def test_root_path_in_url_and_scope_and_stripped_when_still_there():
    with run_server("edge_app:app", "--root-path", "/api") as server:
        stripped = ask(server)  # the proxy took /api off
        carried = ask(server, "/api/where")  # it did not
        with server.connect() as sock:
            sock.sendall(b"GET /apiary/where HTTP/1.1\r\nHost: a\r\n\r\n")
            assert read_response(sock)[0] == 404  # only a whole segment is the root path
    for answer in (stripped, carried):
        assert answer["url"] == "http://example.org/api/where"
        assert answer["path"] == "/where"
        assert answer["root_path"] == "/api" and answer["scope_path"] == "/api/where"


def test_root_path_reaches_the_openapi_servers_and_the_docs_pages():
    with run_server("edge_app:app", "--root-path", "/api") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/openapi.json").json()["servers"] == [{"url": "/api"}]
            assert '"url": "/api/openapi.json"' in client.get("/docs").text
            assert 'spec-url="/api/openapi.json"' in client.get("/api/redoc").text


def test_the_apps_root_path_wins_over_the_flag():
    with run_server("edge_root_app:app", "--root-path", "/other") as server:
        answer = ask(server, "/app/where")
    assert answer["url"] == "http://example.org/app/where" and answer["root_path"] == "/app"


def test_a_bad_root_path_is_refused_with_its_name():
    result = subprocess.run([sys.executable, "-m", "catzilla", "run", "edge_app:app", "--root-path", "api/"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "root-path" in result.stderr


# -- TLS ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost; the key also encrypted."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "catzilla test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    paths = {"cert": directory / "cert.pem", "key": directory / "key.pem", "locked": directory / "locked.pem"}
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["locked"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.BestAvailableEncryption(b"s3cret")))
    return {k: str(v) for k, v in paths.items()}


def client_context(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate["cert"])


def test_https_with_a_verified_self_signed_certificate(certificate):
    with run_server("edge_app:app", "--ssl-keyfile", certificate["key"], "--ssl-certfile", certificate["cert"]) as server:
        base = f"https://{server.host}:{server.port}"
        with httpx.Client(verify=client_context(certificate)) as client:
            answers = [client.get(base + "/where").json() for _ in range(3)]  # one kept-alive connection
            item = client.get(base + "/items/5").json()
        with pytest.raises(httpx.ConnectError):  # not trusted without our certificate
            httpx.get(base + "/where")
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP to a TLS port gets nothing
            httpx.get(f"http://{server.host}:{server.port}/where")
    assert all(a["scheme"] == "https" and a["url"] == f"{base}/where" for a in answers)
    assert item == {"item_id": 5, "url": f"{base}/items/5"}


def test_client_certificates_with_ssl_ca_certs(certificate):
    """--ssl-ca-certs with --ssl-cert-reqs 2 (required): a client must present a certificate
    that CA signed (ours signs itself, so it is its own CA)."""
    with run_server("edge_app:app", "--ssl-keyfile", certificate["key"], "--ssl-certfile", certificate["cert"],
                    "--ssl-ca-certs", certificate["cert"], "--ssl-cert-reqs", "2") as server:
        base = f"https://{server.host}:{server.port}"
        with_certificate = client_context(certificate)
        with_certificate.load_cert_chain(certificate["cert"], certificate["key"])
        with httpx.Client(verify=with_certificate) as client:
            assert client.get(base + "/where").json()["scheme"] == "https"
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            with httpx.Client(verify=client_context(certificate)) as client:  # none presented
                client.get(base + "/where")


def test_wss_and_an_encrypted_key(certificate):
    with run_server("edge_app:app", "--ssl-keyfile", certificate["locked"], "--ssl-certfile", certificate["cert"],
                    "--ssl-keyfile-password", "s3cret") as server:
        async def go():
            async with websockets.connect(f"wss://{server.host}:{server.port}/ws/json",
                                          ssl=client_context(certificate)) as ws:
                await ws.send('{"x": 1}')
                return json.loads(await ws.recv())
        answer = asyncio.run(go())
    assert answer["got"] == {"x": 1} and answer["url"].startswith("wss://")


def test_a_wrong_key_password_stops_the_start_clearly(certificate):
    result = subprocess.run([sys.executable, "-m", "catzilla", "run", "edge_app:app", "--port", "0",
                             "--ssl-keyfile", certificate["locked"], "--ssl-certfile", certificate["cert"],
                             "--ssl-keyfile-password", "wrong"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 3
    assert "cannot set up TLS" in result.stderr


def test_a_tls_handshake_that_never_comes_is_dropped(certificate):
    with run_server("edge_app:app", "--ssl-keyfile", certificate["key"], "--ssl-certfile", certificate["cert"],
                    "--header-timeout", "1") as server:
        with server.connect(timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(1) == b""  # no ClientHello: closed
            assert time.monotonic() - started < 5


def test_a_unix_socket_peer_is_trusted(tmp_path):
    path = str(tmp_path / "edge.sock")
    with run_server("edge_app:app", "--uds", path, "--forwarded-allow-ips", "10.9.9.9"):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            answer = client.get("http://proxy/where", headers=FORGED).json()
    assert answer["client"] == ["203.0.113.7", 0] and answer["scheme"] == "https"
