"""Settings fail fast with the variable's name; model packs refuse tampered files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from faceengine import PackIntegrityError, PackNotFound, decode_image_file, load_pack
from faceengine.engine import get_engine
from faceengine.packs import install_pack, sha256_file

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


@pytest.mark.embedded
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/rfr"),
        ("DATABASE_URL", "not a url"),
        ("REDIS_URL", "localhost:6379"),
        ("RFR_DEBUG", "maybe"),
        ("RFR_SESSION_IDLE_SECONDS", "ten"),
        ("RFR_DEFAULT_THRESHOLD", "2.5"),
    ],
)
def test_a_bad_setting_stops_start_up_naming_the_variable(variable: str, value: str) -> None:
    result = _manage("check", env={variable: value})
    assert result.returncode != 0
    assert variable in result.stderr


@pytest.mark.embedded
def test_no_environment_gives_the_embedded_default(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings;"
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, settings.MEDIA_ROOT)"
    )
    result = _manage("shell", "-c", code, env={"RFR_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    engine, eager, media = result.stdout.strip().splitlines()[-1].split()
    assert engine == "django.db.backends.sqlite3"
    assert eager == "True"
    assert media == str(tmp_path / "media")


def test_production_shape_switches_to_postgresql_and_a_broker() -> None:
    code = (
        "from django.conf import settings;"
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL)"
    )
    result = _manage(
        "shell",
        "-c",
        code,
        env={"DATABASE_URL": "postgres://u@db.invalid:5432/rfr", "REDIS_URL": "redis://cache.invalid:6379/0"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "django.db.backends.postgresql",
        "False",
        "redis://cache.invalid:6379/0",
    ]


@pytest.fixture
def pack_copy(pack_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "packs" / pack_dir.name
    shutil.copytree(pack_dir, copy)
    return copy


def test_the_default_pack_records_hashes_licences_and_inputs(pack_dir: Path) -> None:
    pack = load_pack(pack_dir)
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    assert pack.detector.sha256 == "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
    assert pack.recogniser.sha256 == "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"
    assert pack.embedding_dim == 128
    assert manifest["recogniser"]["input_size"] == [112, 112]
    assert "MIT License" in (pack_dir / manifest["detector"]["licence"]).read_text()
    assert "Apache License" in (pack_dir / manifest["recogniser"]["licence"]).read_text()


def test_a_tampered_pack_file_is_refused(pack_copy: Path) -> None:
    model = pack_copy / "face_recognition_sface_2021dec.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(PackIntegrityError) as info:
        load_pack(pack_copy)
    assert "face_recognition_sface_2021dec.onnx" in info.value.message
    with pytest.raises(PackIntegrityError):
        get_engine(pack_copy)  # the engine never loads an unverified pack


def test_a_missing_pack_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(PackNotFound) as info:
        load_pack(tmp_path / "nothing")
    assert "modelpack fetch" in info.value.message


def test_install_from_a_zip_verifies_and_refuses_a_bad_one(pack_copy: Path, tmp_path: Path) -> None:
    archive = tmp_path / "pack.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in pack_copy.iterdir():
            handle.write(path, f"mypack/{path.name}")
    root = tmp_path / "installed"
    pack = install_pack(archive, root)
    assert pack.path == root / pack.name
    assert sha256_file(pack.file_path(pack.detector)) == pack.detector.sha256

    manifest = json.loads((pack_copy / "manifest.json").read_text())
    manifest["name"] = "tampered"
    manifest["detector"]["sha256"] = "0" * 64
    (pack_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackIntegrityError):
        install_pack(pack_copy, root)
    assert not (root / "tampered").exists(), "a refused pack leaves nothing installed"


@pytest.mark.django_db  # the active pack may be an admin's stored choice (search.packs), read from the database
def test_modelpack_commands_verify_and_list(pack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("modelpack", "verify")
    call_command("modelpack", "list")
    out = capsys.readouterr().out
    assert "OK opencv-yunet2023mar-sface2021dec@1" in out
    assert "yunet+sface 128-d  ok" in out
    with pytest.raises(CommandError):
        call_command("modelpack", "install", str(pack_dir / "does-not-exist"))


def test_an_insightface_layout_pack_installs_as_an_opt_in_pack(
    pack_dir: Path, tmp_path: Path, insightface_images: Path
) -> None:
    # insightface's own weights are non-commercial and not available here; a folder laid out like
    # buffalo_l (with a real 112×112 ONNX recogniser under its file name) exercises the same install path.
    root = tmp_path / "packs"
    shutil.copytree(pack_dir, root / pack_dir.name)
    source = tmp_path / "buffalo_test"
    source.mkdir()
    shutil.copy(pack_dir / "face_recognition_sface_2021dec.onnx", source / "w600k_r50.onnx")
    from faceengine.packs import install_insightface_pack

    pack = install_insightface_pack(source, root)
    assert pack.recogniser.architecture == "arcface"
    assert pack.recogniser.options["input_mean_scale"] == [127.5, 1.0 / 127.5]
    assert "non-commercial" in (pack.path / "LICENSE-insightface.txt").read_text()
    assert pack.key != load_pack(pack_dir).key, "a different pack key keeps its templates apart"
    engine = get_engine(pack.path)
    faces = engine.analyse(decode_image_file(insightface_images / "t1.jpg"))
    assert len(faces) == 6
    assert all(abs(float(f.template @ f.template) - 1.0) < 1e-4 for f in faces)
