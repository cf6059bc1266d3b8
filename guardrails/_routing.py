"""Which requests a middleware guards: `Route`, path normalisation and matching. No I/O.

API (shared by the ASGI and WSGI middlewares):

- ``Route(path, methods=("POST",), extract=None, fail_open=None, scan_response=False, guard=None,
  block=None, mask=False)``:
  the settings of one guarded route. ``path`` is a template in Starlette syntax (``/chat/{id}``,
  ``/files/{rest:path}``, converters ``str``, ``path``, ``int``, ``float``, ``uuid``, ``slug``), each
  matching a superset of what the same converter matches in Starlette, werkzeug and Django.
- ``normalize_path(path) -> str``: the path as a router could end up seeing it: percent-decoded,
  ``\\`` read as ``/``, ``//`` collapsed, ``.`` and ``..`` resolved, trailing slash dropped.
- ``Router(routes)``: ``router.match(method, path) -> Route | None`` on the normalised path;
  ``router.resolve(method, path, has_body=...) -> (Route, path_params) | None`` also gives the
  matched template's parameters; ``Router(None)`` guards every POST, PUT, PATCH and DELETE, and
  (through ``resolve``) any request that declares a body (`DEFAULT_ROUTE`).
- ``Route.path_params(normalized_path) -> dict[str, str]``: the template's parameters.
- ``path_forms(path)``: the forms of a path matched (normalised, and dot segments kept: Starlette
  and werkzeug route ``/chat/.`` to ``/chat/{id}``).

Matching is deliberately a superset of what any common router accepts: an attacker must not reach
a guarded endpoint through a spelling of its path the middleware does not recognise. Hence paths are
compared case-insensitively and without trailing slashes (Starlette redirects ``/x/`` to ``/x``;
other routers ignore case), and HEAD matches a route that lists GET (routers serve HEAD with the GET
endpoint).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from ._judge import block_categories
from ._policy import FailOpen, validate_fail_open
from ._shapes import MessageScope
from ._stream_options import StreamOptions

if TYPE_CHECKING:
    from ._body import BodyExtractor
    from ._guard import Guard

__all__ = ["DEFAULT_ROUTE", "Route", "Router", "normalize_path", "path_forms"]

# Each converter matches the union of what the frameworks' converters of that name match, and what
# the conversion behind them accepts: Starlette ([0-9]+), werkzeug (\d+, signed, so Unicode digits
# such as "١٢" that int() reads), Django ([0-9]+), Python's int()/float()/UUID() (signs, "_",
# surrounding spaces, exponents, "inf", braces, no hyphens). Matching more only guards more.
_CONVERTERS = {
    "str": "[^/]+",
    "path": ".*",
    "int": r"\s*[+-]?\d(?:_?\d)*\s*",
    "float": r"\s*[+-]?(?:(?:\d(?:_?\d)*)?\.?\d(?:_?\d)*\.?(?:e[+-]?\d(?:_?\d)*)?|inf(?:inity)?|nan)\s*",
    "uuid": r"\s*(?:urn:uuid:)?\{?(?:[0-9a-f]-?){31}[0-9a-f]\}?\s*",
    "slug": r"[-\w]+",
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


def path_forms(path: str) -> tuple[str, ...]:
    """Every form of a request path a router could match: normalised, and with dot segments kept.

    Starlette and werkzeug route the path as received: ``/chat/.`` reaches ``/chat/{id}`` with
    ``id="."`` there, while the normalised form (``/chat``) does not. A route guards a request when
    any form matches.
    """
    normalized = normalize_path(path)
    if normalized == path:
        return (path,)
    forms = [normalized]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    kept = _SLASHES.sub("/", "/" + path.replace("\\", "/"))
    forms.append(kept.rstrip("/") or "/")
    forms.append(kept)
    return tuple(dict.fromkeys(forms))


def _compile(template: str) -> re.Pattern[str]:
    if not template.startswith("/"):
        raise ValueError(f"a route path must start with '/': {template!r}")
    template = _SLASHES.sub("/", template)
    if len(template) > 1:
        template = template.rstrip("/")
    pattern = ""
    end = 0
    names: set[str] = set()
    for param in _PARAM.finditer(template):
        name, converter = param.group(1), param.group(2) or "str"
        if name in names:
            raise ValueError(f"path parameter {name!r} appears twice in route {template!r}")
        names.add(name)
        if converter not in _CONVERTERS:
            raise ValueError(f"unknown path converter {converter!r} in route {template!r}")
        literal = template[end : param.start()]
        if converter == "path" and literal.endswith("/"):
            # "/files/{rest:path}" also covers "/files" (the normalised form of "/files/").
            pattern += re.escape(literal[:-1]) + f"(?:/(?P<{name}>.*))?"
        else:
            pattern += re.escape(literal) + f"(?P<{name}>{_CONVERTERS[converter]})"
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
        roles: the roles of the chat messages the default extractor scans (None: every role; see
            `MessageScope`); every other string of the request is still scanned. Not with
            ``extract=`` (give the extractor its own options: ``extractors.body(roles=...)``).
        last_turn: the default extractor scans only the messages after the last assistant one.
        incremental: a chat message this guard already allowed, exactly, is not scanned again
            (see `guardrails._incremental`); every other message is.
        block: the categories (`guardrails._models.CATEGORIES`) that block on this route; a
            Block whose categories are all outside it is recorded as ``monitored`` and the
            request goes on. None (default): every Block blocks. A Block with no category
            always blocks.
        mask: when a Block's only category is ``sensitive_data`` and the guard masked it
            (`Verdict.masked`), the request goes on with the masked strings in place (a JSON
            body re-encoded, ``content-length`` updated), and so does a JSON response of a
            ``scan_response`` route. A body that cannot be rewritten so that it reads exactly as
            the masked content (not JSON, compressed, sensitive data in the query) is blocked.
        stream_window: the most characters of an event stream's text per check on this route
            (a ``scan_response`` route). None: the middleware's.
        stream_first_window: characters of an event stream's first check on this route. None:
            the middleware's.
        stream_overlap: characters of a window's end checked again at the start of the next.
            None: the middleware's.
        stream_idle_flush: seconds of quiet after which held text is checked and sent; False:
            never on this route. None: the middleware's.

    A route's stream options override the middleware's one by one (`stream_options`): a chat
    route can release its first tokens sooner than a bulk export streamed on another.
    """

    __slots__ = (
        "_pattern",
        "_streams",
        "block",
        "extract",
        "fail_open",
        "guard",
        "incremental",
        "mask",
        "methods",
        "path",
        "scan_response",
        "scope",
        "stream_first_window",
        "stream_idle_flush",
        "stream_overlap",
        "stream_window",
    )

    def __init__(
        self,
        path: str,
        methods: Iterable[str] = ("POST",),
        *,
        extract: BodyExtractor | None = None,
        fail_open: FailOpen | None = None,
        scan_response: bool = False,
        guard: Guard | None = None,
        roles: Iterable[str] | None = None,
        last_turn: bool = False,
        incremental: bool = False,
        block: Collection[str] | None = None,
        mask: bool = False,
        stream_window: int | None = None,
        stream_first_window: int | None = None,
        stream_overlap: int | None = None,
        stream_idle_flush: float | Literal[False] | None = None,
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
        self.scope = MessageScope(roles, last_turn=last_turn)
        if extract is not None and self.scope.narrows:
            raise ValueError(
                "roles= and last_turn= configure the default extractor: with extract=, give them to "
                "the extractor (extractors.body(roles=..., last_turn=...))"
            )
        self.incremental = bool(incremental)
        self.block = block_categories(block)
        self.mask = bool(mask)
        self.stream_window = stream_window
        self.stream_first_window = stream_first_window
        self.stream_overlap = stream_overlap
        self.stream_idle_flush = stream_idle_flush
        # Each option checked now (with the defaults for the others): a bad one fails at startup.
        self._streams: tuple[StreamOptions, StreamOptions] | None = None
        self.stream_options(StreamOptions())
        self._pattern = _compile(path)

    def stream_options(self, default: StreamOptions) -> StreamOptions:
        """The stream options of this route: ``default`` (the middleware's) where it says None.

        Raises:
            ValueError: an option of this route is out of range.
        """
        cached = self._streams
        if cached is not None and cached[0] is default:
            return cached[1]
        idle = self.stream_idle_flush
        if idle is False:
            idle_flush: float | None = None
        elif idle is None:
            idle_flush = default.idle_flush
        else:
            idle_flush = idle
        options = StreamOptions(
            default.window if self.stream_window is None else self.stream_window,
            default.first_window if self.stream_first_window is None else self.stream_first_window,
            default.overlap if self.stream_overlap is None else self.stream_overlap,
            idle_flush,
        )
        if options == default:
            options = default
        self._streams = (default, options)
        return options

    def matches(self, method: str, normalized_path: str) -> bool:
        """Whether a request with this method and (already normalised) path is guarded by this route."""
        return method.upper() in self.methods and self._pattern.fullmatch(normalized_path) is not None

    def path_params(self, normalized_path: str) -> dict[str, str]:
        """The template's parameters in a (normalised) path this route matches; empty if it does not.

        A ``path`` parameter with nothing after it (``/files`` for ``/files/{rest:path}``) is ``""``.
        """
        match = self._pattern.fullmatch(normalized_path)
        if match is None:
            return {}
        return {name: value or "" for name, value in match.groupdict().items()}

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
        if self.scope.narrows:
            options.append(f"scope={self.scope!r}")
        if self.incremental:
            options.append("incremental=True")
        if self.block is not None:
            options.append(f"block={sorted(self.block)!r}")
        if self.mask:
            options.append("mask=True")
        for name in ("stream_window", "stream_first_window", "stream_overlap", "stream_idle_flush"):
            value = getattr(self, name)
            if value is not None:
                options.append(f"{name}={value!r}")
        return f"Route({', '.join(options)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Route):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.path, self.methods, self.scan_response))

    def _key(self) -> tuple[Any, ...]:
        return (
            self.path,
            self.methods,
            self.extract,
            self.fail_open,
            self.scan_response,
            self.guard,
            self.scope,
            self.incremental,
            self.block,
            self.mask,
            self.stream_window,
            self.stream_first_window,
            self.stream_overlap,
            self.stream_idle_flush,
        )


#: What a middleware with no ``routes`` guards: every POST, PUT, PATCH and DELETE (the methods that
#: usually carry a body), default extractor; `Router.resolve` adds any request that declares a body.
DEFAULT_ROUTE = Route("/{path:path}", methods=("POST", "PUT", "PATCH", "DELETE"))
Route.__module__ = "guardrails"  # reprs and tracebacks show the public path


class Router:
    """Finds the `Route` guarding a request; the first matching route wins.

    Args:
        routes: the guarded routes; None guards every POST, PUT, PATCH and DELETE, and every
            request that declares a body (see `resolve`), with `DEFAULT_ROUTE`.
    """

    __slots__ = ("_default", "_methods", "routes")

    def __init__(self, routes: Sequence[Route] | None = None) -> None:
        self._default = routes is None
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
        forms = path_forms(path)
        for route in self.routes:
            if any(route.matches(method, form) for form in forms):
                return route
        return None

    def resolve(
        self, method: str, path: str, *, has_body: bool = False
    ) -> tuple[Route, dict[str, str]] | None:
        """The route guarding ``method path`` and its path parameters, or None.

        Args:
            method: the request method.
            path: the path as received (normalised here).
            has_body: whether the request declares a body (a non-zero Content-Length or a
                Transfer-Encoding). With no ``routes`` given, such a request is guarded whatever
                its method: frameworks read a GET's or an OPTIONS's body as readily as a POST's.
        """
        method = method.upper()
        if method not in self._methods and not (self._default and has_body):
            return None
        forms = path_forms(path)
        for route in self.routes:
            for form in forms:
                if route.matches(method, form) or (self._default and has_body):
                    return route, route.path_params(form)
        return None

    def __repr__(self) -> str:
        return f"Router({list(self.routes)!r})"
