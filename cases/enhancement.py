"""Enhancement on the record: derived images made from a probe with a fixed, deterministic chain of operations.

The operations themselves are pure functions in `faceengine.enhance`. Here a chain is previewed on a probe
(`enhancement_preview`: nothing stored, the view audited as `probe.enhancement_previewed`) or saved
(`enhancement_save`): the result is stored as a new `Probe` (PNG) whose `parent` is the probe it was made
from and whose `derivation` records the parent's sha256, the ordered operations with every parameter, the
library versions, who and when; it is audited as `probe.derived` and processed like any upload. The parent is
never changed. `probe_lineage` walks a derived probe back to the uploaded original, so that every page, API
answer and report of a search from it can show the whole chain (cases.presenters.derivation_view).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

import faceengine
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Probe
from cases.probes import probe_queue_failed
from faceengine.enhance import EnhanceRefused, chain_apply, chain_environment, image_png_bytes, operations_validate
from rfr.engine import image_limits, image_rejection_error
from rfr.errors import InvalidInput, NotFound
from rfr.queues import TaskName, queue_require_available, task_enqueue_on_commit
from rfr.storage import atomic_with_files, stored_file_save

# A chain's JSON as typed or sent: enough for MAX_OPERATIONS steps with every parameter, not an essay.
MAX_CHAIN_JSON_CHARS = 8000


def _refused(message: str) -> InvalidInput:
    return InvalidInput("invalid_enhancement", message, fields={"operations": [message]})


def enhancement_operations_parse(raw: Any) -> list[dict[str, Any]]:
    """A chain given as JSON text (a form field, a query parameter) or as a list (the API), checked and with
    every parameter explicit; an InvalidInput (400, `invalid_enhancement`) that names the step otherwise."""
    if isinstance(raw, str):
        if len(raw) > MAX_CHAIN_JSON_CHARS:
            raise _refused(f"The chain is too long (at most {MAX_CHAIN_JSON_CHARS} characters of JSON).")
        try:
            raw = json.loads(raw or "[]")
        except ValueError:
            raise _refused('Give the operations as JSON: a list of {"op": name, "params": {...}}.') from None
    try:
        return operations_validate(raw)
    except EnhanceRefused as exc:
        raise _refused(exc.message) from None


def _probe_image(probe: Probe) -> np.ndarray:
    try:
        with probe.original.open("rb") as handle:
            return faceengine.decode_image(handle.read(), image_limits())
    except FileNotFoundError:
        raise NotFound("original_missing", "The stored original of this probe is no longer held.") from None
    except faceengine.ImageRejected as exc:
        raise image_rejection_error(exc) from None


def _chain_run(probe: Probe, operations: list[dict[str, Any]]) -> np.ndarray:
    try:
        return chain_apply(_probe_image(probe), operations)
    except EnhanceRefused as exc:
        raise _refused(exc.message) from None


def enhancement_preview(
    *, probe: Probe, operations: Any, viewer: AbstractBaseUser, request: HttpRequest | None = None
) -> bytes:
    """The chain applied to the probe, as PNG bytes, for a person to look at before saving. Nothing is stored;
    the view is on the record (as every view of a probe image is), written before the image is returned."""
    chain = enhancement_operations_parse(operations)
    png = image_png_bytes(_chain_run(probe, chain))
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.PROBE_ENHANCEMENT_PREVIEWED,
            actor=viewer,
            target=probe,
            case_id=probe.case_id,
            request=request,
            detail={"probe_id": probe.pk, "parent_sha256": probe.sha256, "operations": chain},
        )
    return png


def enhancement_save(
    *, probe: Probe, operations: Any, made_by: AbstractBaseUser, request: HttpRequest | None = None
) -> Probe:
    """Store the chain's result as a new probe derived from `probe`, on the record, and queue its processing.
    The parent's file and row are not touched."""
    case_require_open(case=probe.case, action="making enhanced images")
    chain = enhancement_operations_parse(operations)
    result = _chain_run(probe, chain)
    data = image_png_bytes(result)
    digest = hashlib.sha256(data).hexdigest()
    queue_require_available()
    now = timezone.now()
    derivation = {
        "parent_id": probe.pk,
        "parent_sha256": probe.sha256,
        "operations": chain,
        "environment": chain_environment(),
        "made_by": made_by.get_username(),
        "made_by_id": made_by.pk,
        "made_at": now.isoformat(),
    }
    height, width = result.shape[:2]
    derived = Probe(
        case=probe.case,
        uploaded_by=made_by,  # type: ignore[misc]
        source=probe.source,
        description=probe.description,
        captured_at=probe.captured_at,
        lawfully_held=probe.lawfully_held,
        original_name=f"probe-{probe.pk}-enhanced.png",
        image_format="PNG",
        size_bytes=len(data),
        sha256=digest,
        width=width,
        height=height,
        heartbeat_at=now,
        parent=probe,
        derivation=derivation,
    )
    with atomic_with_files():
        stored_file_save(derived.original, "original", ContentFile(data))
        derived.save()
        audit_event_record(
            action=AuditAction.PROBE_DERIVED,
            actor=made_by,
            target=derived,
            case_id=probe.case_id,
            request=request,
            detail={
                "parent_id": probe.pk,
                "parent_sha256": probe.sha256,
                "sha256": digest,
                "operations": chain,
                "environment": derivation["environment"],
            },
        )
        task_enqueue_on_commit(
            TaskName.PROBE_PROCESS, derived.pk, on_failure=lambda: probe_queue_failed(probe_id=derived.pk)
        )
    return derived


def probe_lineage(probe: Probe) -> list[Probe]:
    """The probe and the probes it was derived from, the uploaded original first."""
    chain: list[Probe] = [probe]
    seen = {probe.pk}
    current = probe
    while current.parent_id is not None and current.parent_id not in seen:
        parent = Probe.objects.filter(pk=current.parent_id).first()
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.pk)
        current = parent
    return list(reversed(chain))
