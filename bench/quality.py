"""Same-person scores by face size: where the quality warnings' thresholds come from (docs/evaluation.md).

    .venv/bin/python -m bench.quality [--pairs 150] [--ied 8,10,12,16,20,24,32,40]

For LFW genuine pairs (folds 1–3, the first --pairs of them in file order), the left image stays clean and
the right one is degraded as `evaluate verification --degrade ied=N` does (area-averaging shrink to N px
between the eyes, blur σ 0.8, JPEG 35). Printed per N: the share of right images with a face found, and the
median and lower quartile of the same-person score, failures to enrol counted as -1. The smallest N whose
median stays at or above the operating threshold (RFR_DEFAULT_THRESHOLD, 0.30) is where "very small"
starts; "small" is where the lower quartile drops below it.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np

from faceengine.engine import get_engine
from faceengine.evaluation.degrade import Degradation, degrade_image, inter_eye_distance
from faceengine.imageio import decode_image_file

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--ied", default="8,10,12,16,20,24,32,40")
    args = parser.parse_args()
    faces = Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces") / "lfw"
    pack = Path(os.environ.get("RFR_MODEL_PACK_DIR") or ROOT / "var" / "modelpacks")
    engine = get_engine(pack / os.environ.get("RFR_MODEL_PACK", "opencv-yunet2023mar-sface2021dec"))
    with (faces / "pairs.csv").open() as handle:
        pairs = [row for row in csv.DictReader(handle) if row["same"] == "1"][: args.pairs]
    levels = [float(v) for v in args.ied.split(",")]
    scores: dict[float, list[float]] = {level: [] for level in levels}
    for row in pairs:
        left = engine.primary_face(decode_image_file(faces / "images" / row["left"]))
        image = decode_image_file(faces / "images" / row["right"])
        right = engine.primary_face(image)
        if left is None or right is None:
            continue
        for level in levels:
            small = degrade_image(image, face_ied=inter_eye_distance(right.landmarks), degradation=Degradation(level))
            face = engine.primary_face(small)
            scores[level].append(-1.0 if face is None else float(np.dot(left.template, face.template)))
    print(f"LFW genuine pairs, right image degraded (blur 0.8, JPEG 35); pack {engine.pack.key}")
    print(f"{'inter-eye px':>12} {'pairs':>6} {'found':>7} {'median':>7} {'25th pct':>9}")
    for level in levels:
        values = np.array(scores[level])
        found = float((values > -1.0).mean())
        print(
            f"{level:>12g} {len(values):>6} {100 * found:>6.1f}% {np.median(values):>7.3f}"
            f" {np.quantile(values, 0.25):>9.3f}"
        )


if __name__ == "__main__":
    main()
