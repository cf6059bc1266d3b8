"""Integrations with the clients and frameworks applications already use.

- `guardrails.integrations.openai`: an httpx transport for the official ``openai`` client that
  checks every chat-completions and Responses API call, streams included.

Each integration is imported on its own, so this package imports nothing.
"""
