"""The Django app behind ``DjangoStore``: add ``"receiver_kit.django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class ReceiverKitConfig(AppConfig):  # type: ignore[misc]  # Django ships no type information
    """App label ``receiver_kit``; its one model is the idempotency table."""

    name = "receiver_kit.django"
    label = "receiver_kit"
    verbose_name = "Trakkr receiver kit"
