from django.apps import AppConfig
from django.conf import settings
from django.db.models import Q


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = "Cases"

    def ready(self) -> None:
        # Django's one hook for wiring an app once every model is loaded: these modules import models, so they
        # cannot be imported at the top of apps.py (which Django loads before the models).
        from audit.selectors import (
            CaseReferences,
            audit_case_readers_register,
            audit_case_references_register,
            audit_redactor_register,
            audit_scope_register,
        )
        from cases import (
            signals,  # noqa: F401  (keeps guardian permissions in step with teams)
            tasks,  # noqa: F401  (registers the Celery tasks services queue by name)
        )
        from cases.access import case_ids_supervised_by, cases_visible_to
        from cases.audit_references import case_ids_with_reference, case_references_of
        from cases.timeline import audit_events_withhold_pending_reviews
        from rfr.limits import body_limit_register

        # A supervisor reads the audit events on the cases of the teams they supervise.
        audit_scope_register("team-cases", lambda user: Q(case_id__in=case_ids_supervised_by(user=user)))
        # Case content in audit events is shown only to people on the case (need-to-know), and a first
        # assessment awaiting its second review only to its author (independence), wherever events are shown.
        audit_case_readers_register(
            "case-viewers", lambda user: cases_visible_to(user=user).values_list("pk", flat=True)
        )
        # Footage is larger than a probe image: its two upload routes take one video of RFR_VIDEO_MAX_BYTES.
        body_limit_register(r"/cases/\d+/videos/upload/", lambda: int(settings.RFR_VIDEO_MAX_BYTES))
        body_limit_register(r"/api/cases/\d+/videos/", lambda: int(settings.RFR_VIDEO_MAX_BYTES))
        audit_redactor_register(
            "pending-reviews",
            lambda events, viewer: audit_events_withhold_pending_reviews(events=events, viewer=viewer),  # type: ignore[arg-type]
        )
        # /audit/ filters and labels events by case reference, for the cases the reader may read.
        audit_case_references_register(
            "case-references", CaseReferences(find=case_ids_with_reference, name=case_references_of)
        )
