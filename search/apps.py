from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Galleries and search"

    def ready(self) -> None:
        # Django's one hook for wiring an app once every model is loaded (tasks import models).
        from rfr.engine import active_pack_choice_register
        from search import tasks  # noqa: F401  (registers the Celery tasks services queue by name)
        from search.packs import active_pack_choice_name

        # The administrator's choice of pack (search.packs) overrides RFR_MODEL_PACK for rfr.engine.
        active_pack_choice_register(active_pack_choice_name)
