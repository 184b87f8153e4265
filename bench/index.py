"""Gallery search at scale: build time, memory and K=50 latency, exact and approximate, against raw FAISS.

    .venv/bin/python -m bench.index [--sizes 100000,1000000] [--queries 200] [--enrol-sample 300]
        [--modes exact,approximate] [--refine-sweep 2,5,10]

Galleries hold the real templates of the shared data set (CelebA + LFW, embedded with the engine and
cached under var/bench/) plus SYNTHETIC DISTRACTORS drawn from a Gaussian fitted to the real templates'
mean and covariance, then L2-normalised. Each real identity enrols its first image with a face; its other
images are the mated probes. Everything runs against a scratch SQLite database under var/bench/run-<sizes>/ (the
environment's DATABASE_URL and REDIS_URL are ignored), through the same code the product uses:

* "service" = search.execution.search_galleries (index version check, FAISS search, database check of every
  hit, ranking), "index" = search.index get_index().search alone, "raw" = faiss `index.search` on the very
  same in-memory FAISS index object. Latencies are single-query, interleaved service/index/raw per probe.
* Approximate = 4-bit PQ fast scan (dim/2 sub-quantisers) over the whole gallery, whose best
  REFINE_FACTOR x shortlist (max(2K, K+64)) candidates are re-scored exactly from the stored float32 vectors
  and sorted: mate-hit rate = of the mated probes whose mate the exact
  search returns in the top K, the fraction the approximate search returns too; recall@K = mean overlap of
  the two top-K lists (information: distractor order matters little to an investigator).
* Enrolment throughput: `gallery enrol` machinery (hash, decode, detect, embed, one transaction per image
  with file, template, index change) on a sample of the shared images, next to the engine's raw throughput
  (decode + analyse, nothing stored) on the same images.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
K = 50


def _faces_dir() -> Path:
    return Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")


def _setup_django(tag: str) -> None:
    # One scratch folder per size list, so runs of different sizes can go side by side.
    run_dir = BENCH_DIR / f"run-{tag}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("RFR_MODEL_PACK_DIR", str(ROOT / "var" / "modelpacks"))
    os.environ["RFR_DATA_DIR"] = str(run_dir)
    os.environ.setdefault("RFR_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "rfr.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _shared_images() -> list[tuple[str, Path]]:
    """(identity label, path) for every CelebA and LFW image, in a fixed order."""
    faces = _faces_dir()
    rows: list[tuple[str, Path]] = []
    with open(faces / "celeba" / "identities.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append((f"celeba:{row['identity']}", faces / "celeba" / "images" / row["file"]))
    for path in sorted((faces / "lfw" / "images").rglob("*.jpg")):
        rows.append((f"lfw:{path.parent.name}", path))
    return rows


def _primary_template(engine: Any, path: Path) -> np.ndarray | None:
    from faceengine import ImageRejected, decode_image_file
    from faceengine.engine import primary_face_index

    try:
        image = decode_image_file(path)
    except ImageRejected:
        return None
    faces = engine.analyse(image)
    index = primary_face_index([f.detection for f in faces], image.shape)
    return None if index is None else faces[index].template


def real_templates(engine: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels, templates (zeros where no face) and a has-face mask, cached per model pack."""
    rows = _shared_images()
    cache = BENCH_DIR / f"templates-{engine.pack.key.replace('@', '_').replace('/', '_')}.npz"
    if cache.is_file():
        data = np.load(cache)
        if len(data["labels"]) == len(rows):
            return [str(x) for x in data["labels"]], data["templates"], data["has_face"]
    from tqdm import tqdm

    templates = np.zeros((len(rows), engine.pack.embedding_dim), np.float32)
    has_face = np.zeros(len(rows), bool)
    for i, (_, path) in enumerate(tqdm(rows, desc="embedding shared images", file=sys.stderr)):
        template = _primary_template(engine, path)
        if template is not None:
            templates[i], has_face[i] = template, True
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(cache, labels=np.array([label for label, _ in rows]), templates=templates, has_face=has_face)
    return [label for label, _ in rows], templates, has_face


def distractors(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Draws from N(mean, cov) of the real templates, L2-normalised, generated in chunks."""
    mean = real.mean(axis=0)
    cov = np.cov(real, rowvar=False)
    rng = np.random.default_rng(seed)
    out = np.empty((count, real.shape[1]), np.float32)
    for start in range(0, count, 200_000):
        chunk = rng.multivariate_normal(mean, cov, size=min(200_000, count - start), method="cholesky")
        out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def _insert_gallery(size: int, real: np.ndarray, real_labels: list[str], pack_key: str) -> tuple[int, np.ndarray]:
    """A gallery with `size` template rows (real first); returns the gallery id and the template ids."""
    from django.db import connection, transaction
    from django.utils import timezone

    from search.models import Gallery, GalleryImage, IndexState, Subject

    gallery = Gallery.objects.create(name=f"bench-{size}", kind=Gallery.Kind.CUSTODY)
    now = timezone.now().isoformat()
    with transaction.atomic():
        subjects = Subject.objects.bulk_create(
            [Subject(gallery=gallery, external_ref=label) for label in real_labels]
            + [Subject(gallery=gallery, external_ref="synthetic distractors")]
        )
        images = GalleryImage.objects.bulk_create(
            [
                GalleryImage(gallery=gallery, subject=subject, sha256=f"{i:064x}", file="bench.jpg")
                for i, subject in enumerate(subjects)
            ]
        )
        fake = distractors(real, size - len(real))
        sql = (
            "INSERT INTO search_template (gallery_id, subject_id, image_id, pack_key, box, landmarks, "
            "quality, embedding, created_at) VALUES (%s, %s, %s, %s, '[]', '[]', '{}', %s, %s)"
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                sql,
                [
                    (gallery.pk, subjects[i].pk, images[i].pk, pack_key, real[i].astype("<f4").tobytes(), now)
                    for i in range(len(real))
                ],
            )
            for start in range(0, len(fake), 50_000):
                cursor.executemany(
                    sql,
                    [
                        (
                            gallery.pk,
                            subjects[-1].pk,
                            images[-1].pk,
                            pack_key,
                            vector.astype("<f4").tobytes(),
                            now,
                        )
                        for vector in fake[start : start + 50_000]
                    ],
                )
            cursor.execute("SELECT id FROM search_template WHERE gallery_id = %s ORDER BY id", [gallery.pk])
            ids = np.array([row[0] for row in cursor.fetchall()], np.int64)
        IndexState.objects.create(gallery=gallery, pack_key=pack_key, version=size)
    del fake
    return gallery.pk, ids


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return 1000 * statistics.median(ordered), 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _latencies(gallery_id: int, pack_key: str, probes: np.ndarray, raw_k: int) -> dict[str, tuple[float, float]]:
    from search.execution import search_galleries
    from search.index.live import get_index

    index = get_index()
    loaded = index.fresh(gallery_id, pack_key)
    assert loaded is not None
    timings: dict[str, list[float]] = {"service": [], "index": [], "raw": []}
    for warm in probes[:5]:
        search_galleries(template=warm, pack_key=pack_key, gallery_ids=[gallery_id], top_k=K)
    for probe in probes:
        start = time.perf_counter()
        search_galleries(template=probe, pack_key=pack_key, gallery_ids=[gallery_id], top_k=K)
        timings["service"].append(time.perf_counter() - start)
        start = time.perf_counter()
        index.search(gallery_id, pack_key, probe[None, :], K)
        timings["index"].append(time.perf_counter() - start)
        query = np.ascontiguousarray(probe[None, :], dtype=np.float32)
        start = time.perf_counter()
        loaded.index.search(query, raw_k)
        timings["raw"].append(time.perf_counter() - start)
    return {name: _percentiles(values) for name, values in timings.items()}


def bench_size(
    size: int,
    labels: list[str],
    templates: np.ndarray,
    has_face: np.ndarray,
    pack_key: str,
    queries: int,
    refine_sweep: list[float],
    modes: set[str],
) -> list[dict[str, Any]]:
    from search.index.live import get_index
    from search.index.snapshots import REFINE_FACTOR, set_refine
    from search.models import Gallery, gallery_removal_permitted

    gallery_rows: dict[str, int] = {}
    probe_rows: list[int] = []
    for i, label in enumerate(labels):
        if not has_face[i]:
            continue
        if label in gallery_rows:
            probe_rows.append(i)
        else:
            gallery_rows[label] = i
    real_labels = list(gallery_rows)
    real = templates[list(gallery_rows.values())]
    started = time.perf_counter()
    gallery_id, template_ids = _insert_gallery(size, real, real_labels, pack_key)
    insert_seconds = time.perf_counter() - started
    mate_of = {label: int(template_ids[i]) for i, label in enumerate(real_labels)}
    probes = templates[probe_rows]
    probe_mates = np.array([mate_of[labels[i]] for i in probe_rows], np.int64)
    timing_probes = probes[np.linspace(0, len(probes) - 1, min(queries, len(probes))).astype(int)]

    results = []
    # Exact.
    from search.index.live import snapshot_path

    get_index().clear()
    gc.collect()
    rss = _rss_mb()
    started = time.perf_counter()
    loaded = get_index().fresh(gallery_id, pack_key)
    build = time.perf_counter() - started
    gc.collect()
    memory = _rss_mb() - rss
    assert loaded is not None and loaded.size == size
    exact_lat = _latencies(gallery_id, pack_key, timing_probes, K)
    _, exact_ids = loaded.index.search(np.ascontiguousarray(probes), K)  # reference lists, batched
    mate_in_exact = (exact_ids == probe_mates[:, None]).any(axis=1)
    results.append(
        {
            "size": size,
            "mode": "exact",
            "insert_s": insert_seconds,
            "build_s": build,
            "memory_mb": memory,
            "index_mb": snapshot_path(gallery_id, pack_key).stat().st_size / 2**20,
            **exact_lat,
            "mate_hit": None,
            "recall": None,
            "exact_mate_rate": float(mate_in_exact.mean()),
        }
    )
    if "approximate" not in modes:
        del loaded
        get_index().clear()
        with gallery_removal_permitted():  # a benchmark's own gallery, torn down unaudited
            Gallery.objects.filter(pk=gallery_id).delete()
        return results
    # Approximate.
    Gallery.objects.filter(pk=gallery_id).update(index_mode=Gallery.IndexMode.APPROXIMATE)
    del loaded
    get_index().clear()
    gc.collect()
    rss = _rss_mb()
    started = time.perf_counter()
    loaded = get_index().fresh(gallery_id, pack_key)
    build = time.perf_counter() - started
    gc.collect()
    memory = _rss_mb() - rss
    assert loaded is not None
    shortlist = max(2 * K, K + 64)
    set_refine(loaded.index, REFINE_FACTOR)
    approx_lat = _latencies(gallery_id, pack_key, timing_probes, shortlist)
    approx_ids = np.stack([get_index().search(gallery_id, pack_key, p[None, :], K)[1][0] for p in probes])
    mate_in_approx = (approx_ids == probe_mates[:, None]).any(axis=1)
    overlap = np.mean([len(set(a) & set(e)) / K for a, e in zip(approx_ids, exact_ids, strict=True)])
    results.append(
        {
            "size": size,
            "mode": "approximate",
            "insert_s": insert_seconds,
            "build_s": build,
            "memory_mb": memory,
            "index_mb": snapshot_path(gallery_id, pack_key).stat().st_size / 2**20,
            **approx_lat,
            "mate_hit": float(mate_in_approx[mate_in_exact].mean()) if mate_in_exact.any() else None,
            "mate_hit_n": int(mate_in_exact.sum()),
            "recall": float(overlap),
            "exact_mate_rate": float(mate_in_exact.mean()),
        }
    )
    for refine in refine_sweep:
        samples = []
        for probe in timing_probes:
            start = time.perf_counter()
            get_index().search(gallery_id, pack_key, probe[None, :], K, refine=refine)
            samples.append(time.perf_counter() - start)
        swept = np.stack([get_index().search(gallery_id, pack_key, p[None, :], K, refine=refine)[1][0] for p in probes])
        hit = (swept == probe_mates[:, None]).any(axis=1)
        p50, p95 = _percentiles(samples)
        print(
            f"  size {size:,} refine factor {refine:>4g}: index p50/p95 {p50:.2f}/{p95:.2f} ms, "
            f"mate-hit {100 * float(hit[mate_in_exact].mean()):.2f}% of {int(mate_in_exact.sum())}",
            flush=True,
        )
    del loaded
    get_index().clear()
    with gallery_removal_permitted():
        Gallery.objects.filter(pk=gallery_id).delete()
    gc.collect()
    return results


def enrolment_throughput(engine: Any, sample: int) -> dict[str, float]:
    """Images/s: the engine alone, and bulk enrolment into a gallery (database, files, index log)."""
    from search import enrolment, galleries
    from search.models import Gallery

    rows = _shared_images()
    if sample and sample < len(rows):
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, sample).astype(int)]
    started = time.perf_counter()
    for _, path in rows:
        _primary_template(engine, path)
    raw = len(rows) / (time.perf_counter() - started)
    gallery = galleries.gallery_create(name="bench-enrol", kind=Gallery.Kind.CUSTODY)
    faces = _faces_dir()
    entries = [enrolment.EnrolmentEntry(path=str(path), subject_ref=label, attributes={}) for label, path in rows]
    run = enrolment.enrolment_run_create(gallery=gallery, images_dir=faces, entries=entries, source="bench")
    started = time.perf_counter()
    run = enrolment.enrolment_run_execute(run=run, in_process=True, progress=False)
    enrol = len(rows) / (time.perf_counter() - started)
    return {"images": len(rows), "raw": raw, "enrol": enrol, "enrolled": run.counts.get("enrolled", 0)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200, help="probes timed per size and mode")
    parser.add_argument(
        "--enrol-sample", type=int, default=300, help="images for the enrolment rate (0: all, -1: skip)"
    )
    parser.add_argument("--modes", default="exact,approximate", help="approximate needs exact (reference)")
    parser.add_argument("--refine-sweep", default="2,5,10", help="extra re-rank factors to report (x shortlist)")
    args = parser.parse_args(argv)
    _setup_django(args.sizes.replace(",", "-"))
    from rfr.engine import active_engine

    engine = active_engine()
    labels, templates, has_face = real_templates(engine)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    refine_sweep = [float(s) for s in args.refine_sweep.split(",") if s]
    modes = set(args.modes.split(","))
    print(f"model pack {engine.pack.key}; {int(has_face.sum())} real templates from {len(labels)} CelebA + LFW images")
    print(
        "Galleries: one real template per identity + SYNTHETIC distractors drawn from a Gaussian fitted "
        "to the real templates' mean and covariance, L2-normalised."
    )
    rows: list[dict[str, Any]] = []
    try:
        for size in sizes:
            print(f"[size {size:,}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores]", flush=True)
            rows.extend(
                bench_size(size, labels, templates, has_face, engine.pack.key, args.queries, refine_sweep, modes)
            )
            _print_table(rows)
        if args.enrol_sample >= 0:
            rates = enrolment_throughput(engine, args.enrol_sample)
            print(
                f"\nEnrolment of {rates['images']} shared images ({rates['enrolled']} enrolled): "
                f"{rates['enrol']:.1f} images/s; engine alone (decode + analyse) {rates['raw']:.1f} images/s "
                f"({100 * rates['enrol'] / rates['raw']:.0f}% of raw)"
            )
    finally:
        from django.conf import settings

        # The scratch database and snapshots run to gigabytes at 1M; only the template cache is kept.
        shutil.rmtree(settings.DATA_DIR, ignore_errors=True)


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'size':>9} {'mode':<12} {'insert s':>8} {'build s':>8} {'index MB':>8} {'RSS+ MB':>7} "
        f"{'service p50/p95 ms':>19} {'index p50/p95':>14} {'raw p50/p95':>13} {'p95 ratio':>9} "
        f"{'mate-hit':>9} {'recall@50':>9}"
    )
    for row in rows:
        mate = "—" if row["mate_hit"] is None else f"{100 * row['mate_hit']:.2f}%"
        recall = "—" if row["recall"] is None else f"{100 * row['recall']:.1f}%"
        print(
            f"{row['size']:>9,} {row['mode']:<12} {row['insert_s']:>8.1f} {row['build_s']:>8.1f} "
            f"{row['index_mb']:>8.0f} {row['memory_mb']:>7.0f} {row['service'][0]:>9.2f}/{row['service'][1]:<9.2f} "
            f"{row['index'][0]:>6.2f}/{row['index'][1]:<7.2f} {row['raw'][0]:>6.2f}/{row['raw'][1]:<6.2f} "
            f"{row['service'][1] / row['raw'][1]:>9.2f} {mate:>9} {recall:>9}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
