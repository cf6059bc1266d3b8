"""The ASGI application: Django's, wrapped by the guardrails ASGI middleware.

Serve it with any ASGI server: ``uvicorn examples.django_app.asgi:application --lifespan off``
(Django answers no lifespan messages).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from guardrails import LocalGuard, Route
from guardrails.asgi import GuardMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = GuardMiddleware(
    get_asgi_application(),
    guard=LocalGuard(),  # no network; guard_from_env() picks a vendor guard from the environment
    routes=[Route("/chat")],
)
