"""The WSGI application: Django's, wrapped by the guardrails WSGI middleware.

Serve it with any WSGI server: ``gunicorn examples.django_app.wsgi``, ``manage.py runserver``.
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from guardrails import LocalGuard, Route
from guardrails.wsgi import GuardMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

application = GuardMiddleware(
    get_wsgi_application(),
    guard=LocalGuard(),  # no network; guard_from_env() picks a vendor guard from the environment
    routes=[Route("/chat")],
)
