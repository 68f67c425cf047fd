from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported once the app registry is ready (the models they use need it), as Django asks.
        from dashboard import (
            checks,  # noqa: F401  (registers deploy checks)
            upstream,
        )
        from dashboard.cloud import limits

        # Every process that calls the cloud (web, worker, commands) paces through the counters
        # they all share. Building the store touches no database; its first use does, and only
        # for a class with a rate (tests/settings.py sets none, so tests stay unpaced).
        limits.use_store(upstream.DatabaseStore())
