"""`Set-Cookie` field values (RFC 6265 4.1), built as Starlette's `set_cookie` builds them.

The name and value are quoted by the standard library's cookie module (a value outside the
cookie-octet set is sent as a quoted string, as Starlette's are). The attributes are checked
here: a `;`, CR, LF or other control character in a path or domain would add attributes or
split the response, so it is refused when the handler calls `set_cookie`, not sent.
"""
from __future__ import annotations

import datetime
import email.utils
import http.cookies

__all__ = ["SAMESITE_VALUES", "set_cookie_value"]

SAMESITE_VALUES = ("strict", "lax", "none")


def _check_attribute(name: str, value: str) -> str:
    value = str(value)
    if any(char == ";" or ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"cookie {name} {value!r} contains ';' or a control character")
    return value


def set_cookie_value(
    key: str,
    value: str = "",
    max_age: int | None = None,
    expires: datetime.datetime | str | int | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = "lax",
    partitioned: bool = False,
) -> str:
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    try:
        jar[key] = value  # CookieError for a name that is not a token
    except http.cookies.CookieError as exc:
        raise ValueError(f"cookie name {key!r}: {exc}") from None
    morsel = jar[key]
    if max_age is not None:
        morsel["max-age"] = int(max_age)
    if expires is not None:
        if isinstance(expires, datetime.datetime):
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=datetime.timezone.utc)
            morsel["expires"] = email.utils.format_datetime(expires.astimezone(datetime.timezone.utc), usegmt=True)
        elif isinstance(expires, int):
            morsel["expires"] = expires  # seconds from now: the cookie module writes the date
        else:
            morsel["expires"] = _check_attribute("expires", expires)
    if path is not None:
        morsel["path"] = _check_attribute("path", path)
    if domain is not None:
        morsel["domain"] = _check_attribute("domain", domain)
    if secure:
        morsel["secure"] = True
    if httponly:
        morsel["httponly"] = True
    if samesite is not None:
        if str(samesite).lower() not in SAMESITE_VALUES:
            raise ValueError("samesite must be 'strict', 'lax' or 'none'")
        morsel["samesite"] = samesite
    text = morsel.OutputString()
    if partitioned:
        text += "; Partitioned"
    return text

