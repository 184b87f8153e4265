"""The face engine on the real default pack and real photos."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceengine import (
    AbsurdDimensions,
    CorruptImage,
    DecompressionBomb,
    EmptyImage,
    ImageLimits,
    ImageTooLarge,
    UnsupportedImageType,
    decode_image,
    decode_image_file,
)
from faceengine.align import ARCFACE_TEMPLATE_112, similarity_transform
from faceengine.engine import FaceEngine
from faceengine.packs import default_manifest

OPERATING_THRESHOLD = default_manifest()["default_threshold"]


def _jpeg_bytes(image_bgr: np.ndarray, exif_orientation: int | None = None) -> bytes:
    image = Image.fromarray(image_bgr[:, :, ::-1].copy())
    buffer = io.BytesIO()
    if exif_orientation is None:
        image.save(buffer, "JPEG", quality=95)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


# -- detection ------------------------------------------------------------------------------------------


def test_every_face_in_the_insightface_group_photo_is_found(engine: FaceEngine, insightface_images: Path) -> None:
    image = decode_image_file(insightface_images / "t1.jpg")
    faces = engine.detect(image)
    assert len(faces) == 6
    for face in faces:
        x, y, w, h = face.box
        # each face's landmarks lie inside its own box
        assert np.all(face.landmarks[:, 0] >= x - 2) and np.all(face.landmarks[:, 0] <= x + w + 2)
        assert np.all(face.landmarks[:, 1] >= y - 2) and np.all(face.landmarks[:, 1] <= y + h + 2)
        assert face.score > 0.6


@pytest.mark.parametrize(
    ("relative_path", "expected"),
    [
        ("wild/insightface/t1.jpg", 6),
        ("wild/deepface/couple.jpg", 2),
        ("wild/face_recognition/examples/two_people.jpg", 2),
        # the README says two people, but a girl at the lower right is a third face
        ("wild/face_recognition/examples/knn_examples/test/obama_and_biden.jpg", 3),
        ("wild/face_recognition/examples/knn_examples/test/kit_with_rose.jpg", 2),
    ],
)
def test_every_face_in_the_shared_group_photos_is_found(
    engine: FaceEngine, faces_dir: Path, relative_path: str, expected: int
) -> None:
    faces = engine.detect(decode_image_file(faces_dir / relative_path))
    confident = [f for f in faces if f.score >= 0.8]
    # every real face is found with confidence; a stray low-score detection (a hand) is tolerated
    assert len(confident) == expected


def test_an_aligned_crop_puts_the_landmarks_on_the_template(engine: FaceEngine, insightface_images: Path) -> None:
    image = decode_image_file(insightface_images / "t1.jpg")
    face = engine.detect(image)[0]
    matrix = similarity_transform(face.landmarks, ARCFACE_TEMPLATE_112)
    mapped = np.hstack([face.landmarks, np.ones((5, 1))]) @ matrix.T
    # a similarity cannot fit five points exactly, but a frontal face lands within a few pixels of each
    assert np.abs(mapped - ARCFACE_TEMPLATE_112).max() < 6.0


def test_a_tight_aligned_crop_is_still_found_through_the_padded_retry(
    engine: FaceEngine, insightface_images: Path
) -> None:
    image = decode_image_file(insightface_images / "Tom_Hanks_54745.png")  # 112×112 aligned crop
    assert image.shape[:2] == (112, 112)
    faces = engine.detect(image)
    assert len(faces) == 1
    assert engine.primary_face(image) is not None


def test_quality_flags_a_small_face_and_not_a_large_one(engine: FaceEngine, insightface_images: Path) -> None:
    image = decode_image_file(insightface_images / "t1.jpg")
    face = engine.analyse(image)[0]
    assert face.quality.landmark_span_px > 20
    assert face.quality.detector_score == pytest.approx(face.score)
    small = engine.analyse(image[::6, ::6].copy())
    assert small, "a 1/6-scale copy of the group photo still has faces"
    assert any(w in small[0].quality.warnings for w in ("small", "very_small"))


# -- templates --------------------------------------------------------------------------------------------


def test_templates_are_unit_length_and_batch_independent(engine: FaceEngine, insightface_images: Path) -> None:
    image = decode_image_file(insightface_images / "t1.jpg")
    crops = engine.align(image, engine.detect(image))
    together = engine.embed(crops)
    one_by_one = np.concatenate([engine.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert together.shape == (6, engine.pack.embedding_dim)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, one_by_one, atol=1e-4)
    # six different people: every pair scores far below a same-person score (typically 0.6-0.9); people in
    # one photo share light and camera, so the closest pair can sit near the operating threshold
    similarity = together @ together.T
    assert similarity[~np.eye(6, dtype=bool)].max() < 0.45


def test_an_exif_rotated_copy_gives_the_same_template(engine: FaceEngine, faces_dir: Path) -> None:
    image = (
        decode_image_file(faces_dir / "celeba" / "images" / "4" / "001394.jpg")
        if (faces_dir / "celeba" / "images" / "4" / "001394.jpg").exists()
        else decode_image_file(sorted((faces_dir / "celeba" / "images").rglob("*.jpg"))[0])
    )
    upright = engine.primary_face(image)
    assert upright is not None
    # Store the pixels rotated 90° clockwise with EXIF orientation 8 (rotate 90° counter-clockwise to view).
    rotated_pixels = np.ascontiguousarray(np.rot90(image, k=-1))
    restored = decode_image(_jpeg_bytes(rotated_pixels, exif_orientation=8))
    assert restored.shape == image.shape
    rotated = engine.primary_face(restored)
    assert rotated is not None
    assert float(upright.template @ rotated.template) >= 0.99
    # without honouring EXIF the face would be sideways: the decoder must not return the raw pixels
    assert decode_image(_jpeg_bytes(rotated_pixels)).shape != image.shape


def test_same_person_pairs_score_above_and_different_below_the_threshold(engine: FaceEngine, faces_dir: Path) -> None:
    with (faces_dir / "lfw" / "pairs.csv").open() as handle:
        pairs = list(csv.DictReader(handle))
    rng = random.Random(20261126)
    sample = rng.sample([p for p in pairs if p["same"] == "1"], 20) + rng.sample(
        [p for p in pairs if p["same"] == "0"], 20
    )
    correct = 0
    for pair in sample:
        left = engine.primary_face(decode_image_file(faces_dir / "lfw" / "images" / pair["left"]))
        right = engine.primary_face(decode_image_file(faces_dir / "lfw" / "images" / pair["right"]))
        assert left is not None and right is not None
        score = float(left.template @ right.template)
        correct += (score >= OPERATING_THRESHOLD) == (pair["same"] == "1")
    # the pack scores ~99% on all 1,682 pairs; a random sample of 40 may hold one hard pair
    assert correct >= 39


# -- bad input --------------------------------------------------------------------------------------------


def test_an_empty_file_is_rejected() -> None:
    with pytest.raises(EmptyImage):
        decode_image(b"")


def test_a_non_image_is_rejected() -> None:
    with pytest.raises(UnsupportedImageType) as info:
        decode_image(b"%PDF-1.7\n" + b"x" * 2000)
    assert "JPEG, PNG, WebP, BMP or TIFF" in info.value.message


def test_an_image_format_outside_the_accepted_list_is_rejected() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, "GIF")
    with pytest.raises(UnsupportedImageType):
        decode_image(buffer.getvalue())


def test_a_truncated_jpeg_is_rejected(insightface_images: Path) -> None:
    data = (insightface_images / "t1.jpg").read_bytes()
    with pytest.raises(CorruptImage):
        decode_image(data[: len(data) // 2])


def test_a_decompression_bomb_is_rejected_before_decoding() -> None:
    # A 20000×20000 PNG of one colour compresses to a few hundred KB but would need 1.2 GB decoded.
    buffer = io.BytesIO()
    Image.new("L", (15000, 15000), 0).save(buffer, "PNG", optimize=False, compress_level=9)
    with pytest.raises(DecompressionBomb):
        decode_image(buffer.getvalue(), ImageLimits(max_pixels=60_000_000, max_side=16_384))


def test_absurd_dimensions_are_rejected() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (20000, 8), 0).save(buffer, "PNG")
    with pytest.raises(AbsurdDimensions):
        decode_image(buffer.getvalue())
    tiny = io.BytesIO()
    Image.new("RGB", (4, 4), 0).save(tiny, "PNG")
    with pytest.raises(AbsurdDimensions):
        decode_image(tiny.getvalue())


def test_an_oversized_file_is_rejected_without_decoding(insightface_images: Path) -> None:
    data = (insightface_images / "t1.jpg").read_bytes()
    with pytest.raises(ImageTooLarge):
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF"])
def test_each_accepted_format_decodes_to_the_same_faces(engine: FaceEngine, insightface_images: Path, fmt: str) -> None:
    image = decode_image_file(insightface_images / "t1.jpg")
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, ::-1].copy()).save(buffer, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    decoded = decode_image(buffer.getvalue())
    assert np.array_equal(decoded, image)
    assert len(engine.detect(decoded)) == 6


def test_a_png_with_alpha_decodes_onto_white(faces_dir: Path) -> None:
    image = decode_image_file(faces_dir / "wild" / "face_recognition" / "tests" / "test_images" / "32bit.png")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


def test_yaw_and_roll_follow_the_landmarks() -> None:
    from faceengine.align import ARCFACE_TEMPLATE_112
    from faceengine.quality import assess_quality

    crop = np.full((112, 112, 3), 128, np.uint8)
    frontal = assess_quality(ARCFACE_TEMPLATE_112 * 2, crop, 0.95)
    assert abs(frontal.yaw_deg) < 5 and abs(frontal.roll_deg) < 2
    assert frontal.inter_eye_px == pytest.approx(2 * (73.5318 - 38.2946), abs=0.5)
    turned = ARCFACE_TEMPLATE_112 * 2
    turned[2, 0] += 30  # nose tip well towards one eye: head turned
    assert assess_quality(turned, crop, 0.95).yaw_deg > 25
    assert "turned_away" in assess_quality(turned, crop, 0.95).warnings
    angle = np.radians(40)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = assess_quality(ARCFACE_TEMPLATE_112 @ rotation.T, crop, 0.95)
    assert tilted.roll_deg == pytest.approx(40, abs=1)
    assert "tilted" in tilted.warnings
    assert "blurred" in frontal.warnings  # a flat grey crop has no detail at all
