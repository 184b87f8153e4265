"""Case notes: what investigators record about a case beside its images and searches.

Append-only: a note is never changed or deleted. Editing a note writes a new version that names the one it
replaces, so the case keeps every version with its author and time; each addition and edit commits with its
audit event (holding the text). Anyone on the case may add a note while the case is open; only a note's author
may edit it.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Case, CaseNote
from rfr.errors import Conflict, Forbidden, InvalidInput
from rfr.limits import text_limit_check


def _text_clean(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput("note_required", "Write the note first.", fields={"text": ["Write the note first."]})
    text_limit_check("case_note", text, label="text")
    return text


def case_note_add(*, case: Case, author: AbstractBaseUser, text: str, request: HttpRequest | None = None) -> CaseNote:
    case_require_open(case=case, action="adding a note")
    text = _text_clean(text)
    with transaction.atomic():
        note = CaseNote.objects.create(case=case, author=author, text=text)  # type: ignore[misc]
        audit_event_record(
            action=AuditAction.CASE_NOTE_ADDED,
            actor=author,
            target=note,
            case_id=case.pk,
            request=request,
            detail={"note_id": note.pk, "text": text},
        )
    return note


def case_note_edit(
    *, note: CaseNote, editor: AbstractBaseUser, text: str, request: HttpRequest | None = None
) -> CaseNote:
    """A new version of `note` (the current one); the earlier versions stay as they were."""
    case_require_open(case=note.case, action="editing a note")
    if note.author_id != editor.pk:
        raise Forbidden("note_author_only", "Only the note's author can edit it; add a note of your own instead.")
    text = _text_clean(text)
    try:
        with transaction.atomic():
            if CaseNote.objects.filter(replaces=note).exists():
                raise Conflict("note_superseded", "This note has been edited since; edit its latest version.")
            version = CaseNote.objects.create(
                case=note.case,
                author=editor,  # type: ignore[misc]
                text=text,
                version=note.version + 1,
                replaces=note,
            )
            audit_event_record(
                action=AuditAction.CASE_NOTE_EDITED,
                actor=editor,
                target=version,
                case_id=note.case_id,
                request=request,
                detail={"note_id": version.pk, "replaces": note.pk, "version": version.version, "text": text},
            )
    except IntegrityError:  # two edits of the same version at once: the second loses
        raise Conflict("note_superseded", "This note has been edited since; edit its latest version.") from None
    return version


def case_notes_current(*, case: Case) -> QuerySet[CaseNote]:
    """The latest version of each note of the case, oldest note first."""
    return case.notes.filter(replaced_by__isnull=True).select_related("author").order_by("created_at", "id")


def case_note_get(*, case: Case, note_id: int) -> CaseNote:
    """A note of `case` (fetched by the caller through cases.access); any other id does not exist here."""
    note = case.notes.select_related("author", "case").filter(pk=note_id).first()
    if note is None:
        raise Http404("No such note.")
    return note


def case_note_history(*, note: CaseNote) -> list[CaseNote]:
    """Every version of the note `note` belongs to, oldest first."""
    versions = [note]
    while versions[0].replaces_id is not None:
        earlier = CaseNote.objects.select_related("author").get(pk=versions[0].replaces_id)
        versions.insert(0, earlier)
    later = versions[-1]
    while True:
        following = CaseNote.objects.select_related("author").filter(replaces=later).first()
        if following is None:
            break
        versions.append(following)
        later = following
    return versions
