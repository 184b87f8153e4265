"""Face-engine throughput, stage by stage, next to the raw ONNX sessions on the same inputs.

    .venv/bin/python -m bench.engine [--images 96] [--threads 0] [--repeat 3]

"Raw" rows run only the network (onnxruntime or cv2.dnn) on tensors prepared beforehand. "Engine" rows run
the engine's own stage on the same inputs, with everything it adds: padding, output decoding and NMS in
detection; tensor preparation, mirror images and normalisation in embedding. The share printed at the end is
raw time ÷ engine time for the faster raw runtime (1.00 = no overhead). Detection inputs are the bench images
placed on a 640×640 canvas (shrunk, never enlarged), the size the detector graph declares, so both raw
runtimes can run them. Templates of each runtime choice are compared with the reference path (OpenCV's
FaceDetectorYN + the unmodified SFace graph on onnxruntime, one crop at a time) by cosine similarity.

Small faces: the detector's enlarged second pass (faceengine.detector) runs only where the first pass finds
no face or a small one. "Full-size images" compares the chosen detector with the same detector limited to
one pass (the detector before issue 10) on the bench images: the ratio should stay ≥ 0.95. "Small faces"
runs both on the same images shrunk to --small-ied px between the eyes (blur σ 0.8, JPEG 35, as
`evaluate --degrade`), showing what the second pass costs there and how many faces each finds.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from faceengine.detector import DetectedFace
from faceengine.engine import DEFAULT_DETECTOR_BACKEND, DEFAULT_RECOGNISER_BACKEND, FaceEngine, primary_face_index
from faceengine.evaluation.degrade import Degradation, degrade_image, inter_eye_distance
from faceengine.imageio import decode_image_file
from faceengine.packs import ModelPack, load_pack
from faceengine.recogniser import l2_normalise, symbolic_batch, to_input_tensor
from faceengine.runtime import OnnxSession

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("onnxruntime", "opencv")
Row = tuple[str, str, float, int]  # stage, runtime, best seconds, items


def _faces_dir() -> Path:
    return Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")


def _pack_dir() -> Path:
    base = Path(os.environ.get("RFR_MODEL_PACK_DIR") or ROOT / "var" / "modelpacks")
    return base / os.environ.get("RFR_MODEL_PACK", "opencv-yunet2023mar-sface2021dec")


def _bench_images(count: int) -> list[Path]:
    faces = _faces_dir()
    if (faces / "lfw" / "images").is_dir():
        lfw = sorted((faces / "lfw" / "images").rglob("*.jpg"))[: count // 2]
        celeba = sorted((faces / "celeba" / "images").rglob("*.jpg"))[: count - len(lfw)]
        return lfw + celeba
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    assert spec and spec.submodule_search_locations
    images = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return [images / "t1.jpg", images / "Tom_Hanks_54745.png"] * (count // 2)


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-`repeat` wall time in seconds (the least disturbed run on a shared machine)."""
    fn()  # warm-up: first runs allocate and plan
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs)


def _detect_all(engine: FaceEngine, images: list[np.ndarray]) -> None:
    for image in images:
        engine.detect(image)


def _canvas(image: np.ndarray, size: int = 640) -> np.ndarray:
    scale = min(1.0, size / max(image.shape[:2]))
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def _raw_sessions(pack: ModelPack, threads: int) -> dict[str, object]:
    detector, recogniser = pack.file_path(pack.detector), pack.file_path(pack.recogniser)
    det_cv = cv2.dnn.readNet(str(detector))
    return {
        "det_ort": OnnxSession(detector, threads=threads),
        "det_cv": det_cv,
        "det_cv_outputs": det_cv.getUnconnectedOutLayersNames(),
        "rec_ort_fixed": OnnxSession(recogniser, threads=threads),
        "rec_ort_batch": OnnxSession(recogniser, threads=threads, edit=symbolic_batch),
        "rec_cv": cv2.dnn.readNetFromONNX(str(recogniser)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small-ied", type=float, default=12.0, help="inter-eye px of the small-face images")
    parser.add_argument("--small-faces-only", action="store_true", help="only the small-face rows")
    args = parser.parse_args()

    pack = load_pack(_pack_dir())
    threads = args.threads or os.cpu_count() or 1
    paths = _bench_images(args.images)
    images = [decode_image_file(p) for p in paths]
    if args.small_faces_only:
        chosen_only = FaceEngine(pack, threads=threads)
        found_faces = [chosen_only.detect(img) for img in images]
        firsts = [
            faces[primary_face_index(faces, img.shape) or 0] for img, faces in zip(images, found_faces, strict=True)
        ]
        _report_small(*_small_faces(pack, threads, images, firsts, args.small_ied, args.repeat))
        return
    canvases = [_canvas(img) for img in images]
    engines = {
        (det, rec): FaceEngine(pack, threads=threads, detector_backend=det, recogniser_backend=rec)
        for det in BACKENDS
        for rec in BACKENDS
    }
    reference = engines[("opencv", "onnxruntime")]
    chosen = engines[(DEFAULT_DETECTOR_BACKEND, DEFAULT_RECOGNISER_BACKEND)]
    detections = [reference.detect(img) for img in images]
    primary = [faces[primary_face_index(faces, img.shape) or 0] for img, faces in zip(images, detections, strict=True)]
    crops = reference.align_many(images, primary)
    with_mirrors = np.concatenate([crops, crops[:, :, ::-1]])
    tensor = to_input_tensor(with_mirrors, rgb=True, mean=0.0, scale=1.0)
    n_faces = sum(len(f) for f in detections)
    raw = _raw_sessions(pack, threads)
    rows: list[Row] = []

    blobs = [np.ascontiguousarray(c.transpose(2, 0, 1)[None].astype(np.float32)) for c in canvases]

    def raw_cv_detect() -> None:
        for blob in blobs:
            raw["det_cv"].setInput(blob)  # type: ignore[attr-defined]
            raw["det_cv"].forward(raw["det_cv_outputs"])  # type: ignore[attr-defined]

    def raw_ort_detect() -> None:
        for blob in blobs:
            raw["det_ort"].run(None, {"input": blob})  # type: ignore[attr-defined]

    def raw_embed(batch: int, runtime: str) -> None:
        for i in range(0, len(tensor), batch):
            chunk = tensor[i : i + batch]
            if runtime == "cv2.dnn":
                raw["rec_cv"].setInput(chunk)  # type: ignore[attr-defined]
                raw["rec_cv"].forward()  # type: ignore[attr-defined]
            else:
                session = raw["rec_ort_fixed"] if batch == 1 else raw["rec_ort_batch"]
                session.run(None, {"data": chunk})  # type: ignore[attr-defined]

    def engine_detect(det: str) -> None:
        for canvas in canvases:
            engines[(det, "opencv")].detector.detect(canvas, pad_retry=False)

    def engine_embed(rec: str, batch: int) -> None:
        engine = engines[("opencv", rec)]
        engine.batch_size = 2 * batch  # a crop and its mirror share a batch
        engine.embed(crops)

    rows.append(("detect 640×640, raw", "onnxruntime", _time(raw_ort_detect, args.repeat), len(blobs)))
    rows.append(("detect 640×640, raw", "cv2.dnn", _time(raw_cv_detect, args.repeat), len(blobs)))
    for det in BACKENDS:
        rows.append(
            ("detect 640×640, engine", det, _time(functools.partial(engine_detect, det), args.repeat), len(blobs))
        )
    for batch in (1, 32):
        for runtime in ("onnxruntime", "cv2.dnn"):
            seconds = _time(functools.partial(raw_embed, batch, runtime), args.repeat)
            rows.append((f"embed batch {batch}, raw", runtime, seconds, len(tensor)))
        for rec in BACKENDS:
            seconds = _time(functools.partial(engine_embed, rec, batch), args.repeat)
            rows.append((f"embed batch {batch}, engine", rec, seconds, len(tensor)))
    rows.append(("decode", "Pillow", _time(lambda: [decode_image_file(p) for p in paths], args.repeat), len(paths)))
    rows.append(
        ("detect, native size", "chosen", _time(lambda: [chosen.detect(i) for i in images], args.repeat), len(images))
    )
    rows.append(
        ("align", "cv2.warpAffine", _time(lambda: chosen.align_many(images, primary), args.repeat), len(primary))
    )
    end_to_end = _time(lambda: chosen.analyse_many([decode_image_file(p) for p in paths]), args.repeat)

    small_rows, found, small_label, n_small = _small_faces(pack, threads, images, primary, args.small_ied, args.repeat)
    rows += small_rows

    reference_templates = l2_normalise(
        np.concatenate(
            [raw["rec_ort_fixed"].run(None, {"data": tensor[i : i + 1]})[0] for i in range(len(tensor))]  # type: ignore[attr-defined]
        )
    )
    half = len(crops)
    reference_templates = l2_normalise(reference_templates[:half] + reference_templates[half:])
    agreement = {}
    for (det, rec), engine in engines.items():
        faces = [engine.primary_face(img) for img in images]
        templates = np.stack([f.template for f in faces if f is not None])
        agreement[f"detector {det}, recogniser {rec}"] = float((templates * reference_templates).sum(axis=1).min())
    _report(rows, agreement, end_to_end, len(paths), n_faces, pack.key, threads, args.repeat)
    _report_small(rows, found, small_label, n_small)


def _report(
    rows: list[Row],
    agreement: dict[str, float],
    end_to_end: float,
    n_images: int,
    n_faces: int,
    pack_key: str,
    threads: int,
    repeat: int,
) -> None:
    print(f"\nrfr bench/engine — pack {pack_key}, {threads} thread(s), {n_images} images, {n_faces} faces")
    print(f"(best of {repeat} runs per row)")
    print(f"{'stage':<26} {'runtime':<16} {'ms/item':>9} {'items/s':>9}")
    for stage, runtime, seconds, items in rows:
        print(f"{stage:<26} {runtime:<16} {1000 * seconds / items:>9.2f} {items / seconds:>9.1f}")
    print(
        f"{'end to end, chosen':<26} {'decode→template':<16} {1000 * end_to_end / n_images:>9.2f}"
        f" {n_images / end_to_end:>9.1f} images/s, {n_faces / end_to_end:.1f} faces/s"
    )

    def per_item(stage: str, runtime: str) -> float:
        return next(s / n for st, rt, s, n in rows if st == stage and rt == runtime)

    print("\nEngine share of the faster raw runtime (raw time ÷ engine time; 1.00 = no overhead):")
    det_raw = min(per_item("detect 640×640, raw", r) for r in ("onnxruntime", "cv2.dnn"))
    for det in BACKENDS:
        print(f"  detection,        engine on {det:<11}: {det_raw / per_item('detect 640×640, engine', det):.2f}")
    for batch in (1, 32):
        raw_best = min(per_item(f"embed batch {batch}, raw", r) for r in ("onnxruntime", "cv2.dnn"))
        for rec in BACKENDS:
            share = raw_best / per_item(f"embed batch {batch}, engine", rec)
            print(f"  embed batch {batch:>2},   engine on {rec:<11}: {share:.2f}")
    chosen_time = per_item("detect 640×640, engine", DEFAULT_DETECTOR_BACKEND) + 2 * per_item(
        "embed batch 32, engine", DEFAULT_RECOGNISER_BACKEND
    )
    raw_time = det_raw + 2 * min(per_item("embed batch 32, raw", r) for r in ("onnxruntime", "cv2.dnn"))
    print(
        f"  detect + embed, chosen (detector {DEFAULT_DETECTOR_BACKEND}, recogniser {DEFAULT_RECOGNISER_BACKEND}):"
        f" {raw_time / chosen_time:.2f}"
    )
    print("\nTemplates against the reference path (minimum cosine over all bench faces):")
    for name, cosine in agreement.items():
        print(f"  {name:<44} {cosine:.6f}")


def _small_faces(
    pack: ModelPack, threads: int, images: list[np.ndarray], primary: list[DetectedFace], ied: float, repeat: int
) -> tuple[list[Row], dict[str, int], str, int]:
    """Detection on full-size images and on the same images shrunk so the eyes are `ied` px apart, by the
    chosen engine and by the same engine limited to one detector pass."""
    rows: list[Row] = []
    chosen = FaceEngine(pack, threads=threads)
    one_pass = FaceEngine(pack, threads=threads)
    one_pass.detector.upscale = 1.0  # no enlarged second pass: the detector as it was before issue 10
    small_images = [
        degrade_image(img, face_ied=inter_eye_distance(face.landmarks), degradation=Degradation(ied=ied))
        for img, face in zip(images, primary, strict=True)
    ]
    small_label = f"detect, {ied:g} px faces"
    pair = (("one pass", one_pass), ("chosen", chosen))
    for label, inputs in (("detect, full-size images", images), (small_label, small_images)):
        # Alternating runs, best of `repeat` each: a shared machine's load then weighs on both alike.
        best = {name: float("inf") for name, _ in pair}
        for _ in range(repeat + 1):
            for name, det_engine in pair:
                start = time.perf_counter()
                _detect_all(det_engine, inputs)
                best[name] = min(best[name], time.perf_counter() - start)
        rows.extend((label, name, best[name], len(inputs)) for name, _ in pair)
    found = {name: sum(1 for img in small_images if e.detect(img)) for name, e in pair}
    return rows, found, small_label, len(small_images)


def _report_small(rows: list[Row], found: dict[str, int], small_label: str, n_small: int) -> None:
    def per_item(stage: str, runtime: str) -> float:
        return next(s / n for st, rt, s, n in rows if st == stage and rt == runtime)

    full = per_item("detect, full-size images", "one pass") / per_item("detect, full-size images", "chosen")
    small = per_item(small_label, "chosen") / per_item(small_label, "one pass")
    print("\nSmall faces (enlarged second pass where the first finds no face or a small one):")
    print(
        f"  full-size images, one pass ÷ chosen (≥ 0.95 = no slower): {full:.2f}"
        f" ({1000 * per_item('detect, full-size images', 'one pass'):.1f} vs"
        f" {1000 * per_item('detect, full-size images', 'chosen'):.1f} ms/image)"
    )
    print(
        f"  {small_label[8:]}: chosen takes {small:.2f}× one pass"
        f" ({1000 * per_item(small_label, 'chosen'):.1f} vs {1000 * per_item(small_label, 'one pass'):.1f} ms/image);"
        f" faces found in {found['chosen']} vs {found['one pass']} of {n_small} images"
    )


if __name__ == "__main__":
    main()
