"""What a recorded enhancement chain does to small, degraded faces: found or not, and how close to the clean face.

    .venv/bin/python -m bench.enhance [--images 300] [--ied 20,12] [--json]

For the first image of each of the first N LFW identities (../shared/data/faces/lfw, or $RFR_FACES_DATA):
the engine finds the face on the clean image (the face nearest the centre), and its inter-eye distance sets
the degradation of issue 10: area-averaging resize so the eyes are IED px apart, Gaussian blur sigma 0.8 px,
JPEG quality 35. The degraded image is analysed as it is and after each chain below (faceengine.enhance, the
same code as the workbench's "Enhance on the record"). Reported per chain: faces found (the detection nearest
the centre), the median cosine of its template to the clean image's template, and how many of the N score at
least the operating threshold (0.30) against their own clean face. Same-person scores only: this says whether
a chain helps find and encode a small face, not what it does to different-person scores.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceengine import get_engine
from faceengine.engine import AnalysedFace
from faceengine.enhance import chain_apply

ROOT = Path(__file__).resolve().parent.parent
PACK = "opencv-yunet2023mar-sface2021dec"
THRESHOLD = 0.30
CHAINS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "resize x2": [{"op": "resize", "params": {"scale": 2}}],
    "resize x4": [{"op": "resize", "params": {"scale": 4}}],
    "resize x4 + unsharp": [
        {"op": "resize", "params": {"scale": 4}},
        {"op": "unsharp", "params": {"sigma": 2, "amount": 0.8}},
    ],
    "resize x2 + CLAHE": [{"op": "resize", "params": {"scale": 2}}, {"op": "clahe", "params": {"clip_limit": 2}}],
}


def _degrade(image: np.ndarray, ied: float, target: float) -> np.ndarray:
    scale = target / ied
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 0.8)
    ok, buffer = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 35])
    decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    assert ok and decoded is not None
    return decoded


def _central(faces: list[AnalysedFace], image: np.ndarray) -> AnalysedFace | None:
    if not faces:
        return None
    height, width = image.shape[:2]
    return min(
        faces,
        key=lambda f: (f.box[0] + f.box[2] / 2 - width / 2) ** 2 + (f.box[1] + f.box[3] / 2 - height / 2) ** 2,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--ied", default="20,12", help="inter-eye distances in px, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    faces_dir = Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")
    paths = sorted((faces_dir / "lfw" / "images").glob("*/*_0001.jpg"))[: args.images]
    pack_dir = Path(os.environ.get("RFR_MODEL_PACK_DIR") or ROOT / "var" / "modelpacks") / PACK
    engine = get_engine(pack_dir, threads=1)
    clean: list[tuple[np.ndarray, AnalysedFace, float]] = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            continue
        face = _central(engine.analyse(image), image)
        if face is not None:
            landmarks = np.asarray(face.landmarks)
            clean.append((image, face, float(np.linalg.norm(landmarks[0] - landmarks[1]))))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for target in (float(v) for v in args.ied.split(",")):
        rows: dict[str, dict[str, Any]] = {}
        for name, chain in CHAINS.items():
            found, scores = 0, []
            for image, face, ied in clean:
                degraded = _degrade(image, ied, target)
                probe = chain_apply(degraded, chain) if chain else degraded
                hit = _central(engine.analyse(probe), probe)
                if hit is not None:
                    found += 1
                    scores.append(float(np.dot(hit.template, face.template)))
            rows[name] = {
                "images": len(clean),
                "found": found,
                "median_cosine_to_clean": round(float(np.median(scores)), 3) if scores else None,
                "at_or_above_threshold": int(np.sum(np.asarray(scores) >= THRESHOLD)),
            }
        results[f"{target:g}"] = rows
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"| IED px | chain | found (of {len(clean)}) | median cosine to clean | same-person score >= {THRESHOLD} |")
    print("|---|---|---|---|---|")
    for ied_label, rows in results.items():
        for name, row in rows.items():
            print(
                f"| {ied_label} | {name} | {row['found']} | {row['median_cosine_to_clean']} |"
                f" {row['at_or_above_threshold']} ({100 * row['at_or_above_threshold'] / row['images']:.0f}%) |"
            )


if __name__ == "__main__":
    main()
