"""Review: a person assesses each candidate, and a possible match is released only when a second, different
reviewer agrees. Until then every page, API response and report reads "possible match — intelligence only,
not an identification", and the first assessment is withheld from everyone but its author, so the second
review is independent. Opening a candidate, and viewing its images, is recorded. Each change commits with its
audit event.

Who ends review: an operator's "not a match" or "inconclusive" is final (only a lead goes to a second
review), but a second reviewer (a member of RFR_SECOND_REVIEWER_GROUPS: supervisor or designated reviewer)
never ends review alone. Their own first assessment, whatever its verdict, awaits a second assessment by a
different person on the case; so the two assessments of any candidate a second reviewer touches come from two
people, and the candidate's final outcome is theirs only if both agree ("disputed" otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest

import faceengine
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.features import features_clean
from cases.models import Candidate, Decision
from cases.notifications import notifications_after_decision
from cases.presenters import candidate_removal_text
from faceengine.align import align_face
from rfr.engine import image_limits
from rfr.errors import Conflict, Forbidden, InvalidInput
from rfr.limits import text_limit_check
from search.galleries import gallery_template_get
from search.models import Template

AnyUser = AbstractBaseUser | AnonymousUser

# A first assessment stands alone with these outcomes, and awaits a second, different person with these.
FIRST_OUTCOMES = {
    Decision.Verdict.POSSIBLE_MATCH: Candidate.Outcome.POSSIBLE_MATCH,
    Decision.Verdict.NOT_A_MATCH: Candidate.Outcome.NOT_A_MATCH,
    Decision.Verdict.INCONCLUSIVE: Candidate.Outcome.INCONCLUSIVE,
}
AGREED_OUTCOMES = {
    Decision.Verdict.POSSIBLE_MATCH: Candidate.Outcome.RELEASED,
    Decision.Verdict.NOT_A_MATCH: Candidate.Outcome.NOT_A_MATCH,
    Decision.Verdict.INCONCLUSIVE: Candidate.Outcome.INCONCLUSIVE,
}
AWAITING_SECOND_REVIEW = frozenset({Candidate.Outcome.POSSIBLE_MATCH, Candidate.Outcome.AWAITING_REVIEW})


def candidate_awaits_second_review(*, candidate: Candidate) -> bool:
    """Whether the candidate has one assessment and awaits a second, different person's."""
    return candidate.outcome in AWAITING_SECOND_REVIEW


def candidate_second_review_needs_reviewer(*, candidate: Candidate) -> bool:
    """Whether only a second reviewer may give the second assessment: an operator's possible match."""
    return candidate.outcome == Candidate.Outcome.POSSIBLE_MATCH


def user_is_second_reviewer(*, user: AbstractBaseUser) -> bool:
    groups = list(settings.RFR_SECOND_REVIEWER_GROUPS)
    return bool(getattr(user, "is_active", False)) and user.groups.filter(name__in=groups).exists()  # type: ignore[attr-defined]


def candidate_removed_refuse(*, candidate: Candidate) -> None:
    """A candidate whose gallery entry was removed takes no decision (read afresh: the removal may be new)."""
    removed = Candidate.objects.filter(pk=candidate.pk, subject_removed_at__isnull=False).first()
    if removed is not None:
        raise Conflict(
            "candidate_subject_removed",
            f"{candidate_removal_text(removed)} The candidate stays in the case history, marked removed.",
        )


def candidate_decision_record(
    *,
    candidate: Candidate,
    reviewer: AbstractBaseUser,
    decision: str,
    rationale: str,
    features: Mapping[str, object] | None = None,
    request: HttpRequest | None = None,
) -> Decision:
    """Record a person's assessment; the second, independent one decides if a possible match is released.
    `features` is the morphological checklist beside the rationale (cases.features), stored and audited with it."""
    candidate_removed_refuse(candidate=candidate)
    if decision not in Decision.Verdict.values:
        choices = ", ".join(Decision.Verdict.values)
        raise InvalidInput("invalid_decision", f"The decision must be one of: {choices}.")
    checklist = features_clean(features)
    rationale = (rationale or "").strip()
    text_limit_check("rationale", rationale)
    if not rationale:
        raise InvalidInput("rationale_required", "Give the reasons for your decision; they are recorded.")
    with transaction.atomic():
        locked = Candidate.objects.select_for_update().select_related("search").get(pk=candidate.pk)
        previous = list(locked.decisions.all())
        if any(d.reviewer_id == reviewer.pk for d in previous):
            raise Conflict(
                "already_decided",
                "You have already recorded a decision on this candidate. A second review must come from"
                " a different person.",
            )
        if len(previous) >= 2:
            raise Conflict("already_reviewed", "This candidate already has its assessment and second review.")
        if previous:
            first = previous[0]
            if not candidate_awaits_second_review(candidate=locked):
                raise Conflict(
                    "review_not_needed",
                    "Only a possible match goes to a second review; this candidate was assessed as"
                    f" '{first.get_decision_display()}'.",
                )
            # An operator's possible match needs a second reviewer; a second reviewer's own first assessment
            # needs anyone else on the case (the two people differ either way: checked above).
            if candidate_second_review_needs_reviewer(candidate=locked) and not user_is_second_reviewer(user=reviewer):
                groups = " or ".join(settings.RFR_SECOND_REVIEWER_GROUPS)
                raise Forbidden(
                    "second_reviewer_required",
                    f"The second review must be given by a {groups}; ask one to review this candidate.",
                )
            stage = Decision.Stage.SECOND
            # Two people who agree settle the candidate; any disagreement leaves it unreleased ("disputed").
            outcome = (
                AGREED_OUTCOMES[Decision.Verdict(decision)]
                if decision == first.decision
                else Candidate.Outcome.DISPUTED
            )
        else:
            stage = Decision.Stage.FIRST
            # A supervisor (or designated reviewer) cannot end review alone: their own first assessment,
            # whatever its verdict, is never the second review and waits for a different person.
            outcome = (
                Candidate.Outcome.AWAITING_REVIEW
                if user_is_second_reviewer(user=reviewer)
                else FIRST_OUTCOMES[Decision.Verdict(decision)]
            )
        record = Decision.objects.create(
            candidate=locked,
            reviewer=reviewer,
            stage=stage,  # type: ignore[misc]
            decision=decision,
            rationale=rationale,
            features=checklist,
        )
        locked.outcome = outcome
        locked.save(update_fields=["outcome"])
        audit_event_record(
            action=AuditAction.CANDIDATE_DECIDED,
            actor=reviewer,
            target=record,
            case_id=locked.search.case_id,
            request=request,
            detail={
                "candidate_id": locked.pk,
                "search_id": locked.search_id,
                "rank": locked.rank,
                "subject_ref": locked.subject_ref,
                "stage": stage,
                "decision": decision,
                "outcome": outcome,
                "rationale": rationale,
                "features": checklist,
            },
        )
        # Who is waiting on this, or concerned by it, is told in the same transaction (cases.notifications).
        notifications_after_decision(candidate=locked, decision=record, outcome=outcome)
    candidate.outcome = outcome
    return record


def candidate_view_record(
    *, candidate: Candidate, viewer: AbstractBaseUser, request: HttpRequest | None = None, via: str = "page"
) -> None:
    """Opening a candidate beside the probe face (or reading it through the API, `via="api"`) is itself an
    event on the record."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.CANDIDATE_VIEWED,
            actor=viewer,
            target=candidate,
            case_id=candidate.search.case_id,
            request=request,
            detail={
                "search_id": candidate.search_id,
                "rank": candidate.rank,
                "subject_ref": candidate.subject_ref,
                "via": via,
            },
        )


def candidate_image_view_record(
    *,
    candidate: Candidate,
    viewer: AbstractBaseUser,
    shown: str,
    request: HttpRequest | None = None,
    via: str = "page",
) -> None:
    """Every view of a candidate's gallery image (`shown="gallery_image"`) or aligned crop (`"aligned_crop"`)
    is on the record: one event per request, written before the image is sent; likewise a list thumbnail
    (`"thumbnail"`) fetched outside the list's own event (cases.candidate_list)."""
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.CANDIDATE_IMAGE_VIEWED,
            actor=viewer,
            target=candidate,
            case_id=candidate.search.case_id,
            request=request,
            detail={"search_id": candidate.search_id, "rank": candidate.rank, "shown": shown, "via": via},
        )


def candidate_gallery_template(*, candidate: Candidate) -> Template | None:
    """The gallery template a candidate came from, or None once the gallery image has been deleted."""
    return gallery_template_get(template_id=candidate.template_id)


def candidate_aligned_crop(*, candidate: Candidate) -> np.ndarray | None:
    """The candidate's face aligned as the probe face was (112x112 BGR), rebuilt from the gallery image."""
    template = candidate_gallery_template(candidate=candidate)
    if template is None:
        return None
    try:
        with template.image.file.open("rb") as handle:
            image = faceengine.decode_image(handle.read(), image_limits())
    except (FileNotFoundError, faceengine.ImageRejected):
        return None
    return align_face(image, np.asarray(template.landmarks, dtype=np.float32))


# --- Independence of the second review ---------------------------------------------------------------------
# While a candidate awaits its second review, the first assessment's verdict and rationale are shown
# to their author only: whoever gives the second review must reach their own view without them. Once the
# second review is recorded (or the first assessment needs none), every decision is shown to everyone on
# the case. The same rule applies to the pages, the API, the PDF report and the case timeline.

WITHHELD_TEXT = (
    "A first assessment has been recorded. Its verdict and rationale are withheld until the independent"
    " second review is recorded, so that the second reviewer decides without them."
)


def decisions_visible_to(
    *, candidate: Candidate, viewer: AnyUser | None, decisions: Sequence[Decision] | None = None
) -> tuple[list[Decision], int]:
    """The candidate's decisions `viewer` may read now, and how many are withheld from them."""
    decisions = list(candidate.decisions.all()) if decisions is None else list(decisions)
    if not candidate_awaits_second_review(candidate=candidate):
        return decisions, 0
    viewer_id = getattr(viewer, "pk", None)
    visible = [d for d in decisions if viewer_id is not None and d.reviewer_id == viewer_id]
    return visible, len(decisions) - len(visible)
