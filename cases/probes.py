"""Probes: images brought into a case, and the faces found in them (upload → detect → align → embed).

`probe_upload` stores the original byte for byte with its sha256, records its source and lawful basis, and
queues `probe_process` on the inference queue, which runs the face engine and stores every face with its box,
landmarks, quality, aligned crop and template. Where the detector missed a face, a person draws a box and
`probe_face_from_region` looks again inside it; where it finds none either, the person places the five
landmarks by hand and `probe_face_mark_landmarks` aligns and embeds from them (a `manual` face, warned and
marked as such everywhere). Each change commits with its audit event.
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
# Hand-marked landmarks: the eyes at least this far apart (pixels of the original), and the face's roll (the
# eye line's angle) at most this many degrees: beyond either the points cannot describe a face to align.
MIN_MARKED_EYE_PX = 4.0
MAX_MARKED_ROLL_DEG = 60.0
LANDMARK_NAMES = ("left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner")

# Processing's stages (faceengine's, then saving) and the progress a probe shows when each starts; the
# presenter words them (cases.presenters.probe_progress). Decoding is where processing starts.
STAGE_SAVING = "saving"
PROBE_STAGE_PROGRESS = {
    faceengine.STAGE_DECODING: 10,
    faceengine.STAGE_DETECTING: 25,
    faceengine.STAGE_ENCODING: 60,
    STAGE_SAVING: 85,
}


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
        # Decoding here means a wrong-type or corrupt file is refused at once, with nothing stored. A JPEG is
        # decoded at 1/8 scale: every byte of it is still read (a truncated file is refused), for a fraction
        # of the time a full decode of a large photo takes.
        decoded = faceengine.decode_image_reduced(data, image_limits(), reduce_to=1)
    except faceengine.ImageRejected as exc:
        raise image_rejection_error(exc) from None
    width, height = decoded.full_width, decoded.full_height
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


def _stage_record(probe_id: int, stage: str) -> None:
    # Decoding was recorded when processing started: one write (a commit, about 20 ms on SQLite) fewer.
    if stage != faceengine.STAGE_DECODING:
        _set_progress(probe_id, PROBE_STAGE_PROGRESS[stage])


def _encode_png(image_bgr: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:  # pragma: no cover - PNG encoding of a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode the aligned face crop")
    return buffer.tobytes()


def _probe_face_append(*, probe: Probe, face: faceengine.AnalysedFace, pack_key: str, origin: str) -> ProbeFace:
    """A face a person added (drawn box, hand-placed points), numbered after the probe's existing faces. The
    probe row must be locked (select_for_update) so two additions never take the same number."""
    last = probe.faces.order_by("-index").values_list("index", flat=True).first() or 0
    return _probe_face_build(probe=probe, index=last + 1, face=face, pack_key=pack_key, origin=origin)


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
        probe.progress = PROBE_STAGE_PROGRESS[faceengine.STAGE_DECODING]
        probe.heartbeat_at = timezone.now()
        probe.save(update_fields=["status", "progress", "heartbeat_at"])
    try:
        with probe.original.open("rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        _probe_fail(
            probe_id=probe_id,
            code="original_missing",
            message="The stored original could not be read. Upload the image again.",
        )
        return
    engine = active_engine()
    try:
        analysis = engine.analyse_encoded(data, image_limits(), on_stage=lambda stage: _stage_record(probe_id, stage))
    except faceengine.ImageRejected as exc:
        _probe_fail(probe_id=probe_id, code=exc.code, message=exc.message)
        return
    except Exception:
        logger.exception("face analysis failed for probe %s", probe_id)
        _probe_fail(
            probe_id=probe_id,
            code="processing_error",
            message="The face engine could not process this image. Try another copy, or report the fault.",
        )
        return
    _set_progress(probe_id, PROBE_STAGE_PROGRESS[STAGE_SAVING])
    faces = analysis.faces
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
        face = _probe_face_append(probe=locked, face=analysed, pack_key=engine.pack.key, origin=ProbeFace.Origin.DRAWN)
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


def _landmarks_refuse(message: str) -> InvalidInput:
    return InvalidInput("invalid_landmarks", message, fields={"points": [message]})


def landmark_points_check(*, probe: Probe, points: Sequence[Sequence[float | str]]) -> np.ndarray:
    """The five points a person placed, as a (5, 2) array, or a 400 saying what is wrong with them.

    Order: the eye on the image's left, the eye on the image's right, the nose tip, the mouth corner on the
    image's left, the one on its right. Beyond lying inside the image the points must look like a face the
    right way up (roll within 60 degrees): eyes apart, the nose tip between the eyes and below them, both
    mouth corners below the nose and in left-right order.
    """
    try:
        array = np.array([[float(v) for v in point] for point in points], dtype=np.float64)
    except (TypeError, ValueError):
        raise _landmarks_refuse("Give the five points as x, y pairs of numbers.") from None
    if array.shape != (5, 2) or not np.isfinite(array).all():
        raise _landmarks_refuse("Give exactly five points, each as x and y: " + ", ".join(LANDMARK_NAMES) + ".")
    width, height = probe.width or 0, probe.height or 0
    for name, (x, y) in zip(LANDMARK_NAMES, array, strict=True):
        if not (0 <= x <= width and 0 <= y <= height):
            raise _landmarks_refuse(f"The {name} ({x:g}, {y:g}) lies outside the image ({width} x {height} pixels).")
    left_eye, right_eye, nose, mouth_left, mouth_right = array
    eye_vector = right_eye - left_eye
    eye_distance = float(np.hypot(*eye_vector))
    if eye_distance < MIN_MARKED_EYE_PX:
        raise _landmarks_refuse(
            f"The eyes are {eye_distance:.1f} pixels apart; place them at least {MIN_MARKED_EYE_PX:g} pixels apart."
        )
    if eye_vector[0] <= 0:
        raise _landmarks_refuse(
            "The left eye must be the eye on the image's left: place the eye on the left of the picture first."
        )
    roll = float(np.degrees(np.arctan2(eye_vector[1], eye_vector[0])))
    if abs(roll) > MAX_MARKED_ROLL_DEG:
        raise _landmarks_refuse(
            f"The eye line is tilted {abs(roll):.0f} degrees; at most {MAX_MARKED_ROLL_DEG:g} can be aligned."
            " Check the order of the points."
        )
    # Coordinates in the face's own frame: along the eye line (u) and down from it (v), in eye distances,
    # from the midpoint between the eyes.
    u = eye_vector / eye_distance
    v = np.array([-u[1], u[0]])
    mid = (left_eye + right_eye) / 2.0

    def frame(point: np.ndarray) -> tuple[float, float]:
        offset = point - mid
        return float(offset @ u) / eye_distance, float(offset @ v) / eye_distance

    nose_across, nose_down = frame(nose)
    if abs(nose_across) > 0.5:
        raise _landmarks_refuse("The nose tip must lie between the two eyes (left to right).")
    if nose_down <= 0:
        raise _landmarks_refuse("The nose tip must lie below the eyes.")
    mouth_left_across, mouth_left_down = frame(mouth_left)
    mouth_right_across, mouth_right_down = frame(mouth_right)
    if min(mouth_left_down, mouth_right_down) <= nose_down:
        raise _landmarks_refuse("Both mouth corners must lie below the nose tip.")
    if mouth_left_across >= mouth_right_across:
        raise _landmarks_refuse(
            "The left mouth corner must be the one on the image's left, before the right mouth corner."
        )
    if max(mouth_left_down, mouth_right_down) > 3.0:
        raise _landmarks_refuse(
            "The mouth corners are too far below the eyes for one face: more than three eye distances."
        )
    return array


def _probe_image_decode(probe: Probe) -> np.ndarray:
    with probe.original.open("rb") as handle:
        return faceengine.decode_image(handle.read(), image_limits())


def _box_parse(box: Sequence[float | str] | None) -> list[float] | None:
    """An optional drawn box as [x, y, w, h] (rounded), or a 400."""
    if box is None or (isinstance(box, (list, tuple)) and len(box) == 0):
        return None
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InvalidInput("invalid_box", "Give the box as four numbers: x, y, width and height.") from None
    if not all(np.isfinite([x, y, w, h])) or w <= 0 or h <= 0:
        raise InvalidInput("invalid_box", "Give the box as four numbers: x, y, a positive width and height.")
    return [round(v, 1) for v in (x, y, w, h)]


def probe_face_mark_landmarks(
    *,
    probe: Probe,
    user: AbstractBaseUser,
    points: Sequence[Sequence[float | str]],
    drawn_box: Sequence[float | str] | None = None,
    request: HttpRequest | None = None,
) -> ProbeFace:
    """A face made from five landmarks a person placed by hand where the detector found none (not even in a
    drawn box): aligned and embedded from those points, stored as a `manual` face with who placed them, and
    audited with the points."""
    if probe.status != Probe.Status.DONE:
        raise Conflict("probe_not_ready", "Wait until the image has been processed before marking a face.")
    landmarks = landmark_points_check(probe=probe, points=points)
    box = _box_parse(drawn_box)
    image = _probe_image_decode(probe)
    engine = active_engine()
    analysed = engine.analyse_landmarks(image, landmarks)
    with atomic_with_files():
        locked = Probe.objects.select_for_update().get(pk=probe.pk)
        face = _probe_face_append(probe=locked, face=analysed, pack_key=engine.pack.key, origin=ProbeFace.Origin.MANUAL)
        # The points exactly as placed (the engine's copy is float32).
        face.landmarks = [[round(float(x), 2), round(float(y), 2)] for x, y in landmarks]
        face.drawn_box = box
        face.drawn_by = user  # type: ignore[assignment]
        face.save()
        audit_event_record(
            action=AuditAction.PROBE_FACE_MARKED,
            actor=user,
            target=face,
            case_id=locked.case_id,
            request=request,
            detail={
                "probe_id": locked.pk,
                "points": face.landmarks,
                "drawn_box": box,
                "marked_by": user.get_username(),
                "box": face.box,
                "pack_key": engine.pack.key,
            },
        )
    return face


def landmark_marking_region(*, probe: Probe, box: Sequence[float | str] | None) -> tuple[int, int, int, int]:
    """The part of the image shown for marking landmarks: the drawn box with half its size again as margin
    on every side, inside the image, as (x0, y0, x1, y1); the whole image without a box."""
    width, height = probe.width or 0, probe.height or 0
    parsed = _box_parse(box)
    if parsed is None:
        return 0, 0, width, height
    x, y, w, h = parsed
    margin = 0.5 * max(w, h)
    x0, y0 = max(0, int(x - margin)), max(0, int(y - margin))
    x1, y1 = min(width, int(np.ceil(x + w + margin))), min(height, int(np.ceil(y + h + margin)))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise InvalidInput("invalid_box", f"The box must lie inside the image ({width} x {height} pixels).")
    return x0, y0, x1, y1


def probe_region_image(
    *,
    probe: Probe,
    viewer: AbstractBaseUser,
    box: Sequence[float | str] | None,
    request: HttpRequest | None = None,
) -> bytes:
    """The marking region of the probe (`landmark_marking_region`) as PNG, at the original's pixels; the view
    is audited like any view of the probe image."""
    x0, y0, x1, y1 = landmark_marking_region(probe=probe, box=box)
    region = _probe_image_decode(probe)[y0:y1, x0:x1]
    png = _encode_png(np.ascontiguousarray(region))
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.PROBE_IMAGE_VIEWED,
            actor=viewer,
            target=probe,
            case_id=probe.case_id,
            request=request,
            detail={"probe_id": probe.pk, "shown": "region", "region": [x0, y0, x1 - x0, y1 - y0]},
        )
    return png


def probe_landmarks_preview(
    *,
    probe: Probe,
    viewer: AbstractBaseUser,
    points: Sequence[Sequence[float | str]],
    request: HttpRequest | None = None,
) -> bytes:
    """The aligned 112×112 crop that five hand-placed points would give, as PNG, before anything is stored
    (refused like `probe_face_mark_landmarks` for bad points); audited as a view of the probe image."""
    landmarks = landmark_points_check(probe=probe, points=points)
    # The engine's own path, so the preview is exactly the crop that saving would store.
    png = _encode_png(active_engine().analyse_landmarks(_probe_image_decode(probe), landmarks).aligned)
    with transaction.atomic():
        audit_event_record(
            action=AuditAction.PROBE_IMAGE_VIEWED,
            actor=viewer,
            target=probe,
            case_id=probe.case_id,
            request=request,
            detail={
                "probe_id": probe.pk,
                "shown": "landmark_preview",
                "points": [[round(float(x), 2), round(float(y), 2)] for x, y in landmarks],
            },
        )
    return png


def probe_image_view_record(
    *,
    probe: Probe,
    viewer: AbstractBaseUser,
    face: ProbeFace | None = None,
    display_copy: bool = False,
    request: HttpRequest | None = None,
    via: str = "page",
) -> None:
    """Every view of a probe's original image, of its display copy (`display_copy`), or of one of its face
    crops (`face`), is on the record: one event per request, written before the image is sent, saying whether
    a page or an API client (`via="api"`) fetched it."""
    shown = "face_crop" if face is not None else "display_copy" if display_copy else "original"
    detail: dict[str, object] = {"probe_id": probe.pk, "shown": shown, "via": via}
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


# The probe page shows an image whose longer side exceeds this as a reduced copy made on request: a
# 7500×5000 photo is 37 megapixels for the browser to fetch and decode, for a picture a screen shows at
# at most 760 CSS pixels wide (1,520 on a high-density screen). The original stays unchanged and is offered
# for download.
DISPLAY_MAX_SIDE = 1600


def probe_has_display_copy(probe: Probe) -> bool:
    return max(probe.width or 0, probe.height or 0) > DISPLAY_MAX_SIDE


def probe_display_copy(*, probe: Probe) -> tuple[bytes, str]:
    """A copy of the probe image with its longer side at most DISPLAY_MAX_SIDE, upright, as (bytes, content
    type): JPEG for a JPEG original, PNG otherwise. Made from the stored original each time, never stored."""
    with probe.original.open("rb") as handle:
        data = handle.read()
    try:
        decoded = faceengine.decode_image_reduced(data, image_limits(), reduce_to=DISPLAY_MAX_SIDE)
    except faceengine.ImageRejected as exc:
        raise image_rejection_error(exc) from None
    pixels = decoded.pixels
    height, width = pixels.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(height, width)
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    if probe.image_format in {"JPEG", "MPO"}:
        ok, buffer = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90])
        content_type = "image/jpeg"
    else:
        ok, buffer = cv2.imencode(".png", pixels)
        content_type = "image/png"
    if not ok:  # pragma: no cover - encoding a uint8 array cannot fail short of memory exhaustion
        raise RuntimeError("could not encode the display copy")
    return buffer.tobytes(), content_type


def probes_of_case(*, case: Case) -> QuerySet[Probe]:
    return case.probes.select_related("uploaded_by").prefetch_related("faces")
