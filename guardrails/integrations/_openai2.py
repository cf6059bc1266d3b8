"""The OpenAI transport for ``httpx2`` clients (openai 3.x): see `guardrails.integrations.openai`."""

from __future__ import annotations

from ._httpx2 import Httpx2Transport
from .openai import OPENAI_API, OpenAIBlocked

__all__ = ["GuardedHttpx2Transport"]


class GuardedHttpx2Transport(Httpx2Transport):
    """An httpx2 transport, sync and async, that checks OpenAI API calls with a guard.

    For openai 3.x, whose clients are ``httpx2`` clients::

        client = openai.OpenAI(http_client=httpx2.Client(transport=GuardedHttpx2Transport(guard)))
        aclient = openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=GuardedHttpx2Transport(guard)))

    The httpx `GuardedTransport` on httpx2: the same code (`guardrails.integrations._transport_core`),
    so the same checks (requests, answers, streams, the turn's tool results and an answer's tool
    calls as `ToolEvent` s), the same arguments (``roles``, ``last_turn``, ``incremental``,
    ``block``, ``mask`` included; ``transport``: an httpx2 transport) and the same `OpenAIBlocked`.
    """

    api = OPENAI_API
    blocked = OpenAIBlocked
