"""ext/fields.c against the Python it stands for: `view[name] = value` (HeaderFields, in C
for str) is response_headers.set_item, and `response.headers` is the view of raw_headers."""
from __future__ import annotations

import copy
import pickle
import typing

import pytest

from catzilla import JSONResponse
from catzilla.response_headers import MutableHeaders, set_item

STARTS: list[list[typing.Any]] = [
    [],
    [(b"x-a", b"1")],
    [(b"X-A", b"1"), (b"x-b", b"2"), (b"x-a", b"3"), (b"X-a", b"4")],
    [(b"vary", b"Origin"), (b"x-\xc9", b"1")],
    [("x-a", "str pair")],  # str pairs put straight into raw_headers
    [[b"x-a", b"1"]],  # not a tuple: the Python's way
]
EDITS = [("x-a", "9"), ("X-A", "9"), ("x-b", ""), ("x-c", "new"), (b"x-a", "bytes key"), ("x-a", b"bytes value"),
         ("x-\xc9", "latin-1 name"), ("x-A1", "1")]


@pytest.mark.parametrize("start", range(len(STARTS)))
@pytest.mark.parametrize("edit", EDITS)
def test_setting_a_field_is_set_item(start: int, edit: tuple[typing.Any, typing.Any]) -> None:
    native = MutableHeaders(raw=copy.deepcopy(STARTS[start]))
    reference = MutableHeaders(raw=copy.deepcopy(STARTS[start]))
    native[edit[0]] = edit[1]
    set_item(reference, *edit)
    assert native.raw == reference.raw


def test_what_cannot_be_latin_1_is_refused_both_ways() -> None:
    for key, value in (("x-a", "\u20ac"), ("\u20ac", "1")):
        with pytest.raises(UnicodeEncodeError):
            MutableHeaders()[key] = value
        with pytest.raises(UnicodeEncodeError):
            set_item(MutableHeaders(), key, value)


def test_the_view_edits_the_response_s_own_list() -> None:
    response = JSONResponse({"a": 1})
    raw = response.raw_headers
    headers = response.headers
    assert isinstance(headers, MutableHeaders) and isinstance(headers, typing.MutableMapping)
    headers["X-Layered"] = "1"
    assert raw == [(b"X-Layered", b"1")] and response.raw_headers is raw
    del response.headers["x-layered"]
    assert raw == []
    with pytest.raises(KeyError):
        del response.headers["x-layered"]
    response.headers = {"x-new": "2"}
    assert response.raw_headers == [(b"x-new", b"2")]


def test_a_view_copies_and_pickles_as_before() -> None:
    headers = MutableHeaders({"a": "b"})
    assert copy.copy(headers).raw is headers.raw
    assert copy.deepcopy(headers) == headers and copy.deepcopy(headers).raw is not headers.raw
    assert pickle.loads(pickle.dumps(headers)).raw == [(b"a", b"b")]
