"""Integrations with the clients and frameworks applications already use.

- `guardrails.integrations.openai`: an httpx transport for the official ``openai`` client that
  checks every chat-completions and Responses API call, streams included; and
  ``GuardedHttpx2Transport``, the same for openai 3.x's ``httpx2`` clients.
- `guardrails.integrations.anthropic`: the httpx2 transport for the ``anthropic`` client (2.x).
- `guardrails.integrations.mcp`: `MCPGuardMiddleware` around an MCP server's streamable-HTTP app,
  and `GuardedClientSession` around an MCP ``ClientSession`` (``mcp`` 2.x).

Each integration is imported on its own, so this package imports nothing.
"""
