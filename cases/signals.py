"""Keep guardian permissions in step with Team.supervisors and Case.team however they are changed
(services, admin, shell): see cases.permissions for the model. Mark the candidates of a removed gallery entry
removed, in the removal's transaction (search.galleries.gallery_entries_removed)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from accounts.grants import grants_recorded
from accounts.models import Team
from cases.models import Candidate, Case
from cases.permissions import case_team_permissions_sync, team_supervisors_sync
from search.galleries import gallery_entries_removed

REMOVAL_CHUNK = 5000


@receiver(m2m_changed, sender=Team.supervisors.through, dispatch_uid="cases.team_supervisors_changed")
def team_supervisors_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if not reverse:  # team.supervisors.add(user): instance is the team
        if action in ("post_add", "post_remove", "post_clear"):
            # The supervisor group mirrors a team change that is itself recorded (by a service, or by
            # accounts.signals), so the mirror's group changes are not recorded a second time.
            with grants_recorded():
                team_supervisors_sync(instance)
        return
    # user.supervised_teams.add(team): instance is the user, pk_set the teams
    if action == "pre_clear":
        instance._rfr_cleared_team_ids = list(instance.supervised_teams.values_list("pk", flat=True))
        return
    if action in ("post_add", "post_remove"):
        team_ids = list(pk_set or ())
    elif action == "post_clear":
        team_ids = getattr(instance, "_rfr_cleared_team_ids", [])
    else:
        return
    with grants_recorded():
        for team in Team.objects.filter(pk__in=team_ids):
            team_supervisors_sync(team)


@receiver(post_save, sender=Case, dispatch_uid="cases.case_saved")
def case_saved(sender: Any, instance: Case, created: bool, update_fields: Any = None, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return  # fixture loading: permissions rows are loaded as data
    if update_fields is not None and "team" not in update_fields and not created:
        return  # a save that cannot have changed the team
    case_team_permissions_sync(instance)


@receiver(gallery_entries_removed, dispatch_uid="cases.gallery_entries_removed")
def candidates_mark_removed(
    sender: Any, template_ids: list[int], image_ids: list[int], cause: str, removed_at: Any, **kwargs: Any
) -> int:
    """The candidates that point at removed gallery entries keep their rank, score and decisions (case history)
    but lose the subject reference, and are marked removed, so every page, API response and report says so and
    no decision can be recorded on them (cases.review). Returns how many were marked."""
    # Every template of a removed image goes with it, so the template id names each affected candidate.
    marked = 0
    for start in range(0, len(template_ids), REMOVAL_CHUNK):
        marked += Candidate.objects.filter(
            template_id__in=template_ids[start : start + REMOVAL_CHUNK], subject_removed_at__isnull=True
        ).update(subject_ref="", subject_removed_at=removed_at, subject_removal=cause)
    return marked
