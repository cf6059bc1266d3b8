from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("chat", views.chat),
    path("health", views.health),
]
