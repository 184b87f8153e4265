"""Large images fast: reduced-scale JPEG decoding for detection, full resolution only where a face needs it,
the probe page's display copy, and the stages a probe's progress reports (issue 10, item 1)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from audit.models import AuditEvent
from cases.models import Case, Probe
from cases.probes import DISPLAY_MAX_SIDE
from faceengine import (
    STAGE_DECODING,
    STAGE_DETECTING,
    STAGE_ENCODING,
    CorruptImage,
    FaceEngine,
    decode_image,
    decode_image_reduced,
)
from tests.factories import client_for


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _jpeg(pixels_bgr: np.ndarray, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels_bgr[:, :, ::-1]))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def phone_photo(faces_dir: Path) -> bytes:
    """A real 4352×2903 camera JPEG (wild/deepface/img49.jpg): large enough to be decoded at half size."""
    return (faces_dir / "wild" / "deepface" / "img49.jpg").read_bytes()


def _match(engine: FaceEngine, data: bytes, min_cosine: float = 0.99) -> tuple[Any, list[Any]]:
    stages: list[str] = []
    analysis = engine.analyse_encoded(data, on_stage=stages.append)
    assert stages == [STAGE_DECODING, STAGE_DETECTING, STAGE_ENCODING]
    full = engine.analyse(decode_image(data))
    assert len(analysis.faces) == len(full) >= 1
    for reference in full:
        face = max(analysis.faces, key=lambda f: _iou(f.box, reference.box))
        assert _iou(face.box, reference.box) >= 0.9
        assert float(face.template @ reference.template) >= min_cosine
    return analysis, full


def test_a_large_jpeg_is_detected_at_reduced_scale_with_the_faces_of_a_full_decode(
    engine: FaceEngine, phone_photo: bytes
) -> None:
    analysis, _ = _match(engine, phone_photo)
    assert analysis.detect_factor == 2 and analysis.align_factors == (2,)
    assert (analysis.width, analysis.height) == (4352, 2903)


def test_small_faces_in_a_large_image_are_aligned_from_a_finer_decode(engine: FaceEngine, faces_dir: Path) -> None:
    group = cv2.imread(str(faces_dir / "wild" / "insightface" / "t1.jpg"))  # six faces, eyes about 45 px apart
    assert group is not None
    canvas = np.full((3000, 4600, 3), 128, np.uint8)
    canvas[900 : 900 + group.shape[0], 1500 : 1500 + group.shape[1]] = group
    # Eyes 45 px apart: the detector, seeing a differently resampled copy, places the landmarks up to a pixel
    # apart, which moves a small face's template about as much as the full-size path's own noise does (the
    # same photo pasted one pixel further right: cosine down to 0.95 against itself; measured 0.98 here).
    analysis, _ = _match(engine, _jpeg(canvas), min_cosine=0.97)
    assert analysis.detect_factor == 2 and analysis.align_factors == (1,)
    assert len(analysis.faces) == 6


def test_reduced_decoding_applies_exif_orientation_and_refuses_truncated_files(faces_dir: Path) -> None:
    upright = cv2.imread(str(faces_dir / "wild" / "insightface" / "t1.jpg"))  # 1280×886
    assert upright is not None
    stored_sideways = _jpeg(cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE), orientation=6)
    decoded = decode_image_reduced(stored_sideways, reduce_to=500)
    assert decoded.factor == 2 and (decoded.full_width, decoded.full_height) == (1280, 886)
    assert decoded.pixels.shape == (443, 640, 3)
    reference = cv2.resize(upright, (640, 443), interpolation=cv2.INTER_AREA)
    assert float(np.abs(decoded.pixels.astype(np.float32) - reference).mean()) < 6.0
    # A point maps back to the full image's pixel centres.
    assert decoded.to_full(np.array([[0.0, 0.0]])).tolist() == [[0.5, 0.5]]
    with pytest.raises(CorruptImage):
        decode_image_reduced(stored_sideways[: len(stored_sideways) // 2], reduce_to=1)


@pytest.mark.django_db
def test_a_large_probe_uploads_with_progress_stages_and_shows_a_display_copy(
    case: Case, people: dict[str, Any], phone_photo: bytes, run_on_commit: Any
) -> None:
    investigator = Client()
    investigator.force_login(people["investigator"])
    response = run_on_commit(
        lambda: investigator.post(
            f"/cases/{case.pk}/workbench/upload/",
            {"images": [SimpleUploadedFile("img49.jpg", phone_photo)], "source": "cctv", "lawfully_held": "on"},
            HTTP_X_REQUESTED_WITH="XMLHttpRequest",  # as static/js/upload.js sends it
        )
    )
    probe = Probe.objects.get(case=case)
    assert response.status_code == 200 and response.json() == {"location": f"/probes/{probe.pk}/"}
    assert probe.status == Probe.Status.DONE and probe.progress == 100
    assert (probe.width, probe.height) == (4352, 2903) and probe.faces.count() >= 1

    # While it runs, the polled status names the stage.
    Probe.objects.filter(pk=probe.pk).update(status=Probe.Status.PROCESSING, progress=25)
    status = investigator.get(f"/probes/{probe.pk}/status.json").json()
    assert status["stage"] == "detecting" and status["status_text"] == "Looking for faces"
    assert client_for(people["investigator"]).get(f"/api/probes/{probe.pk}/").json()["stage"] == "detecting"
    Probe.objects.filter(pk=probe.pk).update(status=Probe.Status.DONE, progress=100)

    page = investigator.get(f"/probes/{probe.pk}/").content.decode()
    assert f'src="/probes/{probe.pk}/display"' in page and "download the original" in page
    shown = investigator.get(f"/probes/{probe.pk}/display")
    assert shown["Content-Type"] == "image/jpeg"
    copy = cv2.imdecode(np.frombuffer(shown.content, np.uint8), cv2.IMREAD_COLOR)
    assert copy is not None
    assert copy.shape[1] == DISPLAY_MAX_SIDE and abs(copy.shape[0] - 2903 * DISPLAY_MAX_SIDE / 4352) <= 1
    event = AuditEvent.objects.filter(action="probe.image_viewed").latest("pk")
    assert event.detail["shown"] == "display_copy"
    original = investigator.get(f"/probes/{probe.pk}/image")
    assert hashlib.sha256(original.getvalue()).hexdigest() == probe.sha256

    outsider = Client()
    outsider.force_login(people["outsider"])
    assert outsider.get(f"/probes/{probe.pk}/display").status_code == 404
