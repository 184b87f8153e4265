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
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
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


def distractor_chunks(real: np.ndarray, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Draws from N(mean, cov) of the real templates, L2-normalised, 200,000 at a time (never all in memory)."""
    mean = real.mean(axis=0)
    cov = np.cov(real, rowvar=False)
    rng = np.random.default_rng(seed)
    for start in range(0, count, 200_000):
        chunk = rng.multivariate_normal(mean, cov, size=min(200_000, count - start), method="cholesky")
        yield (chunk / np.linalg.norm(chunk, axis=1, keepdims=True)).astype(np.float32)


def distractors(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    chunks = list(distractor_chunks(real, count, seed))
    return np.concatenate(chunks) if chunks else np.zeros((0, real.shape[1]), np.float32)


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
            for fake in distractor_chunks(real, size - len(real)):
                cursor.executemany(
                    sql,
                    [
                        (gallery.pk, subjects[-1].pk, images[-1].pk, pack_key, vector.astype("<f4").tobytes(), now)
                        for vector in fake
                    ],
                )
            cursor.execute("SELECT id FROM search_template WHERE gallery_id = %s ORDER BY id", [gallery.pk])
            ids = np.array([row[0] for row in cursor.fetchall()], np.int64)
        IndexState.objects.create(gallery=gallery, pack_key=pack_key, version=size)
    return gallery.pk, ids


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return 1000 * statistics.median(ordered), 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _memory_mb(pid: int) -> dict[str, float]:
    """Resident set (now) and its high-water mark, of one process, from /proc."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                values[key] = int(rest.split()[0]) / 1024
    return {"rss_mb": values["VmRSS"], "hwm_mb": values["VmHWM"]}


# -- the search node: a process of its own (RFR_SEARCH_NODE=1), driven through a pipe ------------------------


def _node_main(connection: Any, env: dict[str, str]) -> None:
    """A search node process: loads indexes and times searches where they run, so its RSS is the node's."""
    os.environ.update(env)
    import django

    django.setup()
    from search.execution import search_galleries
    from search.index.live import get_index
    from search.index.snapshots import index_ids, vector_store

    index = get_index()
    while True:
        command, *args = connection.recv()
        if command == "quit":
            connection.send(None)
            return
        if command == "load":
            gallery_id, pack_key = args
            started = time.perf_counter()
            loaded = index.fresh(gallery_id, pack_key)
            seconds = time.perf_counter() - started
            assert loaded is not None
            gc.collect()
            connection.send({"seconds": seconds, "size": loaded.size, **_memory_mb(os.getpid())})
        elif command == "latency":
            gallery_id, pack_key, probes = args
            loaded = index.fresh(gallery_id, pack_key)
            assert loaded is not None
            raw_k = max(2 * K, K + 64) if loaded.mode == "approximate" else K  # what the index layer asks FAISS
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
            connection.send(
                {**{name: _percentiles(values) for name, values in timings.items()}, **_memory_mb(os.getpid())}
            )
        elif command == "top":  # the index layer's top K for every probe (batched)
            gallery_id, pack_key, probes = args
            connection.send(index.search(gallery_id, pack_key, probes, K)[1])
        elif command == "exact_mate":  # whether each probe's mate is in the exact top K (a full scan, chunked)
            gallery_id, pack_key, probes, mates = args
            loaded = index.fresh(gallery_id, pack_key)
            assert loaded is not None
            store = vector_store(loaded.index)
            ids = index_ids(loaded.index)
            order = np.argsort(ids)
            positions = order[np.searchsorted(ids, mates, sorter=order)]
            mate_scores = np.einsum("ij,ij->i", probes, store.reconstruct_batch(positions))
            above = np.zeros(len(probes), np.int64)
            for start in range(0, len(ids), 50_000):
                chunk = store.reconstruct_n(start, min(50_000, len(ids) - start))
                above += (probes @ chunk.T > mate_scores[:, None]).sum(axis=1)
            connection.send(above < K)


class Node:
    """The driver's handle on one search node process."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        env = {key: os.environ[key] for key in ("RFR_DATA_DIR", "RFR_MODEL_PACK_DIR", "RFR_LOG_LEVEL")}
        env.update(RFR_SEARCH_NODE="1", DJANGO_SETTINGS_MODULE="rfr.settings")
        self.process = context.Process(target=_node_main, args=(child, env), daemon=True)
        self.process.start()

    def ask(self, *message: Any) -> Any:
        self.connection.send(message)
        return self.connection.recv()

    def close(self) -> None:
        self.ask("quit")
        self.process.join(60)


def bench_size(
    size: int,
    labels: list[str],
    templates: np.ndarray,
    has_face: np.ndarray,
    pack_key: str,
    queries: int,
    modes: set[str],
) -> list[dict[str, Any]]:
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
    probes = np.ascontiguousarray(templates[probe_rows])
    probe_mates = np.array([mate_of[labels[i]] for i in probe_rows], np.int64)
    timing_probes = probes[np.linspace(0, len(probes) - 1, min(queries, len(probes))).astype(int)]
    del template_ids
    gc.collect()

    results: list[dict[str, Any]] = []
    mate_in_exact: np.ndarray | None = None
    approx_top: np.ndarray | None = None
    # Approximate first (the mode large galleries use, and the figures judged at 10M); the exact reference for
    # its mate-hit is a full float scan of the same node's re-rank store, so exact mode is timed after it.
    for mode in ("approximate", "exact"):
        if mode not in modes:
            continue
        Gallery.objects.filter(pk=gallery_id).update(index_mode=mode)
        print(f"  {size:,} {mode}: node building from the database…", flush=True)
        builder = Node()
        built = builder.ask("load", gallery_id, pack_key)  # builds from the database, stores a snapshot
        builder.close()
        print(f"  {size:,} {mode}: built in {built['seconds']:.1f} s; a fresh node loads the snapshot…", flush=True)
        node = Node()
        cold = node.ask("load", gallery_id, pack_key)
        latency = node.ask("latency", gallery_id, pack_key, timing_probes)
        mate_hit = recall = None
        if mode == "approximate":
            mate_in_exact = node.ask("exact_mate", gallery_id, pack_key, probes, probe_mates)
            approx_top = node.ask("top", gallery_id, pack_key, probes)
            mate_in_approx = (approx_top == probe_mates[:, None]).any(axis=1)
            mate_hit = float(mate_in_approx[mate_in_exact].mean()) if mate_in_exact.any() else None
        elif approx_top is not None and size <= 1_000_000:  # recall@K needs the exact lists (costly above)
            exact_top = node.ask("top", gallery_id, pack_key, probes)
            overlap = [len(set(a) & set(e)) / K for a, e in zip(approx_top, exact_top, strict=True)]
            results[-1]["recall"] = float(np.mean(overlap))  # the approximate row's: its overlap with exact
        elif mate_in_exact is None:
            mate_in_exact = node.ask("exact_mate", gallery_id, pack_key, probes, probe_mates)
        node.close()
        results.append(
            {
                "size": size,
                "mode": mode,
                "insert_s": insert_seconds,
                "build_s": built["seconds"],
                "build_peak_mb": built["hwm_mb"],
                "cold_start_s": cold["seconds"],
                "node_rss_mb": latency["rss_mb"],
                "node_peak_mb": max(cold["hwm_mb"], latency["hwm_mb"]),
                "service": latency["service"],
                "index": latency["index"],
                "raw": latency["raw"],
                "mate_hit": mate_hit,
                "mate_hit_n": int(mate_in_exact.sum()) if mate_in_exact is not None else None,
                "recall": recall,
                "exact_mate_rate": float(mate_in_exact.mean()) if mate_in_exact is not None else None,
            }
        )
        _print_table(results)
    # A benchmark's own gallery, torn down unaudited; the templates in one statement (the ORM would fetch
    # millions of rows to delete them one batch at a time).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM search_template WHERE gallery_id = %s", [gallery_id])
    with gallery_removal_permitted():
        Gallery.objects.filter(pk=gallery_id).delete()
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
    parser.add_argument("--size", type=int, help="one gallery size (same as --sizes N)")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200, help="probes timed per size and mode")
    parser.add_argument("--json", action="store_true", help="print one JSON object (the last size) at the end")
    parser.add_argument(
        "--enrol-sample", type=int, default=-1, help="images for the in-process enrolment rate (0: all, -1: skip)"
    )
    parser.add_argument("--modes", default="exact,approximate", help="approximate needs exact (reference)")
    parser.add_argument(
        "--enrol-images",
        type=int,
        default=96,
        help="images per run for enrol_ips_1/enrol_ips_2 (bench.enrolment, real Celery workers; 0: skip)",
    )
    args = parser.parse_args(argv)
    sizes = [args.size] if args.size else [int(s) for s in args.sizes.split(",") if s]
    environment = dict(os.environ)  # as given: the enrolment bench needs the DATABASE_URL/REDIS_URL set-up drops
    _setup_django("-".join(str(size) for size in sizes))
    from rfr.engine import active_engine

    engine = active_engine()
    labels, templates, has_face = real_templates(engine)
    modes = set(args.modes.split(","))
    print(f"model pack {engine.pack.key}; {int(has_face.sum())} real templates from {len(labels)} CelebA + LFW images")
    print(
        "Galleries: one real template per identity + SYNTHETIC distractors drawn from a Gaussian fitted "
        "to the real templates' mean and covariance, L2-normalised."
    )
    rows: list[dict[str, Any]] = []
    load: list[float] = []
    try:
        for size in sizes:
            load.append(os.getloadavg()[0])
            print(f"[size {size:,}: load average {load[-1]:.1f} on {os.cpu_count()} cores]", flush=True)
            rows.extend(bench_size(size, labels, templates, has_face, engine.pack.key, args.queries, modes))
            load.append(os.getloadavg()[0])
        rates = enrolment_throughput(engine, args.enrol_sample) if args.enrol_sample >= 0 else None
        if rates is not None:
            print(
                f"\nEnrolment of {rates['images']} shared images ({rates['enrolled']} enrolled): "
                f"{rates['enrol']:.1f} images/s; engine alone (decode + analyse) {rates['raw']:.1f} images/s "
                f"({100 * rates['enrol'] / rates['raw']:.0f}% of raw)"
            )
    finally:
        from django.conf import settings

        # The scratch database and snapshots run to gigabytes at 1M; only the template cache is kept.
        shutil.rmtree(settings.DATA_DIR, ignore_errors=True)
    enrolment = enrolment_workers_throughput(args.enrol_images, environment) if args.enrol_images > 0 else {}
    if enrolment:
        print(
            f"\nEnrolment with real Celery workers ({args.enrol_images} images): "
            f"{enrolment.get('enrol_ips_1')} images/s with 1 worker process, {enrolment.get('enrol_ips_2')} with 2 "
            f"(x{enrolment.get('enrol_speedup')}; load average {os.getloadavg()[0]:.1f})"
        )
    if args.json:
        result = summary(rows, sizes[-1], load)
        result.update({key: enrolment.get(key) for key in ("enrol_ips_1", "enrol_ips_2", "enrol_speedup")})
        print(json.dumps(result))


def enrolment_workers_throughput(images: int, environment: dict[str, str]) -> dict[str, Any]:
    """enrol_ips_1 and enrol_ips_2 from bench.enrolment, in a process of its own (it sets up Django on a scratch
    database of its own and starts 1, then 2 real Celery worker processes). Empty, with the reason printed,
    where it cannot run (it needs PostgreSQL and Redis, as workers on several machines do)."""
    command = [sys.executable, "-m", "bench.enrolment", "--images", str(images), "--workers", "1,2", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment, cwd=ROOT)
    if done.returncode != 0:
        print(f"\nEnrolment throughput not measured: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        return {}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def summary(rows: list[dict[str, Any]], size: int, load: list[float]) -> dict[str, Any]:
    """The one JSON object: search-node memory, cold start, service and raw latencies, mate-hit."""
    by_mode = {row["mode"]: row for row in rows if row["size"] == size}
    exact, approx = by_mode.get("exact"), by_mode.get("approximate")
    present = list(by_mode.values())
    return {
        "templates": size,
        "search_node_rss_mb": round(max(row["node_rss_mb"] for row in present), 1),
        "search_node_peak_mb": round(max(row["node_peak_mb"] for row in present), 1),
        "build_peak_mb": round(max(row["build_peak_mb"] for row in present), 1),
        "cold_start_s": round(max(row["cold_start_s"] for row in present), 2),
        "build_s": round(max(row["build_s"] for row in present), 2),
        "exact_p50_ms": round(exact["service"][0], 2) if exact else None,
        "exact_p95_ms": round(exact["service"][1], 2) if exact else None,
        "exact_raw_p95_ms": round(exact["raw"][1], 2) if exact else None,
        "approx_p50_ms": round(approx["service"][0], 2) if approx else None,
        "approx_p95_ms": round(approx["service"][1], 2) if approx else None,
        "approx_raw_p95_ms": round(approx["raw"][1], 2) if approx else None,
        "approx_mate_hit": round(approx["mate_hit"], 5) if approx and approx["mate_hit"] is not None else None,
        "approx_mate_hit_n": approx["mate_hit_n"] if approx else None,
        # From bench.enrolment (1 and 2 worker processes), filled in by main(); null where it did not run.
        "enrol_ips_1": None,
        "enrol_ips_2": None,
        "load_average": [round(value, 1) for value in load],
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'size':>10} {'mode':<11} {'build s':>7} {'cold s':>6} {'node RSS':>8} {'peak':>6} "
        f"{'service p50/p95 ms':>19} {'index p50/p95':>14} {'raw p50/p95':>13} {'p95 ratio':>9} "
        f"{'mate-hit':>9} {'recall@50':>9}"
    )
    for row in rows:
        mate = "—" if row["mate_hit"] is None else f"{100 * row['mate_hit']:.2f}%"
        recall = "—" if row["recall"] is None else f"{100 * row['recall']:.1f}%"
        print(
            f"{row['size']:>10,} {row['mode']:<11} {row['build_s']:>7.1f} {row['cold_start_s']:>6.1f} "
            f"{row['node_rss_mb']:>8.0f} {row['node_peak_mb']:>6.0f} "
            f"{row['service'][0]:>9.2f}/{row['service'][1]:<9.2f} "
            f"{row['index'][0]:>6.2f}/{row['index'][1]:<7.2f} {row['raw'][0]:>6.2f}/{row['raw'][1]:<6.2f} "
            f"{row['service'][1] / row['raw'][1]:>9.2f} {mate:>9} {recall:>9}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
