"""Route templates, path normalisation and matching."""

from __future__ import annotations

import pytest

from guardrails._routing import DEFAULT_ROUTE, Route, Router, normalize_path, path_forms


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        pytest.param("/v1/chat/completions", "/v1/chat/completions", id="plain"),
        pytest.param("//v1//chat///completions", "/v1/chat/completions", id="double-slashes"),
        pytest.param("/v1/chat/completions/", "/v1/chat/completions", id="trailing-slash"),
        pytest.param("/v1/./chat/../chat/completions", "/v1/chat/completions", id="dot-segments"),
        pytest.param("/../../v1/chat/completions", "/v1/chat/completions", id="above-root"),
        pytest.param("/v1%2Fchat%2Fcompletions", "/v1/chat/completions", id="encoded-slash"),
        pytest.param("/v1%252Fchat%252Fcompletions", "/v1/chat/completions", id="double-encoded"),
        pytest.param("/v1/%2e%2e/v1/chat/completions", "/v1/chat/completions", id="encoded-dots"),
        pytest.param("\\v1\\chat\\completions", "/v1/chat/completions", id="backslashes"),
        pytest.param("", "/", id="empty"),
        pytest.param("/", "/", id="root"),
    ],
)
def test_normalize_path(raw: str, normalized: str) -> None:
    """Every spelling of a path a router could map to the same endpoint normalises to one form."""
    assert normalize_path(raw) == normalized


def test_path_forms_keep_dot_segments_beside_the_normalised_path() -> None:
    """The normalised path first, then the path with its dot segments (no trailing slash, then as is)."""
    assert path_forms("/a/./b/") == ("/a/b", "/a/./b", "/a/./b/")
    assert path_forms("/a/b") == ("/a/b",)


@pytest.mark.parametrize(
    ("template", "path", "matched"),
    [
        pytest.param("/v1/chat/completions", "/v1/chat/completions", True, id="exact"),
        pytest.param("/v1/chat/completions", "/V1/Chat/Completions", True, id="case-insensitive"),
        pytest.param("/v1/chat/completions", "/v1/chat/completion", False, id="other-path"),
        pytest.param("/v1/chat/completions", "/v1/chat/completions/x", False, id="longer-path"),
        pytest.param("/chat/{id}", "/chat/42", True, id="str-param"),
        pytest.param("/chat/{id}", "/chat/42/more", False, id="str-param-one-segment"),
        pytest.param("/chat/{id:int}", "/chat/abc", False, id="int-param-rejects-text"),
        pytest.param("/chat/{id:int}", "/chat/7", True, id="int-param"),
        pytest.param("/chat/{id:int}", "/chat/\u0661\u0662", True, id="int-param-arabic-digits"),
        pytest.param("/chat/{id:int}", "/chat/\uff11\uff12", True, id="int-param-fullwidth-digits"),
        pytest.param("/chat/{id:int}", "/chat/-12", True, id="int-param-signed"),
        pytest.param("/chat/{id:int}", "/chat/1_000", True, id="int-param-underscores"),
        pytest.param("/chat/{x:float}", "/chat/1.5", True, id="float-param"),
        pytest.param("/chat/{x:float}", "/chat/\u0661.\u0665", True, id="float-param-arabic-digits"),
        pytest.param("/chat/{x:float}", "/chat/-1e5", True, id="float-param-exponent"),
        pytest.param("/chat/{x:float}", "/chat/abc", False, id="float-param-rejects-text"),
        pytest.param(
            "/items/{id:uuid}", "/items/1F0E3DAD-99B9-4B8A-8F5E-000000000000", True, id="uuid-upper"
        ),
        pytest.param(
            "/items/{id:uuid}", "/items/1f0e3dad99b94b8a8f5e000000000000", True, id="uuid-no-hyphens"
        ),
        pytest.param("/items/{id:uuid}", "/items/not-a-uuid", False, id="uuid-rejects-text"),
        pytest.param("/blog/{s:slug}", "/blog/h\u00e9llo-world_2", True, id="slug"),
        pytest.param("/files/{rest:path}", "/files/a/b/c", True, id="path-param"),
        pytest.param("/files/{rest:path}", "/files", True, id="path-param-empty"),
        pytest.param("/files/{rest:path}", "/filesystem", False, id="path-param-prefix-only"),
        pytest.param("/items/{id:uuid}", "/items/1f0e3dad-99b9-4b8a-8f5e-000000000000", True, id="uuid"),
        pytest.param("/api/", "/api", True, id="template-trailing-slash"),
    ],
)
def test_route_matches_template(template: str, path: str, matched: bool) -> None:
    """A template matches the normalised paths of its endpoint and nothing else."""
    assert (Router([Route(template)]).match("POST", path) is not None) is matched


@pytest.mark.parametrize("path", ["/chat/.", "/chat/..", "/chat/%2e"])
def test_dot_segments_match_as_routers_read_them(path: str) -> None:
    """Starlette and werkzeug route /chat/. to /chat/{id} (id "."): so does the guard."""
    route = Route("/chat/{id}")
    assert Router([route]).match("POST", path) is route


def test_head_matches_a_get_route() -> None:
    """HEAD is served by GET endpoints, so a GET route guards it too."""
    assert Router([Route("/search", methods=("GET",))]).match("HEAD", "/search") is not None


def test_method_not_listed_does_not_match() -> None:
    """A route guards only its methods."""
    assert Router([Route("/chat")]).match("GET", "/chat") is None


def test_methods_are_case_insensitive() -> None:
    """Methods given in lower case still match."""
    assert Router([Route("/chat", methods=("post",))]).match("POST", "/chat") is not None


def test_first_matching_route_wins() -> None:
    """Routes are tried in order."""
    first, second = Route("/chat/{id}"), Route("/chat/special")
    assert Router([first, second]).match("POST", "/chat/special") is first


def test_no_routes_guards_every_write_method() -> None:
    """Without routes, every POST, PUT, PATCH and DELETE is guarded and a GET without a body is not."""
    router = Router(None)
    methods = ("POST", "PUT", "PATCH", "DELETE")
    assert [router.match(method, "/any/path") for method in methods] == [DEFAULT_ROUTE] * 4
    assert router.match("GET", "/any/path") is None
    assert router.resolve("GET", "/any/path") is None


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "HEAD", "REPORT"])
def test_no_routes_guards_any_method_with_a_body(method: str) -> None:
    """Frameworks read a GET's body as readily as a POST's: a declared body is guarded."""
    assert Router(None).resolve(method, "/any/path", has_body=True) == (DEFAULT_ROUTE, {"path": "any/path"})


def test_explicit_routes_guard_only_their_methods_even_with_a_body() -> None:
    """A route listing POST does not start guarding GET because a GET has a body."""
    assert Router([Route("/chat")]).resolve("GET", "/chat", has_body=True) is None


def test_a_route_listing_get_guards_it() -> None:
    """GET and DELETE with a body are guarded like POST when a route says so."""
    route = Route("/search", methods=("GET", "DELETE"))
    router = Router([route])
    assert router.resolve("GET", "/search") == (route, {})
    assert router.resolve("DELETE", "/search") == (route, {})


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        pytest.param("/chat/{id}", "/chat/42", {"id": "42"}, id="str"),
        pytest.param(
            "/chat/{id:int}/{x:float}", "/chat/\u0661/2.5", {"id": "\u0661", "x": "2.5"}, id="int-float"
        ),
        pytest.param("/files/{rest:path}", "/files/a/b", {"rest": "a/b"}, id="path"),
        pytest.param("/files/{rest:path}", "/files", {"rest": ""}, id="empty-path"),
        pytest.param("/chat", "/chat", {}, id="none"),
    ],
)
def test_resolve_gives_the_path_parameters(template: str, path: str, params: dict[str, str]) -> None:
    """The matched template's parameters, read from the normalised path."""
    route = Route(template)
    assert Router([route]).resolve("POST", path) == (route, params)


def test_path_params_of_a_path_the_route_does_not_match_are_empty() -> None:
    """Route.path_params on a foreign path is {}."""
    assert Route("/chat/{id}").path_params("/other") == {}


def test_a_parameter_named_twice_is_rejected() -> None:
    """Two parameters with one name cannot both be read."""
    with pytest.raises(ValueError, match="twice"):
        Route("/chat/{id}/{id}")


def test_unknown_converter_is_rejected() -> None:
    """A typo in a converter is an error at configuration time."""
    with pytest.raises(ValueError, match="converter"):
        Route("/chat/{id:integer}")


def test_relative_template_is_rejected() -> None:
    """Templates are absolute paths."""
    with pytest.raises(ValueError, match="start with"):
        Route("chat")


def test_methods_as_a_string_is_rejected() -> None:
    """methods="POST" would mean the methods P, O, S and T."""
    with pytest.raises(TypeError, match="methods"):
        Route("/chat", methods="POST")


def test_bad_fail_open_is_rejected() -> None:
    """A typo in fail_open must not silently pick a policy."""
    with pytest.raises(ValueError, match="fail_open"):
        Route("/chat", fail_open="yes")  # type: ignore[arg-type]


def test_route_fail_open_defaults_to_the_middleware() -> None:
    """A route that does not say leaves fail_open to the middleware (None)."""
    assert Route("/chat").fail_open is None


def test_router_rejects_non_routes() -> None:
    """Plain strings are not routes."""
    with pytest.raises(TypeError, match="Route"):
        Router(["/chat"])  # type: ignore[list-item]


def test_route_repr_names_its_settings() -> None:
    """The repr shows the path and the options set."""
    assert repr(Route("/chat", fail_open=True, scan_response=True)) == (
        "Route('/chat', methods=('POST',), fail_open=True, scan_response=True)"
    )
