from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Galleries and search"

    def ready(self) -> None:
        # Django's one hook for wiring an app once every model is loaded (tasks import models).
        from search import tasks  # noqa: F401  (registers the Celery tasks services queue by name)
