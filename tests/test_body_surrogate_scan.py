"""The middlewares' lone-surrogate scan: skipped only where no reading of the request can hold one.

A JSON body of ASCII bytes (no NUL, so read as UTF-8) holds a character beyond ASCII only through a
``\\u`` escape: without one, its default reading needs no scan, even with other escapes (``\\n``,
``\\"``: the usual SDK body). With one, or in UTF-16/32, the scan runs and a lone surrogate is a 400.
"""

from __future__ import annotations

import pytest

from guardrails._body import HTTPBody
from guardrails._http import _ascii_readings
from guardrails._models import Action, Content, Verdict
from tests.helpers import guarded_status


class AllowingGuard:
    """A `Guard` (the protocol, not an InProcessGuard) that allows everything it is asked about."""

    name = "allowing"

    def __init__(self) -> None:
        self.asked: list[Content] = []

    def check(self, content: Content | str) -> Verdict:
        raise AssertionError("the ASGI middleware asks with acheck")

    async def acheck(self, content: Content | str) -> Verdict:
        assert isinstance(content, Content)
        self.asked.append(content)
        return Verdict(action=Action.ALLOW, guard=self.name)

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def status_of(body: bytes, content_type: bytes = b"application/json") -> int:
    return await guarded_status(AllowingGuard(), body, content_type=content_type)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(
            b'{"messages": [{"role": "user", "content": "a\\nb \\"c\\""}]}', 200, id="other-escapes"
        ),
        pytest.param(b'{"messages": [{"role": "user", "content": "a\\n\\ud800"}]}', 400, id="u-escape"),
        pytest.param(b'{"prompt": "\\\\ud800"}', 200, id="escaped-backslash-then-u"),
        pytest.param('{"prompt": "\\ud800"}'.encode("utf-16"), 400, id="utf-16-with-bom"),
        pytest.param('{"prompt": "\\ud800"}'.encode("utf-16-le"), 400, id="utf-16-le"),
        pytest.param('{"prompt": "\\udfff"}'.encode("utf-32-be"), 400, id="utf-32-be"),
        pytest.param('{"prompt": "hi"}'.encode("utf-16-le"), 200, id="utf-16-le-clean"),
    ],
)
async def test_a_lone_surrogate_is_refused_however_the_body_escapes_or_encodes_it(
    body: bytes, status: int
) -> None:
    """Skipping the scan for bodies without ``\\u`` refuses exactly what the scan refused before."""
    assert await status_of(body) == status


@pytest.mark.parametrize(
    ("body", "skipped"),
    [
        pytest.param(b'{"messages": [{"role": "user", "content": "hi"}]}', True, id="plain"),
        pytest.param(b'{"messages": [{"role": "user", "content": "a\\nb\\t\\"c\\""}]}', True, id="escapes"),
        pytest.param(b'{"prompt": "\\u0041"}', False, id="u-escape"),
        pytest.param('{"prompt": "hi"}'.encode("utf-16-le"), False, id="utf-16"),
        pytest.param('{"prompt": "\u00e9"}'.encode(), False, id="not-ascii"),
    ],
)
def test_the_scan_is_skipped_only_for_ascii_utf8_json_without_a_u_escape(body: bytes, skipped: bool) -> None:
    """What lets the common SDK body (newlines escaped) skip the scan, and nothing more."""
    request = HTTPBody("POST", "/chat", {"content-type": "application/json"}, body)
    assert _ascii_readings(request) is skipped
