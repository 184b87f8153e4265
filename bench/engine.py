"""Face-engine throughput, stage by stage, next to the raw ONNX sessions on the same inputs.

    .venv/bin/python -m bench.engine [--images 96] [--threads 0] [--repeat 3]

Prints a table. "Raw" rows run only the network (onnxruntime or cv2.dnn) on tensors prepared beforehand;
the engine rows include everything the engine adds (letterbox and decoding in detection, warping, tensor
preparation, normalisation, flip-averaging bookkeeping). The ratio raw time / engine time is the share of
raw speed the engine keeps. Templates are compared to the onnxruntime reference by cosine similarity.
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

from faceengine.align import align_face
from faceengine.engine import FaceEngine, primary_face_index
from faceengine.imageio import decode_image_file
from faceengine.packs import load_pack
from faceengine.recogniser import dynamic_batch_model, l2_normalise, to_input_tensor

ROOT = Path(__file__).resolve().parent.parent


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


def _letterbox(image: np.ndarray, size: int = 640) -> np.ndarray:
    scale = size / max(image.shape[:2])
    resized = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    pack = load_pack(_pack_dir())
    threads = args.threads or os.cpu_count() or 1
    paths = _bench_images(args.images)
    images = [decode_image_file(p) for p in paths]
    boxed = [_letterbox(img) for img in images]  # the detector ONNX graph is fixed at 640×640

    engines = {name: FaceEngine(pack, threads=threads, recogniser_backend=name) for name in ("onnxruntime", "opencv")}
    engine = engines["onnxruntime"]
    detections = [engine.detect(img) for img in images]
    crops = np.stack(
        [
            align_face(img, faces[primary_face_index(faces, img.shape) or 0].landmarks)
            for img, faces in zip(images, detections, strict=True)
            if faces
        ]
    )
    with_flips = np.concatenate([crops, crops[:, :, ::-1]])
    n_faces = sum(len(f) for f in detections)

    rows: list[tuple[str, str, float, float]] = []  # stage, runtime, seconds, items

    # ---- raw sessions -------------------------------------------------------------------------------
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    det_ort = ort.InferenceSession(str(pack.file_path(pack.detector)), options, providers=["CPUExecutionProvider"])
    det_blobs = [np.ascontiguousarray(b.transpose(2, 0, 1)[None].astype(np.float32)) for b in boxed]
    rows.append(
        (
            "detect 640×640, raw",
            "onnxruntime",
            _time(lambda: [det_ort.run(None, {"input": b}) for b in det_blobs], args.repeat),
            len(boxed),
        )
    )
    det_cv = cv2.dnn.readNet(str(pack.file_path(pack.detector)))
    out_names = det_cv.getUnconnectedOutLayersNames()

    def raw_cv_detect() -> None:
        for blob in det_blobs:
            det_cv.setInput(blob)
            det_cv.forward(out_names)

    rows.append(("detect 640×640, raw", "cv2.dnn", _time(raw_cv_detect, args.repeat), len(boxed)))
    rows.append(
        (
            "detect 640×640, engine",
            "cv2 FaceDetectorYN",
            _time(lambda: [engine.detector.detect(b, pad_retry=False) for b in boxed], args.repeat),
            len(boxed),
        )
    )

    tensor = to_input_tensor(with_flips, rgb=True, mean=0.0, scale=1.0)
    rec_ort_fixed = ort.InferenceSession(
        str(pack.file_path(pack.recogniser)), options, providers=["CPUExecutionProvider"]
    )
    rec_ort_dyn = ort.InferenceSession(
        dynamic_batch_model(pack.file_path(pack.recogniser)), options, providers=["CPUExecutionProvider"]
    )
    rows.append(
        (
            "embed batch 1, raw",
            "onnxruntime",
            _time(
                lambda: [rec_ort_fixed.run(None, {"data": tensor[i : i + 1]}) for i in range(len(tensor))], args.repeat
            ),
            len(tensor),
        )
    )
    rows.append(
        (
            "embed batch 32, raw",
            "onnxruntime",
            _time(
                lambda: [rec_ort_dyn.run(None, {"data": tensor[i : i + 32]}) for i in range(0, len(tensor), 32)],
                args.repeat,
            ),
            len(tensor),
        )
    )
    rec_cv = cv2.dnn.readNetFromONNX(str(pack.file_path(pack.recogniser)))

    def raw_cv_embed(batch: int) -> None:
        for i in range(0, len(tensor), batch):
            rec_cv.setInput(tensor[i : i + batch])
            rec_cv.forward()

    rows.append(("embed batch 1, raw", "cv2.dnn", _time(lambda: raw_cv_embed(1), args.repeat), len(tensor)))
    rows.append(("embed batch 32, raw", "cv2.dnn", _time(lambda: raw_cv_embed(32), args.repeat), len(tensor)))

    # ---- engine stages ------------------------------------------------------------------------------
    for name, eng in engines.items():
        saved = eng.batch_size
        for batch in (1, 32):
            eng.batch_size = batch * 2  # flip-averaging sends each crop and its mirror in one batch
            rows.append(
                (
                    f"embed batch {batch}, engine (flip pairs)",
                    name,
                    _time(functools.partial(eng.embed, crops), args.repeat),
                    len(tensor),
                )
            )
        eng.batch_size = saved
    rows.append(("decode", "Pillow", _time(lambda: [decode_image_file(p) for p in paths], args.repeat), len(paths)))
    rows.append(
        (
            "detect (native size)",
            "cv2 FaceDetectorYN",
            _time(lambda: [engine.detect(i) for i in images], args.repeat),
            len(images),
        )
    )
    rows.append(
        (
            "align",
            "cv2.warpAffine",
            _time(lambda: [engine.align(i, f) for i, f in zip(images, detections, strict=True)], args.repeat),
            n_faces,
        )
    )
    end_to_end = _time(lambda: engine.analyse_many([decode_image_file(p) for p in paths]), args.repeat)

    # ---- template agreement -------------------------------------------------------------------------
    sample = with_flips[:64]
    reference = l2_normalise(
        np.concatenate([rec_ort_fixed.run(None, {"data": tensor[i : i + 1]})[0] for i in range(len(sample))])
    )
    cosines = {
        name: float((l2_normalise(eng.recogniser.embed(sample)) * reference).sum(axis=1).min())
        for name, eng in engines.items()
    }
    _report(rows, cosines, end_to_end, len(paths), n_faces, pack.key, threads, args.repeat, len(images), len(tensor))


def _report(
    rows: list[tuple[str, str, float, float]],
    cosines: dict[str, float],
    end_to_end: float,
    n_images: int,
    n_faces: int,
    pack_key: str,
    threads: int,
    repeat: int,
    n_detect: int,
    n_embed: int,
) -> None:
    header = f"rfr bench/engine — pack {pack_key}, {threads} thread(s), {n_images} images, {n_faces} faces"
    print(f"\n{header}, best of {repeat}")
    print(f"{'stage':<38} {'runtime':<20} {'ms/item':>9} {'items/s':>9}")
    for stage, runtime, seconds, items in rows:
        print(f"{stage:<38} {runtime:<20} {1000 * seconds / items:>9.2f} {items / seconds:>9.1f}")
    per_image = 1000 * end_to_end / n_images
    print(
        f"{'end to end (decode→template)':<38} {'engine':<20} {per_image:>9.2f} {n_images / end_to_end:>9.1f}"
        f"  images/s; {n_faces / end_to_end:.1f} faces/s"
    )

    def find(stage: str, runtime: str) -> float:
        return next(s / n for st, rt, s, n in rows if st == stage and rt == runtime)

    print("\nEngine share of raw speed (raw time ÷ engine time; 1.00 = no overhead):")
    det_raw = min(find("detect 640×640, raw", "onnxruntime"), find("detect 640×640, raw", "cv2.dnn"))
    det_engine = find("detect 640×640, engine", "cv2 FaceDetectorYN")
    print(f"  detection 640×640: {det_raw / det_engine:.2f} of the faster raw runtime")
    for batch in (1, 32):
        raw_best = min(find(f"embed batch {batch}, raw", "onnxruntime"), find(f"embed batch {batch}, raw", "cv2.dnn"))
        for name in cosines:
            share = raw_best / find(f"embed batch {batch}, engine (flip pairs)", name)
            print(f"  embedding batch {batch:>2}, {name:<11}: {share:.2f} of the faster raw runtime")
    pipeline_raw = det_raw * n_detect + find("embed batch 32, raw", "onnxruntime") * n_embed
    pipeline_engine = det_engine * n_detect + find("embed batch 32, engine (flip pairs)", "onnxruntime") * n_embed
    print(f"  detect + embed (batch 32), onnxruntime recogniser: {pipeline_raw / pipeline_engine:.2f}")
    print("\nTemplate agreement with the raw onnxruntime session (minimum cosine over 64 crops):")
    for name, cosine in cosines.items():
        print(f"  {name:<11}: {cosine:.6f}")


if __name__ == "__main__":
    main()
