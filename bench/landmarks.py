"""How much a manually marked face depends on where the points are placed.

    .venv/bin/python -m bench.landmarks [--images 150] [--json]

For CelebA photos (../shared/data/faces/celeba), the reference is the template of the face the detector finds
on the clean photo. The photo is then made small the way the issue's degraded pairs are (area-averaging
resize to an inter-eye distance of N px, Gaussian blur σ 0.8 px, JPEG quality 35; "clean" = untouched), and
the face is encoded four ways: as the detector finds it there (if it does), and from five hand-placed points
(FaceEngine.analyse_landmarks) placed exactly where the detector put them on the clean photo, scaled
("true"), and with every coordinate off by up to 1 and up to 2 px (uniform, fixed seed), as a careful
person's clicks might be. Each cell is the mean cosine to the reference, with the share of faces at or above
the operating threshold 0.30 in brackets; "found" is the share the detector finds at that size, and its
"detected" cell averages over those found only.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np

from faceengine.engine import FaceEngine, primary_face_index
from faceengine.imageio import decode_image_file
from faceengine.packs import load_pack

ROOT = Path(__file__).resolve().parent.parent
SIZES: list[float | None] = [None, 32.0, 20.0, 12.0]
JITTERS = (1.0, 2.0)
THRESHOLD = 0.30


def _faces_dir() -> Path:
    return Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")


def _pack_dir() -> Path:
    base = Path(os.environ.get("RFR_MODEL_PACK_DIR") or ROOT / "var" / "modelpacks")
    return base / os.environ.get("RFR_MODEL_PACK", "opencv-yunet2023mar-sface2021dec")


def _degrade(image: np.ndarray, scale: float) -> np.ndarray:
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.8)
    ok, buffer = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 35])
    assert ok
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    assert decoded is not None
    return np.asarray(decoded)


def measure(engine: FaceEngine, paths: list[Path]) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(10)
    cells: dict[str, dict[str, list[float]]] = {}
    for path in paths:
        image = decode_image_file(path)
        faces = engine.detect(image)
        index = primary_face_index(faces, image.shape)
        if index is None:
            continue
        face = faces[index]
        reference = engine.analyse(image, faces=[face])[0]
        inter_eye = reference.quality.inter_eye_px
        for size in SIZES:
            if size is not None and size >= inter_eye:
                continue
            scale = 1.0 if size is None else size / inter_eye
            shown = image if size is None else _degrade(image, scale)
            # Pixel centres: x_small = (x + 0.5) * scale - 0.5.
            true = (face.landmarks.astype(np.float64) + 0.5) * scale - 0.5
            row = cells.setdefault("clean" if size is None else f"{size:g} px", {})
            detected = engine.detect(shown)
            found = primary_face_index(detected, shown.shape)
            row.setdefault("found", []).append(float(found is not None))
            if found is not None:
                template = engine.analyse(shown, faces=[detected[found]])[0].template
                row.setdefault("detected", []).append(float(template @ reference.template))
            marked = {"true": true} | {f"±{j:g} px": true + rng.uniform(-j, j, true.shape) for j in JITTERS}
            for name, points in marked.items():
                template = engine.analyse_landmarks(shown, points).template
                row.setdefault(name, []).append(float(template @ reference.template))
    return {
        size: {
            **{f"{k} mean": round(float(np.mean(v)), 3) for k, v in row.items()},
            **{
                f"{k} ≥{THRESHOLD}": round(float(np.mean(np.array(v) >= THRESHOLD)), 3)
                for k, v in row.items()
                if k != "found"
            },
            "faces": len(row["found"]),
        }
        for size, row in cells.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    engine = FaceEngine(load_pack(_pack_dir()), threads=1)
    paths = sorted((_faces_dir() / "celeba" / "images").rglob("*.jpg"))[: args.images]
    table = measure(engine, paths)
    if args.json:
        print(json.dumps(table, indent=2, ensure_ascii=False))
        return
    columns = ["detected", "true", *[f"±{j:g} px" for j in JITTERS]]
    print(f"{'size':>7} {'faces':>5} {'found':>6} " + " ".join(f"{c:>14}" for c in columns))
    for size, row in table.items():
        cells = [
            f"{row[f'{c} mean']:.3f} ({row[f'{c} ≥{THRESHOLD}']:.0%})" if f"{c} mean" in row else "-" for c in columns
        ]
        print(f"{size:>7} {row['faces']:>5} {row['found mean']:>6.0%} " + " ".join(f"{c:>14}" for c in cells))


if __name__ == "__main__":
    main()
