"""Route templates, path normalisation and matching."""

from __future__ import annotations

import pytest

from guardrails._routing import DEFAULT_ROUTE, Route, Router, normalize_path


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
    """Without routes, every POST, PUT and PATCH is guarded and GET is not."""
    router = Router(None)
    assert [router.match(method, "/any/path") for method in ("POST", "PUT", "PATCH")] == [DEFAULT_ROUTE] * 3
    assert router.match("GET", "/any/path") is None


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
