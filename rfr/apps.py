from django.apps import AppConfig


class RfrConfig(AppConfig):
    """The project kernel as an app, so that its deployment checks (rfr/checks.py) are registered."""

    name = "rfr"
    verbose_name = "rfr"

    def ready(self) -> None:
        from rfr import checks  # noqa: F401  (registers the checks)
