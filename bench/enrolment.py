"""Bulk-enrolment throughput on real Celery workers: one batch job enrolled by 1 worker process, then by 2.

    .venv/bin/python -m bench.enrolment [--images 96] [--batch-size 4] [--workers 1,2] [--json]

Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL), as a deployment does: the bench makes a scratch database
of its own (dropped at the end), a data folder of its own, and a queue of its own, so that no other worker on
the same Redis takes its batches. For each worker count it starts that many `celery worker --pool solo`
processes (one process, one inference thread each: RFR_ENGINE_THREADS=1, OMP_NUM_THREADS=1, the realistic
setting of one worker process per core), warms each one up on an image of its own (model loading is not
enrolment), then creates a run of --images CelebA images in a fresh gallery, copies its items into storage (not
timed: that happens once per run, on the machine that sees the folder) and times from queueing its batches to
the last item done. `enrol_ips_N` is images per second with N worker processes; `enrol_speedup` is
enrol_ips_2 / enrol_ips_1 (target ≥ 1.7 on a machine with two free cores).

The load average and core count are printed with the figures, and the workers' own CPU time: CPU ms per image
is what enrolment costs whatever else runs, and "core/worker" is the share of a core each worker process got
(1.00 = a core of its own). On a shared machine other work takes cores away from the second worker, and the
speed-up then says more about the machine than about rfr: with both workers at a full core each and the same
CPU per image, 2 workers enrol twice as fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _faces_dir() -> Path:
    return Path(os.environ.get("RFR_FACES_DATA") or ROOT.parent / "shared" / "data" / "faces")


def _celeba_rows(count: int) -> list[tuple[str, str]]:
    """`count` CelebA images (file relative to celeba/images, identity), identities in turn."""
    with open(_faces_dir() / "celeba" / "identities.csv", newline="") as handle:
        rows = [(row["file"], row["identity"]) for row in csv.DictReader(handle)]
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} CelebA images under {_faces_dir()}")
    return sorted(rows)[:count]


def _scratch_database(base_url: str) -> str:
    import psycopg

    name = f"rfr_bench_enrol_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base_url.rsplit('/', 1)[0]}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{base_url.rsplit('/', 1)[0]}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        RFR_DATA_DIR=str(data_dir),
        RFR_MODEL_PACK_DIR=os.environ.get("RFR_MODEL_PACK_DIR") or str(ROOT / "var" / "modelpacks"),
        DJANGO_SETTINGS_MODULE="rfr.settings",
        RFR_ENGINE_THREADS="1",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    env.setdefault("RFR_SECRET_KEY", secrets.token_hex(32))
    env.setdefault("RFR_AUDIT_KEY", secrets.token_hex(32))
    return env


class Workers:
    """`count` worker processes on the bench's queue, each also on a queue of its own for its warm-up."""

    def __init__(self, count: int, queue: str, env: dict[str, str], log_dir: Path) -> None:
        self.queues = [f"{queue}-w{i}" for i in range(count)]
        self.processes = [self._start(queue, own, env, log_dir) for own in self.queues]

    @staticmethod
    def _start(queue: str, own: str, env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "celery", "-A", "rfr", "worker", "--pool", "solo", "-Q", f"{queue},{own}"]
        command += ["-n", f"{own}@%h", "-l", "warning", "--prefetch-multiplier", "1"]
        log = (log_dir / f"{own}.log").open("wb")
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def cpu_seconds(self) -> float:
        """User + system CPU time the worker processes have used so far (Linux /proc; 0 elsewhere)."""
        total = 0.0
        for process in self.processes:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_done(run_ids: list[int], timeout: float) -> None:
    from search.models import EnrolmentItem

    deadline = time.monotonic() + timeout
    while EnrolmentItem.objects.filter(run_id__in=run_ids, status=EnrolmentItem.Status.PENDING).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"enrolment runs {run_ids} still pending after {timeout:.0f} s: are the workers up?")
        time.sleep(0.05)


def _measure(count: int, *, rows: list[tuple[str, str]], batch_size: int, queue: str, env: dict[str, str],
             log_dir: Path, timeout: float) -> dict[str, Any]:  # fmt: skip
    from celery import current_app

    from rfr.queues import TaskName
    from search.enrolment import EnrolmentEntry, enrolment_run_create, enrolment_run_fan_out
    from search.enrolment_storage import enrolment_run_import
    from search.galleries import gallery_create
    from search.models import EnrolmentItem

    images_dir = _faces_dir() / "celeba" / "images"
    workers = Workers(count, queue, env, log_dir)
    try:
        # Warm-up: each worker loads the model on one image of its own, sent to its own queue.
        warm_gallery = gallery_create(name=f"bench warm-up {count}-{uuid.uuid4().hex[:6]}", kind="custody")
        warm_ids = []
        for i, own in enumerate(workers.queues):
            file, identity = rows[-1 - i]
            warm = enrolment_run_create(
                gallery=warm_gallery,
                images_dir=images_dir,
                entries=[EnrolmentEntry(path=file, subject_ref=f"WARM-{identity}", attributes={})],
                source="bench warm-up",
            )
            enrolment_run_import(run=warm)
            item_ids = list(warm.items.values_list("pk", flat=True))
            current_app.signature(TaskName.GALLERY_ENROL_BATCH.value, args=(item_ids, True)).apply_async(queue=own)
            warm_ids.append(warm.pk)
        _wait_done(warm_ids, timeout)

        gallery = gallery_create(name=f"bench {count} workers {uuid.uuid4().hex[:6]}", kind="custody")
        run = enrolment_run_create(
            gallery=gallery,
            images_dir=images_dir,
            entries=[
                EnrolmentEntry(path=file, subject_ref=f"BENCH-{identity}", attributes={}) for file, identity in rows
            ],
            source="bench",
        )
        enrolment_run_import(run=run)  # once per run, on the machine that sees the folder: not enrolment
        load_before = os.getloadavg()
        cpu_before = workers.cpu_seconds()
        start = time.perf_counter()
        enrolment_run_fan_out(run=run, batch_size=batch_size)
        _wait_done([run.pk], timeout)
        seconds = time.perf_counter() - start
        cpu = workers.cpu_seconds() - cpu_before
        load_after = os.getloadavg()
    finally:
        workers.stop()
    counts = {status: run.items.filter(status=status).count() for status in EnrolmentItem.Status.values}
    return {
        "workers": count,
        "images": len(rows),
        "seconds": round(seconds, 3),
        "ips": round(len(rows) / seconds, 3),
        # The workers' own CPU time: per image it says what enrolment costs whatever else runs on the machine,
        # and the share of a core each worker got says how much the machine let them run.
        "worker_cpu_s": round(cpu, 3),
        "cpu_ms_per_image": round(1000 * cpu / len(rows), 1),
        "core_share_per_worker": round(cpu / (seconds * count), 3),
        "counts": counts,
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96, help="images per run (default 96)")
    parser.add_argument("--batch-size", type=int, default=4, help="items per queued batch (default 4)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to measure (default 1,2)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for a run (default 900)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql://")) or not os.environ.get("REDIS_URL"):
        raise SystemExit(
            "bench.enrolment needs DATABASE_URL (PostgreSQL) and REDIS_URL, as workers on several machines do"
        )
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    rows = _celeba_rows(args.images + max(counts))  # the last few are the workers' warm-up images
    name = _scratch_database(base_url)
    try:
        with tempfile.TemporaryDirectory(prefix="rfr-bench-enrol-") as folder:
            data_dir = Path(folder)
            env = _environment(f"{base_url.rsplit('/', 1)[0]}/{name}", data_dir)
            os.environ.update(env)
            import django

            django.setup()
            from celery import current_app
            from django.core.management import call_command

            from rfr.queues import TaskName

            call_command("migrate", verbosity=0)
            queue = f"bench-enrol-{os.getpid()}"
            # The bench's batches go to its own queue, never to a deployment's workers on the same Redis.
            current_app.conf.task_routes = {TaskName.GALLERY_ENROL_BATCH.value: {"queue": queue}}
            results = [
                _measure(
                    count,
                    rows=rows[: args.images],
                    batch_size=args.batch_size,
                    queue=queue,
                    env=env,
                    log_dir=data_dir,
                    timeout=args.timeout,
                )
                for count in counts
            ]
            from django.db import connections

            connections.close_all()
    finally:
        _drop_database(base_url, name)
    summary: dict[str, Any] = {f"enrol_ips_{r['workers']}": r["ips"] for r in results}
    if "enrol_ips_1" in summary and "enrol_ips_2" in summary:
        summary["enrol_speedup"] = round(summary["enrol_ips_2"] / summary["enrol_ips_1"], 3)
    summary.update(images=args.images, batch_size=args.batch_size, cpu_count=os.cpu_count(), runs=results)
    if args.json:
        print(json.dumps(summary))
        return
    print(f"Enrolment of {args.images} CelebA images, batches of {args.batch_size}, on {os.cpu_count()} cores")
    print(
        f"{'workers':>7} {'seconds':>9} {'images/s':>9} {'CPU ms/img':>10} {'core/worker':>11} {'enrolled':>9}"
        f" {'failed':>7}  load avg (1/5/15 min)"
    )
    for r in results:
        print(
            f"{r['workers']:>7} {r['seconds']:>9.2f} {r['ips']:>9.2f} {r['cpu_ms_per_image']:>10.1f}"
            f" {r['core_share_per_worker']:>11.2f} {r['counts']['enrolled']:>9} {r['counts']['failed']:>7}"
            f"  {r['load_before']} → {r['load_after']}"
        )
    if "enrol_speedup" in summary:
        print(f"speed-up with 2 worker processes: {summary['enrol_speedup']:.2f}× (target ≥ 1.7×)")


if __name__ == "__main__":
    main()
