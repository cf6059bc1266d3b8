"""The guarded ``httpx2`` transport both model integrations build on (openai 3.x, anthropic 2.x).

`Httpx2Transport` is the transport core (`guardrails.integrations._transport_core`) on httpx2:
a subclass says how its API is read (``api``, an `Api`) and which exceptions its SDK passes
through (``blocked``, `TransportCore.sdk_error`); every option and behaviour of the httpx
`guardrails.integrations.openai.GuardedTransport` is the same here, the same code.
"""

from __future__ import annotations

import httpx2

from ._transport_core import Call, TransportCore, wire_of

__all__ = ["Call", "Httpx2Transport"]


class Httpx2Transport(
    TransportCore[httpx2.Request, httpx2.Response], httpx2.BaseTransport, httpx2.AsyncBaseTransport
):
    """The guarded transport core as an httpx2 transport, sync and async (see the subclasses' docs)."""

    wire = wire_of(httpx2)
