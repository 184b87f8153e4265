"""Probe processing latency: "upload to faces shown" for a large JPEG and ordinary photos, stage by stage.

    .venv/bin/python -m bench.probes [--runs 3] [--json] [--image PATH ...]

Default images: a 7500×5000 quality-90 JPEG made once from the insightface group photo (wild/insightface/t1.jpg,
six faces, upscaled; cached as var/bench/large-7500x5000.jpg), a 4352×2903 phone photo
(wild/deepface/img49.jpg) and the 1280×886 group photo itself.

For each image, median of --runs warm runs (ms):
* engine, full decode    what processing did before reduced decoding: `decode_image` at full size, then
                         `FaceEngine.analyse` (detect, align, embed) on it
* engine, reduced        `FaceEngine.analyse_encoded` as processing runs it now, split by its stages: decode
                         (JPEG DCT scaling to the detector's working size), detect, encode (align from that
                         decode or a finer one, embed)
* upload → faces shown   through the real views with Django's test Client in the embedded shape (SQLite,
                         Celery eager, so processing runs inside the upload request): the upload as
                         static/js/upload.js posts it, the probe page, and the image the page shows (the
                         display copy for a large image); the "total" is the sum, the figure the ≤ 2 s target is
                         about. Network transfer and the browser's own decoding are not included.
Runs in var/bench/workbench/embedded (bench.workbench's embedded set-up); never touches the development data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LARGE = ROOT / "var" / "bench" / "large-7500x5000.jpg"
TARGET_S = 2.0


def large_jpeg(faces_dir: Path) -> Path:
    """The 7500×5000 quality-90 JPEG, made once from the insightface group photo."""
    import cv2

    if not LARGE.is_file():
        source = cv2.imread(str(faces_dir / "wild" / "insightface" / "t1.jpg"))
        assert source is not None, "wild/insightface/t1.jpg is needed to make the large JPEG"
        big = cv2.resize(source, (7500, 5191), interpolation=cv2.INTER_CUBIC)[95:5095]
        LARGE.parent.mkdir(parents=True, exist_ok=True)
        ok, buffer = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        LARGE.write_bytes(buffer.tobytes())
    return LARGE


def _engine_runs(engine: Any, data: bytes, runs: int) -> dict[str, float]:
    from faceengine import decode_image
    from rfr.engine import image_limits

    rows: dict[str, list[float]] = {}

    def add(key: str, seconds: float) -> None:
        rows.setdefault(key, []).append(seconds * 1000)

    for _ in range(runs):
        started = time.perf_counter()
        image = decode_image(data, image_limits())
        decoded = time.perf_counter()
        full_faces = engine.analyse(image)
        add("full: decode", decoded - started)
        add("full: detect+align+embed", time.perf_counter() - decoded)
        add("full: total", time.perf_counter() - started)
        marks: list[tuple[str, float]] = []

        def mark(stage: str, marks: list[tuple[str, float]] = marks) -> None:
            marks.append((stage, time.perf_counter()))

        started = time.perf_counter()
        analysis = engine.analyse_encoded(data, image_limits(), on_stage=mark)
        ended = time.perf_counter()
        for (stage, at), (_, after) in zip(marks, [*marks[1:], ("end", ended)], strict=True):
            add(f"reduced: {stage}", after - at)
        add("reduced: total", ended - started)
    result = {key: round(statistics.median(values), 1) for key, values in rows.items()}
    result["faces (full decode)"] = len(full_faces)
    result["faces (reduced)"] = len(analysis.faces)
    result["detect factor"] = analysis.detect_factor
    return result


def _upload_runs(client: Any, case_id: int, name: str, data: bytes, runs: int) -> dict[str, float]:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from cases.models import Probe

    rows: dict[str, list[float]] = {}
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post(
            f"/cases/{case_id}/workbench/upload/",
            {
                "images": SimpleUploadedFile(name, data, content_type="image/jpeg"),
                "source": "cctv",
                "lawfully_held": "on",
            },
            HTTP_X_REQUESTED_WITH="XMLHttpRequest",
        )
        uploaded = time.perf_counter()
        # JSON for the page's upload script; a redirect from a version without it (a baseline run).
        assert response.status_code in {200, 302}, response.content[:500]
        location = response.json()["location"] if response.status_code == 200 else response["Location"]
        probe = Probe.objects.order_by("-pk").first()
        assert probe is not None and probe.status == "done", (probe and probe.status, probe and probe.error_message)
        page = client.get(location)
        assert page.status_code == 200
        paged = time.perf_counter()
        shown = f"/probes/{probe.pk}/display" if b"/display" in page.content else f"/probes/{probe.pk}/image"
        image = client.get(shown)
        body = b"".join(image.streaming_content) if image.streaming else image.content
        ended = time.perf_counter()
        for key, value in (
            ("upload+processing", uploaded - started),
            ("probe page", paged - uploaded),
            ("image shown", ended - paged),
            ("total", ended - started),
        ):
            rows.setdefault(key, []).append(value * 1000)
        rows.setdefault("image shown kB", []).append(len(body) / 1024)
    return {key: round(statistics.median(values), 1) for key, values in rows.items()}


def measure(images: list[Path], runs: int) -> dict[str, Any]:
    from bench.workbench import _case_and_client, _setup
    from rfr.engine import active_engine

    _setup("embedded")
    engine = active_engine()
    case, client = _case_and_client()
    results = []
    for path in images:
        data = path.read_bytes()
        engine.analyse_encoded(data)  # warm: sessions sized for this image
        _upload_runs(client, case.pk, path.name, data, 1)
        from PIL import Image

        with Image.open(path) as im:
            size = f"{im.width}x{im.height}"
        results.append(
            {
                "image": path.name,
                "size": size,
                "bytes": len(data),
                "engine": _engine_runs(engine, data, runs),
                "upload_to_faces_shown": _upload_runs(client, case.pk, path.name, data, runs),
            }
        )
    return {"cores": os.cpu_count(), "runs": runs, "target_s": TARGET_S, "images": results}


def _table(result: dict[str, Any]) -> str:
    lines = []
    for row in result["images"]:
        lines.append(f"{row['image']} ({row['size']}, {row['bytes'] / 1e6:.1f} MB)")
        for key, value in row["engine"].items():
            lines.append(f"  engine {key:<28} {value:>9}")
        for key, value in row["upload_to_faces_shown"].items():
            lines.append(f"  upload→shown {key:<22} {value:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--image", action="append", help="an image to measure (repeatable) instead of the defaults")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")
    if args.image:
        images = [Path(p) for p in args.image]
    else:
        faces = Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")
        wild = faces / "wild"
        images = [large_jpeg(faces), wild / "deepface" / "img49.jpg", wild / "insightface" / "t1.jpg"]
    result = measure(images, args.runs)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"Probe upload to faces shown, {result['cores']} cores; median ms of {args.runs} warm runs.")
        print(_table(result))


if __name__ == "__main__":
    main()
