"""TLS on the worker's listeners: one `ssl.SSLContext` from the --ssl-* settings.

Made by each worker for its own listeners (uvloop does the TLS), and once by `serve` before
anything forks, so that a missing file or a wrong key password stops the start with a clear
message instead of failing every worker.
"""
from __future__ import annotations

import ssl
import typing

__all__ = ["server_context"]


def server_context(config: typing.Any) -> ssl.SSLContext | None:
    """The server-side context the settings ask for, or None without --ssl-certfile."""
    if not config.ssl_certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2+, sane ciphers
    context.load_cert_chain(config.ssl_certfile, config.ssl_keyfile, password=config.ssl_keyfile_password)
    context.verify_mode = ssl.VerifyMode(config.ssl_cert_reqs)
    if config.ssl_ca_certs:
        context.load_verify_locations(config.ssl_ca_certs)
    return context
