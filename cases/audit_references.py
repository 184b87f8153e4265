"""Case references for the audit trail (`/audit/`): which cases a reference names, and each case's reference,
for one reader. Registered with audit in CasesConfig.ready (audit.selectors.audit_case_references_register),
so that audit can filter and label events by reference without knowing cases.

A reference is case content: both lookups see only the cases the reader may read (cases.access), so an admin
or a supervisor of another team learns no reference from the audit page, and finds no case by one.
"""

from __future__ import annotations

from collections.abc import Collection

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from cases.access import cases_visible_to


def case_ids_with_reference(user: AbstractBaseUser | AnonymousUser, reference: str) -> list[int]:
    """The cases `user` may read whose reference is `reference` (ignoring case and surrounding spaces)."""
    reference = reference.strip()
    if not reference:
        return []
    return list(cases_visible_to(user=user).filter(reference__iexact=reference).values_list("pk", flat=True))


def case_references_of(user: AbstractBaseUser | AnonymousUser, case_ids: Collection[int]) -> dict[int, str]:
    """{case id: reference} for those of `case_ids` that `user` may read."""
    if not case_ids:
        return {}
    return dict(cases_visible_to(user=user).filter(pk__in=list(case_ids)).values_list("pk", "reference"))
