"""Where files live, from the environment: Django's `STORAGES` on local disk, or every entry in one S3 bucket.

rfr keeps every file it stores (probe originals and derived images, face crops, gallery images, bulk-enrolment
items, and whatever other app adds a `STORAGES` entry) behind a named storage, and reads and writes them only
through the storage API. By default each entry is a folder on local disk, as in a single-machine install.
With RFR_STORAGE=s3 every entry (static files aside: they ship with the image) becomes an
`storages.backends.s3.S3Storage` in the bucket RFR_S3_BUCKET, under a prefix that mirrors the local layout
(`media/` for the media entries, `index/` for an entry whose local folder is DATA_DIR/index, the entry's
name for one elsewhere), so that machines that share no disk share their files through the bucket.

Credentials come the usual AWS way (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or the
instance's role); they never appear in settings. Files are never served from the bucket: with public access
off and no signed URLs handed out, every image still goes through the app's views, which check need-to-know
and write the audit event.

Plain Python with no Django import, so that rfr/settings.py can call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOCAL = "local"
S3 = "s3"
BACKENDS = (LOCAL, S3)
S3_BACKEND = "storages.backends.s3.S3Storage"
FILE_SYSTEM_BACKEND = "django.core.files.storage.FileSystemStorage"
# Entries left alone by the switch: static files are part of the release, collected into each image.
NOT_SWITCHED = frozenset({"staticfiles"})


def local_storages() -> dict[str, dict[str, Any]]:
    """The default layout: every media entry a folder on local disk.

    The media entries name no location, so they follow MEDIA_ROOT (also when a test changes it); their file
    names start with distinct folders (probes/, galleries/, enrolment-uploads/), so they never collide.
    """
    return {
        "default": {"BACKEND": FILE_SYSTEM_BACKEND},
        # Gallery images are named by content and overwritten, so a resumed enrolment writes the very file an
        # uninterrupted one would (rfr.storage, search.enrolment).
        "gallery": {"BACKEND": FILE_SYSTEM_BACKEND, "OPTIONS": {"allow_overwrite": True}},
        # Bulk-enrolment items, copied in when a run is created so that any worker can read any batch.
        "enrolment": {"BACKEND": FILE_SYSTEM_BACKEND},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def _prefix(alias: str, options: dict[str, Any], data_dir: Path, root_prefix: str) -> str:
    location = options.get("location")
    if location is None:
        relative = "media"  # MEDIA_ROOT's own folder name in the default layout
    else:
        path = Path(location)
        relative = path.relative_to(data_dir).as_posix() if path.is_relative_to(data_dir) else alias
    return "/".join(part for part in (root_prefix.strip("/"), relative.strip("/")) if part)


def storages_switch(
    storages: dict[str, dict[str, Any]],
    *,
    backend: str,
    data_dir: Path,
    bucket: str = "",
    endpoint_url: str = "",
    region: str = "",
    prefix: str = "",
    addressing_style: str = "",
) -> dict[str, dict[str, Any]]:
    """`storages` unchanged for "local"; for "s3", every entry but static files moved into the bucket.

    Applied last in the settings, so that it covers every entry, whichever app added it. An entry that
    overwrites locally (`allow_overwrite`) overwrites in the bucket (`file_overwrite`); every other entry
    keeps Django's rule that a taken name gets a suffix.
    """
    if backend not in BACKENDS:
        raise ValueError(f"RFR_STORAGE must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == LOCAL:
        return storages
    if not bucket:
        raise ValueError("RFR_STORAGE=s3 needs RFR_S3_BUCKET (and RFR_S3_ENDPOINT_URL for a non-AWS service)")
    switched: dict[str, dict[str, Any]] = {}
    for alias, entry in storages.items():
        if alias in NOT_SWITCHED:
            switched[alias] = entry
            continue
        options = dict(entry.get("OPTIONS", {}))
        s3_options: dict[str, Any] = {
            "bucket_name": bucket,
            "location": _prefix(alias, options, data_dir, prefix),
            "file_overwrite": bool(options.get("allow_overwrite", False)),
            # Private objects, no public URLs: every read goes through the app (need-to-know, audit).
            "default_acl": None,
            "querystring_auth": True,
            "signature_version": "s3v4",
        }
        if endpoint_url:
            s3_options["endpoint_url"] = endpoint_url
        if region:
            s3_options["region_name"] = region
        if addressing_style:
            s3_options["addressing_style"] = addressing_style
        switched[alias] = {"BACKEND": S3_BACKEND, "OPTIONS": s3_options}
    return switched
