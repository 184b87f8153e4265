from django.apps import AppConfig
from django.conf import settings


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Galleries and search"

    def ready(self) -> None:
        # Django's one hook for wiring an app once every model is loaded (tasks import models).
        from rfr.engine import active_pack_choice_register
        from rfr.limits import body_limit_register
        from search import tasks  # noqa: F401  (registers the Celery tasks services queue by name)
        from search.packs import active_pack_choice_name

        # The administrator's choice of pack (search.packs) overrides RFR_MODEL_PACK for rfr.engine.
        active_pack_choice_register(active_pack_choice_name)
        # A bulk enrolment zip may be far larger than one probe image (rfr.wsgi caps every other body).
        body_limit_register(r"/manage/galleries/\d+/enrol/zip/", lambda: int(settings.RFR_ENROLMENT_ZIP_MAX_BYTES))
