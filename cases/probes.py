"""Probes: images brought into a case, and the faces found in them (upload → detect → align → embed).

`probe_upload` stores the original byte for byte with its sha256, records its source and lawful basis, and
queues `probe_process` on the inference queue, which runs the face engine and stores every face with its box,
landmarks, quality, aligned crop and template. Where the detector missed a face, a person draws a box and
`probe_face_from_region` looks again inside it. Each change commits with its audit event.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Sequence
from datetime import datetime

import cv2
import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from PIL import Image

import faceengine
from audit.actions import AuditAction
from audit.services import audit_event_record
from cases.lifecycle import case_require_open
from cases.models import Case, Probe, ProbeFace
from rfr.engine import active_engine, image_limits, image_rejection_error
from rfr.errors import Conflict, InvalidInput
from rfr.limits import text_limit_check
from rfr.queues import TaskName, queue_require_available, task_enqueue_on_commit
from rfr.storage import atomic_with_files, stored_file_save

logger = logging.getLogger(__name__)

NO_FACE_MESSAGE = (
    "No face was found in this image. If you can see a face, draw a box around it and rfr will look again"
    " inside the box."
)

MIN_DRAWN_BOX_PX = 8


def _image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format or "")


def probe_upload(
    *,
    case: Case,
    uploaded_by: AbstractBaseUser,
    data: bytes,
    filename: str,
    source: str,
    lawfully_held: bool,
    description: str = "",
    captured_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Probe:
    """Store the original unchanged, record it, and queue detection. Bad files are refused before storing."""
    case_require_open(case=case, action="adding probe images")
    text_limit_check("probe_description", description.strip(), label="description")
    if source not in Probe.Source.values:
        choices = ", ".join(Probe.Source.values)
        message = f"Choose where the image came from: one of {choices}."
        raise InvalidInput("invalid_source", message, fields={"source": [message]})
    if not lawfully_held:
        raise InvalidInput(
            "lawful_statement_required",
            "Confirm that the image is lawfully held before uploading it; rfr searches lawfully held images only.",
        )
    try:
        # Decoding here means a wrong-type or corrupt file is refused at once, with nothing stored.
        image = faceengine.decode_image(data, image_limits())
    except faceengine.ImageRejected as exc:
        raise image_rejection_error(exc) from None
    height, width = image.shape[:2]
    digest = hashlib.sha256(data).hexdigest()
    # With the broker down, refuse now with nothing stored, rather than store work that waits for the re-queue.
    queue_require_available()
    probe = Probe(
        case=case,
        uploaded_by=uploaded_by,  # type: ignore[misc]
        source=source,
        description=description.strip(),
        captured_at=captured_at,
        lawfully_held=True,
        original_name=(filename or "")[:255],
        image_format=_image_format(data),
        size_bytes=len(data),
        sha256=digest,
        width=width,
        height=height,
        heartbeat_at=timezone.now(),
    )
    with atomic_with_files():
        stored_file_save(probe.original, "original", ContentFile(data))
        probe.save()
        audit_event_record(
            action=AuditAction.PROBE_UPLOADED,
            actor=uploaded_by,
            target=probe,
            case_id=case.pk,
            request=request,
            detail={
                "sha256": digest,
                "filename": probe.original_name,
                "size_bytes": len(data),
                "source": source,
                "captured_at": captured_at.isoformat() if captured_at else None,
                "lawfully_held": True,
            },
        )
        task_enqueue_on_commit(
            TaskName.PROBE_PROCESS, probe.pk, on_failure=lambda: probe_queue_failed(probe_id=probe.pk)
        )
    return probe


def probe_queue_failed(*, probe_id: int) -> None:
    """The broker refused the task after the probe committed: clear its heartbeat so the re-queue task
    (cases.housekeeping) sends it at its next round rather than after the usual wait."""
    Probe.objects.filter(pk=probe_id, status=Probe.Status.PENDING).update(heartbeat_at=None)


def _set_progress(probe_id: int, progress: int) -> None:
    Probe.objects.filter(pk=probe_id).update(progress=progress, heartbeat_at=timezone.now())


def _encode_png(image_bgr: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode the aligned face crop")
    return buffer.tobytes()


def _probe_face_build(
    *, probe: Probe, index: int, face: faceengine.AnalysedFace, pack_key: str, origin: str
) -> ProbeFace:
    probe_face = ProbeFace(
        probe=probe,
        index=index,
        origin=origin,
        box=[round(float(v), 1) for v in face.box],
        landmarks=[[round(float(x), 2), round(float(y), 2)] for x, y in face.landmarks],
        detector_score=round(float(face.score), 4),
        quality=face.quality.to_dict(),
        template=np.asarray(face.template, dtype="<f4").tobytes(),
        pack_key=pack_key,
    )
    stored_file_save(probe_face.aligned_crop, "crop.png", ContentFile(_encode_png(face.aligned)))
    return probe_face


def _probe_fail(*, probe_id: int, code: str, message: str) -> None:
    with transaction.atomic():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None:
            return
        probe.status = Probe.Status.FAILED
        probe.error_code = code
        probe.error_message = message
        probe.processed_at = timezone.now()
        probe.save(update_fields=["status", "error_code", "error_message", "processed_at"])
        audit_event_record(
            action=AuditAction.PROBE_FAILED,
            actor=probe.uploaded_by,
            target=probe,
            case_id=probe.case_id,
            detail={"code": code, "message": message},
        )


def probe_process(*, probe_id: int) -> None:
    """Decode, detect, align, embed and assess every face. Safe to run twice: a second run changes nothing."""
    with transaction.atomic():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None or probe.status in {Probe.Status.DONE, Probe.Status.FAILED}:
            return  # deleted meanwhile, or a redelivered message for work already finished
        probe.status = Probe.Status.PROCESSING
        probe.progress = 10
        probe.heartbeat_at = timezone.now()
        probe.save(update_fields=["status", "progress", "heartbeat_at"])
    try:
        with probe.original.open("rb") as handle:
            data = handle.read()
        image = faceengine.decode_image(data, image_limits())
    except faceengine.ImageRejected as exc:
        _probe_fail(probe_id=probe_id, code=exc.code, message=exc.message)
        return
    except FileNotFoundError:
        _probe_fail(
            probe_id=probe_id,
            code="original_missing",
            message="The stored original could not be read. Upload the image again.",
        )
        return
    _set_progress(probe_id, 30)
    engine = active_engine()
    try:
        faces = engine.analyse(image)
    except Exception:
        logger.exception("face analysis failed for probe %s", probe_id)
        _probe_fail(
            probe_id=probe_id,
            code="processing_error",
            message="The face engine could not process this image. Try another copy, or report the fault.",
        )
        return
    _set_progress(probe_id, 80)
    # Numbered in the engine's order: most usable first, uncertain detections (probably not faces) last.
    with atomic_with_files():
        probe = Probe.objects.select_for_update().filter(pk=probe_id).first()
        if probe is None or probe.status == Probe.Status.DONE:
            return
        probe.faces.filter(origin=ProbeFace.Origin.DETECTED).delete()
        rows = [
            _probe_face_build(
                probe=probe, index=i, face=face, pack_key=engine.pack.key, origin=ProbeFace.Origin.DETECTED
            )
            for i, face in enumerate(faces, start=1)
        ]
        ProbeFace.objects.bulk_create(rows)
        probe.status = Probe.Status.DONE
        probe.progress = 100
        probe.pack_key = engine.pack.key
        probe.processed_at = timezone.now()
        probe.error_code = "" if faces else "no_face"
        probe.error_message = "" if faces else NO_FACE_MESSAGE
        probe.save(update_fields=["status", "progress", "pack_key", "processed_at", "error_code", "error_message"])
        audit_event_record(
            action=AuditAction.PROBE_PROCESSED,
            actor=probe.uploaded_by,
            target=probe,
            case_id=probe.case_id,
            detail={"faces": len(rows), "pack_key": engine.pack.key},
        )


def probe_face_from_region(
    *,
    probe: Probe,
    box: Sequence[float | str],
    drawn_by: AbstractBaseUser,
    request: HttpRequest | None = None,
) -> ProbeFace:
    """Look for a face inside a box a person drew where the detector missed one."""
    if probe.status != Probe.Status.DONE:
        raise Conflict("probe_not_ready", "Wait until the image has been processed before drawing a box.")
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidInput("invalid_box", "Give the box as four numbers: x, y, width and height.") from None
    if w < MIN_DRAWN_BOX_PX or h < MIN_DRAWN_BOX_PX:
        raise InvalidInput("invalid_box", f"Draw a box at least {MIN_DRAWN_BOX_PX} pixels wide and high.")
    width, height = probe.width or 0, probe.height or 0
    if x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1:
        raise InvalidInput("invalid_box", f"The box must lie inside the image ({width} x {height} pixels).")
    with probe.original.open("rb") as handle:
        image = faceengine.decode_image(handle.read(), image_limits())
    engine = active_engine()
    found = engine.faces_in_region(image, (x, y, w, h))
    if not found:
        raise InvalidInput(
            "no_face_in_region",
            "No face was found inside the box you drew. Draw it around the whole head with a little margin,"
            " or use another image of the person.",
        )
    analysed = engine.analyse(image, faces=found[:1])[0]
    with atomic_with_files():
        locked = Probe.objects.select_for_update().get(pk=probe.pk)
        last = locked.faces.order_by("-index").values_list("index", flat=True).first() or 0
        face = _probe_face_build(
            probe=locked,
            index=last + 1,
            face=analysed,
            pack_key=engine.pack.key,
            origin=ProbeFace.Origin.DRAWN,
        )
        face.drawn_box = [round(v, 1) for v in (x, y, w, h)]
        face.drawn_by = drawn_by  # type: ignore[assignment]
        face.save()
        audit_event_record(
            action=AuditAction.PROBE_FACE_DRAWN,
            actor=drawn_by,
            target=face,
            case_id=locked.case_id,
            request=request,
            detail={"probe_id": locked.pk, "drawn_box": face.drawn_box, "found_box": face.box},
        )
    return face


def probe_image_view_record(
    *,
    probe: Probe,
    viewer: AbstractBaseUser,
    face: ProbeFace | None = None,
    request: HttpRequest | None = None,
) -> None:
    """Every view of a probe's original image, or of one of its face crops (`face`), is on the record: one
    event per request, written before the image is sent."""
    detail: dict[str, object] = {"probe_id": probe.pk, "shown": "original" if face is None else "face_crop"}
    if face is not None:
        detail["face_id"] = face.pk
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.PROBE_IMAGE_VIEWED,
            actor=viewer,
            target=probe if face is None else face,
            case_id=probe.case_id,
            request=request,
            detail=detail,
        )


def probes_of_case(*, case: Case) -> QuerySet[Probe]:
    return case.probes.select_related("uploaded_by").prefetch_related("faces")
