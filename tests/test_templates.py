"""Path templates matched segment by segment (ext/templates.c's TemplateMatcher) against
their regexes (Router.match_regex): for odd paths -- empty, doubled and trailing slashes,
signs, newlines, text beyond ASCII, very many segments -- both give the same route,
parameters and Allow header, templates tried in the order they were added."""
from __future__ import annotations

import random

import pytest

from catzilla._native import TemplateMatcher
from catzilla.routing import Router, split_template

TEMPLATES = ["/items/{item_id}", "/items/{item_id:int}/parts", "/items/{a}/{b:str}", "/users/{uid:int}",
             "/users/me", "/a/{x}/b/{y:int}/c", "/{anything}", "/{first}/tail", "/files/", "//{double}",
             "/deep" + "/{p%d}" % 0 + "/x" * 20]
PIECES = ["", "items", "users", "me", "parts", "a", "b", "c", "x", "tail", "files", "deep", "5", "-5", "-", "05",
          "1.5", "+1", " ", "%2F", "é", "ü", "\n", "5\n", "\t", "-0", "٣", "a b", "9" * 30]


def router_with(templates: list[str]) -> Router:
    router = Router()
    for i, template in enumerate(templates):
        def handler(request): ...
        handler.__name__ = f"h{i}"
        router.add(template, ["GET"] if i % 3 else ["GET", "POST"], handler)
    router.resolve("GET", "/unknown/path/to/compile/them")
    return router


def answers(router: Router, method: str, path: str, regex: bool = False):
    route, params, allow = (router.match_regex if regex else router.match_template)(method, path)
    return (route.path if route is not None else None), params, allow


def test_every_kind_of_template_splits_as_its_regex_reads_it():
    assert split_template("/items/{item_id}") == ("", "items", ("item_id", "str"))
    assert split_template("/items/{n:int}/x/") == ("", "items", ("n", "int"), "x", "")
    for template in ["/files/{name}.txt", "/f/{rest:path}", "/v/{x:float}", "/café/{x}", "/a/x{b}",
                     "/" + "/a" * 64]:
        assert split_template(template) is None, template


def test_random_paths_resolve_as_the_regexes():
    router = router_with(TEMPLATES)
    assert isinstance(router.match_template, TemplateMatcher)
    rng = random.Random(13)
    for _ in range(5000):
        path = "/".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 8)))
        path = path if rng.random() < 0.2 else "/" + path
        for method in ("GET", "POST", "PUT"):
            assert answers(router, method, path) == answers(router, method, path, regex=True), (method, path)


@pytest.mark.parametrize("path", ["/items/5", "/items/5/parts", "/items/-5/parts", "/items/x/parts",
                                  "/items/5/parts\n", "/items/5\n", "/users/me", "/users/12", "/users/",
                                  "/", "", "items/5", "//", "///x", "/files/", "/files", "/deep/1" + "/x" * 20,
                                  "/deep/1" + "/x" * 80, "/é", "/a/1/b/2/c", "/a/1/b/-2/c", "/a/1/b/2/c/"])
def test_chosen_paths_resolve_as_the_regexes(path):
    router = router_with(TEMPLATES)
    for method in ("GET", "POST", "DELETE"):
        assert answers(router, method, path) == answers(router, method, path, regex=True), (method, path)


def test_a_template_only_a_regex_matches_keeps_every_template_on_the_regexes():
    router = router_with(["/items/{item_id}", "/files/{name}.txt", "/items/{a}/{b}"])
    assert not isinstance(router.match_template, TemplateMatcher)
    assert answers(router, "GET", "/files/a.txt") == ("/files/{name}.txt", {"name": "a"}, None)
    assert answers(router, "GET", "/items/1/2") == ("/items/{a}/{b}", {"a": "1", "b": "2"}, None)


def test_compiled_at_the_first_request_after_a_template_was_added():
    router = router_with(["/a/{x}"])
    assert isinstance(router.match_template, TemplateMatcher)
    router.add("/b/{y}", ["GET"], lambda request: None)
    assert not isinstance(router.match_template, TemplateMatcher)
    assert answers(router, "GET", "/b/1") == ("/b/{y}", {"y": "1"}, None)
    assert isinstance(router.match_template, TemplateMatcher)
    assert answers(router, "GET", "/a/1") == ("/a/{x}", {"x": "1"}, None)


def test_the_first_template_added_wins():
    router = router_with(["/{a}/x", "/y/{b}", "/y/x"])
    assert router.resolve("GET", "/y/x")[0].path == "/y/x"  # a path without parameters first
    assert answers(router, "GET", "/y/x") == ("/{a}/x", {"a": "y"}, None)
    assert answers(router, "GET", "/z/x") == ("/{a}/x", {"a": "z"}, None)
    router = router_with(["/y/{b}", "/{a}/x"])
    assert answers(router, "GET", "/y/x") == ("/y/{b}", {"b": "x"}, None)


def test_refuses_descriptions_it_cannot_follow():
    allowed, fallback = Router.allowed, lambda method, path: None
    for templates in [(((), {}),), ((("", "é"), {}),), ((("", ("x", "float")), {}),), (("x",),),
                      ((("", 5), {}),), (((("",) * 65), {}),)]:
        with pytest.raises((TypeError, ValueError)):
            TemplateMatcher(templates, allowed, fallback)
    matcher = TemplateMatcher(((("", ("x", "int")), {"GET": "route"}),), allowed, fallback)
    assert matcher("GET", "/5") == ("route", {"x": "5"}, None)
    assert matcher("PUT", "/5") == (None, None, "GET")
    assert matcher("GET", "/y") == (None, None, None)
    with pytest.raises(TypeError):
        matcher("GET", b"/5")
    with pytest.raises(TypeError):
        matcher("GET")


def test_the_native_resolver_answers_as_its_reference():
    """Router.resolve (ext/templates.c's Resolver: the static table, then match_template)
    against Router._resolve, its Python reference: static paths, templates, 404s, 405s."""
    from catzilla._native import Resolver

    router = router_with(TEMPLATES + ["/users/me", "/static/a", "/static/b/", "/"])
    assert isinstance(router.resolve, Resolver)
    rng = random.Random(7)
    pieces = PIECES + ["static", "a", "b/"]
    for _ in range(3000):
        path = "/" + "/".join(rng.choice(pieces) for _ in range(rng.randrange(0, 5)))
        for method in ("GET", "HEAD", "POST", "PUT"):
            assert router.resolve(method, path) == router._resolve(method, path), (method, path)
    assert router.resolve("PUT", "/static/a") == (None, None, router._resolve("PUT", "/static/a")[2])
    assert router.resolve("PUT", "/static/a")[2] in ("GET, HEAD", "GET, HEAD, POST")
    assert router.resolve("HEAD", "/users/me")[0].path == "/users/me"


def test_the_resolver_follows_the_templates_added_later():
    from catzilla._native import Resolver

    router = router_with(["/a/{x}"])
    router.add("/b/{y}", ["GET"], lambda request: None)
    assert router.resolve("GET", "/b/1")[0].path == "/b/{y}"
    assert router.resolve("GET", "/a/1")[1] == {"x": "1"}
    router.add("/c", ["GET"], lambda request: None)
    assert router.resolve("GET", "/c")[0].path == "/c"
    with pytest.raises(TypeError):
        router.resolve("GET")
    with pytest.raises(TypeError):
        router.resolve.templates = None
    with pytest.raises(TypeError):
        Resolver([], Router.allowed, print)
