"""Which requests a middleware guards: `Route`, path normalisation and matching. No I/O.

API (shared by the ASGI and WSGI middlewares):

- ``Route(path, methods=("POST",), extract=None, fail_open=None, scan_response=False, guard=None)``:
  the settings of one guarded route. ``path`` is a template in Starlette syntax (``/chat/{id}``,
  ``/files/{rest:path}``, converters ``str``, ``path``, ``int``, ``float``, ``uuid``).
- ``normalize_path(path) -> str``: the path as a router could end up seeing it: percent-decoded,
  ``\\`` read as ``/``, ``//`` collapsed, ``.`` and ``..`` resolved, trailing slash dropped.
- ``Router(routes)``: ``router.match(method, path) -> Route | None`` on the normalised path;
  ``Router(None)`` guards every POST, PUT and PATCH (`DEFAULT_ROUTE`).

Matching is deliberately a superset of what any common router accepts: an attacker must not reach
a guarded endpoint through a spelling of its path the middleware does not recognise. Hence paths are
compared case-insensitively and without trailing slashes (Starlette redirects ``/x/`` to ``/x``;
other routers ignore case), and HEAD matches a route that lists GET (routers serve HEAD with the GET
endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._policy import FailOpen, validate_fail_open

if TYPE_CHECKING:
    from ._body import BodyExtractor
    from ._guard import Guard

__all__ = ["DEFAULT_ROUTE", "Route", "Router", "normalize_path"]

_CONVERTERS = {
    "str": "[^/]+",
    "path": ".*",
    "int": "[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
}
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")
_SLASHES = re.compile(r"/{2,}")
# Paths with none of these are already normal (the common case): no need to rebuild them.
_ABNORMAL = re.compile(r"%|\\|//|/\.|/$|^[^/]")
# Enough rounds to undo double and triple encoding; a path that still changes after that is odd
# enough that matching the partly decoded form (a superset again) is fine.
_DECODE_ROUNDS = 3


def normalize_path(path: str) -> str:
    """The canonical form of a request path, used for matching only (the app sees the original).

    Args:
        path: the request path (decoded or not; decoding again is harmless for matching).

    Returns:
        An absolute path with no empty, ``.`` or ``..`` segments and no trailing slash (``/`` for
        the root).
    """
    if len(path) > 1 and _ABNORMAL.search(path) is None:
        return path
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    path = path.replace("\\", "/")
    segments: list[str] = []
    for segment in _SLASHES.sub("/", path).split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def _compile(template: str) -> re.Pattern[str]:
    if not template.startswith("/"):
        raise ValueError(f"a route path must start with '/': {template!r}")
    template = _SLASHES.sub("/", template)
    if len(template) > 1:
        template = template.rstrip("/")
    pattern = ""
    end = 0
    for param in _PARAM.finditer(template):
        converter = param.group(2) or "str"
        if converter not in _CONVERTERS:
            raise ValueError(f"unknown path converter {converter!r} in route {template!r}")
        literal = template[end : param.start()]
        if converter == "path" and literal.endswith("/"):
            # "/files/{rest:path}" also covers "/files" (the normalised form of "/files/").
            pattern += re.escape(literal[:-1]) + "(?:/.*)?"
        else:
            pattern += re.escape(literal) + f"(?:{_CONVERTERS[converter]})"
        end = param.end()
    pattern += re.escape(template[end:])
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


class Route:
    """One guarded route of a middleware.

    Args:
        path: a path template in Starlette syntax: ``/v1/chat/completions``, ``/chat/{id}``,
            ``/files/{rest:path}``. Matched on the normalised request path, case-insensitively.
        methods: the HTTP methods guarded (HEAD is implied by GET).
        extract: the body extractor: called with an `HTTPBody`, returns the `Content` (or a
            string) to scan, or None when there is nothing to scan. None: `default_body`.
        fail_open: what a guard failure does on this route: False (fail closed, 503), True (the
            request goes on, unscanned, on transient errors) or ``"always"`` (on every guard error,
            configuration errors included). None: the middleware's ``fail_open``.
        scan_response: also check the route's JSON and server-sent-event responses.
        guard: a guard for this route instead of the middleware's.
    """

    __slots__ = ("_pattern", "extract", "fail_open", "guard", "methods", "path", "scan_response")

    def __init__(
        self,
        path: str,
        methods: Iterable[str] = ("POST",),
        *,
        extract: BodyExtractor | None = None,
        fail_open: FailOpen | None = None,
        scan_response: bool = False,
        guard: Guard | None = None,
    ) -> None:
        if isinstance(methods, str):
            raise TypeError("methods must be a sequence of method names, e.g. ('POST',), not a string")
        upper = tuple(dict.fromkeys(method.upper() for method in methods))
        if not upper:
            raise ValueError("a route needs at least one method")
        if "GET" in upper and "HEAD" not in upper:
            upper += ("HEAD",)
        if extract is not None and not callable(extract):
            raise TypeError("extract must be a callable taking an HTTPBody")
        self.path = path
        self.methods: tuple[str, ...] = upper
        self.extract = extract
        self.fail_open: FailOpen | None = None if fail_open is None else validate_fail_open(fail_open)
        self.scan_response = bool(scan_response)
        self.guard = guard
        self._pattern = _compile(path)

    def matches(self, method: str, normalized_path: str) -> bool:
        """Whether a request with this method and (already normalised) path is guarded by this route."""
        return method.upper() in self.methods and self._pattern.fullmatch(normalized_path) is not None

    def __repr__(self) -> str:
        options = [repr(self.path), f"methods={self.methods!r}"]
        if self.extract is not None:
            options.append(f"extract={getattr(self.extract, '__qualname__', self.extract)!s}")
        if self.fail_open is not None:
            options.append(f"fail_open={self.fail_open!r}")
        if self.scan_response:
            options.append("scan_response=True")
        if self.guard is not None:
            options.append(f"guard={self.guard!r}")
        return f"Route({', '.join(options)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Route):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.path, self.methods, self.scan_response))

    def _key(self) -> tuple[Any, ...]:
        return (self.path, self.methods, self.extract, self.fail_open, self.scan_response, self.guard)


#: What a middleware with no ``routes`` guards: every POST, PUT and PATCH, default extractor.
DEFAULT_ROUTE = Route("/{path:path}", methods=("POST", "PUT", "PATCH"))


class Router:
    """Finds the `Route` guarding a request; the first matching route wins.

    Args:
        routes: the guarded routes; None guards every POST, PUT and PATCH with `DEFAULT_ROUTE`.
    """

    __slots__ = ("_methods", "routes")

    def __init__(self, routes: Sequence[Route] | None = None) -> None:
        if routes is None:
            routes = (DEFAULT_ROUTE,)
        for route in routes:
            if not isinstance(route, Route):
                raise TypeError(f"routes must be Route objects, not {type(route).__name__}")
        self.routes: tuple[Route, ...] = tuple(routes)
        # Most requests of an app are unguarded GETs: answer those without touching the path.
        self._methods = frozenset(method for route in self.routes for method in route.methods)

    def match(self, method: str, path: str) -> Route | None:
        """The route guarding ``method path`` (path as received: it is normalised here), or None."""
        method = method.upper()
        if method not in self._methods:
            return None
        normalized = normalize_path(path)
        for route in self.routes:
            if route.matches(method, normalized):
                return route
        return None

    def __repr__(self) -> str:
        return f"Router({list(self.routes)!r})"
