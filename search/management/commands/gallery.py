"""`manage.py gallery create|list|enrol|remove-subject|remove-image|purge`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfr.errors import ApplicationError
from search import enrolment, galleries
from search.models import EnrolmentItem, Gallery, GalleryImage, Subject


def _gallery(name: str) -> Gallery:
    gallery = Gallery.objects.filter(name=name).first()
    if gallery is None and name.isdigit():
        gallery = Gallery.objects.filter(pk=int(name)).first()
    if gallery is None:
        raise CommandError(f"No gallery named {name!r} (see `manage.py gallery list`).")
    return gallery


class Command(BaseCommand):
    help = "Manage galleries: create, list, bulk enrol, delete subjects or images with a reason, purge."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--actor", default="", help="Username recorded in the audit log.")
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a gallery.")
        create.add_argument("name")
        create.add_argument("--kind", required=True, choices=Gallery.Kind.values)
        create.add_argument("--description", default="")
        create.add_argument("--provenance", default="")
        create.add_argument("--retention-days", type=int, default=None)
        create.add_argument("--index-mode", choices=Gallery.IndexMode.values, default=Gallery.IndexMode.EXACT)
        sub.add_parser("list", help="List galleries with their sizes.")
        enrol = sub.add_parser("enrol", help="Enrol a folder of images listed in a CSV (file,subject_ref|identity).")
        enrol.add_argument("gallery")
        enrol.add_argument("--images", required=True, type=Path)
        enrol.add_argument("--subjects", required=True, type=Path)
        enrol.add_argument("--batch-size", type=int, default=enrolment.ENROL_BATCH_SIZE)
        enrol.add_argument(
            "--in-process", action="store_true", help="Enrol here even when a Celery broker is configured."
        )
        remove = sub.add_parser("remove-subject", help="Delete a subject, its images and templates.")
        remove.add_argument("gallery")
        remove.add_argument("subject_ref")
        remove.add_argument("--reason", required=True)
        remove_image = sub.add_parser("remove-image", help="Delete one gallery image by id.")
        remove_image.add_argument("image_id", type=int)
        remove_image.add_argument("--reason", required=True)
        purge = sub.add_parser("purge", help="Apply retention rules (all galleries, or one).")
        purge.add_argument("gallery", nargs="?")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = None
        if options["actor"]:
            actor = get_user_model().objects.filter(username=options["actor"]).first()
            if actor is None:
                raise CommandError(f"No user {options['actor']!r}.")
        getattr(self, "_" + options["action"].replace("-", "_"))(options, actor)

    def _create(self, options: dict[str, Any], actor: Any) -> None:
        if Gallery.objects.filter(name=options["name"]).exists():
            raise CommandError(f"A gallery named {options['name']!r} exists already.")
        gallery = galleries.gallery_create(
            name=options["name"],
            kind=options["kind"],
            description=options["description"],
            provenance=options["provenance"],
            retention_days=options["retention_days"],
            index_mode=options["index_mode"],
            actor=actor,
        )
        self.stdout.write(f"Created gallery {gallery.pk} {gallery.name!r} ({gallery.kind}, {gallery.index_mode}).")

    def _list(self, options: dict[str, Any], actor: Any) -> None:
        self.stdout.write(f"{'id':>4}  {'name':<30} {'kind':<16} {'index':<12} {'subjects':>9} {'images':>9}")
        for gallery in Gallery.objects.all():
            self.stdout.write(
                f"{gallery.pk:>4}  {gallery.name:<30} {gallery.kind:<16} {gallery.index_mode:<12} "
                f"{gallery.subjects.count():>9} {gallery.images.count():>9}"
            )

    def _enrol(self, options: dict[str, Any], actor: Any) -> None:
        gallery = _gallery(options["gallery"])
        images_dir: Path = options["images"]
        if not images_dir.is_dir():
            raise CommandError(f"{images_dir} is not a folder.")
        try:
            entries = enrolment.enrolment_entries_read(images_dir=images_dir, subjects_csv=options["subjects"])
        except (OSError, ApplicationError) as error:
            raise CommandError(str(error)) from error
        run = enrolment.enrolment_run_create(
            gallery=gallery,
            images_dir=images_dir,
            entries=entries,
            actor=actor,
            source=f"{options['subjects']} ({images_dir})",
        )
        run = enrolment.enrolment_run_execute(
            run=run, batch_size=options["batch_size"], in_process=True if options["in_process"] else None
        )
        counts = run.counts
        self.stdout.write(
            f"Run {run.pk}: {counts.get('enrolled', 0)} enrolled, "
            f"{counts.get('skipped', 0)} already enrolled, {counts.get('failed', 0)} failed."
        )
        failed = run.items.filter(status=EnrolmentItem.Status.FAILED).order_by("path")
        if failed.exists():
            self.stdout.write("Not enrolled:")
            for item in failed:
                self.stdout.write(f"  {item.path}: {item.message}")

    def _remove_subject(self, options: dict[str, Any], actor: Any) -> None:
        gallery = _gallery(options["gallery"])
        subject = Subject.objects.filter(gallery=gallery, external_ref=options["subject_ref"]).first()
        if subject is None:
            raise CommandError(f"No subject {options['subject_ref']!r} in {gallery.name!r}.")
        detail = galleries.subject_delete(subject=subject, reason=options["reason"], actor=actor)
        self.stdout.write(
            f"Deleted subject {detail['external_ref']}: {detail['images_deleted']} images, "
            f"{detail['templates_deleted']} templates."
        )

    def _remove_image(self, options: dict[str, Any], actor: Any) -> None:
        image = GalleryImage.objects.filter(pk=options["image_id"]).first()
        if image is None:
            raise CommandError(f"No gallery image {options['image_id']}.")
        detail = galleries.gallery_image_delete(image=image, reason=options["reason"], actor=actor)
        self.stdout.write(f"Deleted image {detail['gallery_image_id']} ({detail['templates_deleted']} templates).")

    def _purge(self, options: dict[str, Any], actor: Any) -> None:
        gallery = _gallery(options["gallery"]) if options["gallery"] else None
        purged = galleries.gallery_purge_expired(gallery=gallery, actor=actor)
        if not purged:
            self.stdout.write("Nothing to purge.")
        for name, count in purged.items():
            self.stdout.write(f"{name}: purged {count} images.")
