"""Enhancement on the record: the operations are deterministic and bounded (faceengine.enhance), a derived
probe is stored with its chain, processed and searched like any probe, and every search page, candidate page,
API answer and report from it shows the chain; the original never changes (cases.enhancement)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from django.test import Client

import faceengine
from audit.models import AuditEvent
from cases.models import Case, Probe
from faceengine.enhance import OPERATIONS, EnhanceRefused, chain_apply, image_png_bytes, operations_validate
from tests.factories import client_for, upload
from tests.test_workbench_pages import pdf_text

# A chain that uses every operation once, each with a parameter away from its default.
EVERY_OPERATION = [
    {"op": "crop", "params": {"x": 10, "y": 12, "width": 200, "height": 190}},
    {"op": "rotate", "params": {"angle": 7.5}},
    {"op": "deinterlace", "params": {"method": "field_blend"}},
    {"op": "resize", "params": {"scale": 1.5}},
    {"op": "gamma", "params": {"gamma": 1.3}},
    {"op": "clahe", "params": {"clip_limit": 2.5, "tiles": 4}},
    {"op": "denoise", "params": {"strength": 4}},
    {"op": "unsharp", "params": {"sigma": 1.2, "amount": 0.8}},
    {"op": "deconvolve", "params": {"blur": "motion", "length": 4, "angle": 30, "method": "richardson_lucy"}},
    {"op": "deconvolve", "params": {"blur": "gaussian", "sigma": 0.8, "method": "wiener", "snr": 200}},
]


@pytest.fixture(scope="module")
def lfw_image(faces_dir: Path) -> Path:
    path = faces_dir / "lfw" / "images" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    if not path.is_file():
        pytest.skip(f"{path} not found (../shared/data/faces/lfw)")
    return path


def test_every_operation_is_reproducible_byte_for_byte_and_leaves_its_input_alone(lfw_image: Path) -> None:
    image = faceengine.decode_image(lfw_image.read_bytes())
    before = image.copy()
    assert {step["op"] for step in EVERY_OPERATION} == set(OPERATIONS)
    first = image_png_bytes(chain_apply(image, EVERY_OPERATION))
    again = image_png_bytes(chain_apply(image, operations_validate(EVERY_OPERATION)))
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()
    assert np.array_equal(image, before)
    result = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR)
    assert result is not None and result.shape[0] > 190
    assert not np.array_equal(result[:190, :200], image[12:202, 10:210])
    # Each operation changes the image (none is silently a no-op) and is reproducible on its own.
    for step in EVERY_OPERATION:
        one = chain_apply(image, [step])
        assert not (one.shape == image.shape and np.array_equal(one, image)), step
        assert np.array_equal(one, chain_apply(image, [step])), step


def test_the_recorded_chain_names_every_parameter() -> None:
    chain = operations_validate([{"op": "deconvolve", "params": {"blur": "gaussian"}}, {"op": "gamma"}])
    assert chain == [
        {
            "op": "deconvolve",
            "params": {
                "blur": "gaussian",
                "length": 5.0,
                "angle": 0.0,
                "sigma": 1.0,
                "method": "wiener",
                "snr": 100.0,
                "iterations": 10,
            },
        },
        {"op": "gamma", "params": {"gamma": 1.5}},
    ]


@pytest.mark.parametrize(
    ("chain", "words"),
    [
        ([], "at least one"),
        ([{"op": "face_hallucination"}], "unknown operation"),
        ([{"op": "gamma", "params": {"gamma": 9}}], "between 0.2 and 5"),
        ([{"op": "resize", "params": {"scale": "big"}}], "must be a number"),
        ([{"op": "resize", "params": {"scale": 8}}, {"op": "resize", "params": {"scale": 8}}], "larger than"),
        ([{"op": "clahe", "params": {"tiles": 2.5}}], "whole number"),
        ([{"op": "crop", "params": {"width": 50}}], "height is required"),
        ([{"op": "crop", "params": {"x": 300, "width": 100, "height": 100}}], "does not lie inside"),
        ([{"op": "unsharp", "params": {"radius": 3}}], "unknown parameter"),
        ([{"op": "gamma"}] * 21, "At most 20"),
        ([{"op": "resize", "params": {"scale": 3}}, {"op": "denoise"}], "Crop to the face first"),
    ],
)
def test_bad_chains_are_refused_with_the_step_named(lfw_image: Path, chain: Any, words: str) -> None:
    image = faceengine.decode_image(lfw_image.read_bytes())
    with pytest.raises(EnhanceRefused) as refused:
        chain_apply(image, chain)
    assert words in refused.value.message


# --- On the record, through the workbench ---------------------------------------------------------------------

CHAIN = [
    {"op": "gamma", "params": {"gamma": 1.2}},
    {"op": "clahe", "params": {"clip_limit": 2.0}},
    {"op": "unsharp", "params": {"sigma": 1.0, "amount": 0.6}},
]


@pytest.mark.django_db
def test_a_derived_probe_is_on_the_record_searched_and_reported(
    case: Case,
    people: dict[str, Any],
    gallery: tuple[Any, dict[str, list[Path]]],
    run_on_commit: Callable[..., Any],
) -> None:
    _, identities = gallery
    identity, paths = next(iter(identities.items()))
    data = paths[2].read_bytes()
    api = client_for(people["investigator"])
    parent_id = run_on_commit(lambda: upload(api, case, data, paths[2].name)).json()["id"]
    parent = Probe.objects.get(pk=parent_id)
    parent_row = {f: getattr(parent, f) for f in ("sha256", "original", "size_bytes", "width", "height")}

    # Preview: an image, audited, nothing stored.
    previewed = api.post(f"/api/probes/{parent_id}/enhancement-preview/", {"operations": CHAIN}, format="json")
    assert previewed.status_code == 200 and previewed["Content-Type"] == "image/png"
    assert Probe.objects.count() == 1
    event = AuditEvent.objects.get(action="probe.enhancement_previewed")
    assert event.detail["parent_sha256"] == parent.sha256 and len(event.detail["operations"]) == 3

    # A bad parameter is a 400 naming the step; nothing stored.
    bad = api.post(
        f"/api/probes/{parent_id}/derived/", {"operations": [{"op": "gamma", "params": {"gamma": 0}}]}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_enhancement"
    assert "Step 1 (gamma)" in bad.json()["message"] and Probe.objects.count() == 1

    made = run_on_commit(lambda: api.post(f"/api/probes/{parent_id}/derived/", {"operations": CHAIN}, format="json"))
    assert made.status_code == 201, made.json()
    body = api.get(f"/api/probes/{made.json()['id']}/").json()
    assert body["status"] == "done" and body["faces"], "processed like any probe"
    assert body["parent"] == parent_id
    derivation = body["derivation"]
    assert derivation["parent_sha256"] == parent.sha256 and derivation["made_by"] == "ivy"
    assert [step["op"] for step in derivation["operations"]] == ["gamma", "clahe", "unsharp"]
    assert derivation["operations"][1]["params"] == {"clip_limit": 2.0, "tiles": 8}  # the default is recorded
    assert derivation["environment"]["opencv"] == cv2.__version__
    assert body["derivation_chain"][0]["operations"][0] == "Gamma: gamma 1.2"

    # Reproducible byte for byte: the recorded chain on the parent's stored bytes gives the stored result.
    derived = Probe.objects.get(pk=body["id"])
    with parent.original.open("rb") as handle:
        parent_bytes = handle.read()
    rerun = image_png_bytes(chain_apply(faceengine.decode_image(parent_bytes), derivation["operations"]))
    with derived.original.open("rb") as handle:
        stored = handle.read()
    assert hashlib.sha256(rerun).hexdigest() == hashlib.sha256(stored).hexdigest() == derived.sha256
    # The original is never changed: the same bytes and the same row.
    assert hashlib.sha256(parent_bytes).hexdigest() == hashlib.sha256(data).hexdigest() == parent.sha256
    parent.refresh_from_db()
    assert {f: getattr(parent, f) for f in parent_row} == parent_row
    recorded = AuditEvent.objects.get(action="probe.derived")
    assert recorded.detail["sha256"] == derived.sha256 and recorded.detail["parent_sha256"] == parent.sha256

    # Searched like any probe; the search, its candidates and its report show the chain.
    face = derived.faces.order_by("-detector_score").first()
    assert face is not None
    created = run_on_commit(
        lambda: api.post(
            f"/api/faces/{face.pk}/searches/",
            {"galleries": [gallery[0].pk], "justification": "Enhanced still from camera 3"},
            format="json",
        )
    )
    assert created.status_code == 201, created.json()
    search = api.get(f"/api/searches/{created.json()['id']}/").json()
    assert search["status"] == "done" and f"CUST-{identity}" in [c["subject_ref"] for c in search["candidates"]]
    assert search["probe_derivation"][0]["parent_sha256"] == parent.sha256

    pages = Client()
    pages.force_login(people["investigator"])
    for url in (
        f"/searches/{search['id']}/",
        f"/candidates/{search['candidates'][0]['id']}/",
        f"/probes/{derived.pk}/",
    ):
        html = pages.get(url).content.decode()
        assert "Enhanced image: how it was made" in html and "Contrast (CLAHE): clip limit 2.0, tiles 8" in html, url
        assert parent.sha256 in html, url
    report = pages.get(f"/searches/{search['id']}/report.pdf")
    text = pdf_text(report.content)
    assert "How the enhanced probe image was made" in text
    assert "Unsharp mask: sigma 1.0, amount 0.6" in text and parent.sha256 in text


@pytest.mark.django_db
def test_the_builder_page_previews_without_javascript_and_outsiders_see_nothing(
    case: Case, people: dict[str, Any], lfw_image: Path, run_on_commit: Callable[..., Any]
) -> None:
    api = client_for(people["investigator"])
    probe_id = run_on_commit(lambda: upload(api, case, lfw_image.read_bytes(), "still.jpg")).json()["id"]
    pages = Client()
    pages.force_login(people["colleague"])
    page = pages.get(f"/probes/{probe_id}/enhance/")
    assert page.status_code == 200 and "Deconvolve a stated blur" in page.content.decode()
    chain = json.dumps([{"op": "resize", "params": {"scale": 0.5}}])
    shown = pages.post(f"/probes/{probe_id}/enhance/", {"operations": chain, "action": "preview"})
    assert shown.status_code == 200 and Probe.objects.count() == 1
    preview_url = shown.context["preview_url"]
    image = pages.get(preview_url)
    assert image.status_code == 200
    preview = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
    assert preview is not None and preview.shape[:2] == (175, 175)
    refused = pages.get(f"/probes/{probe_id}/enhance/preview.png?operations=%5B%7B%22op%22%3A%22gan%22%7D%5D")
    assert refused.status_code == 400 and "unknown operation" in refused.json()["message"]
    saved = run_on_commit(lambda: pages.post(f"/probes/{probe_id}/enhance/", {"operations": chain}))
    assert saved.status_code == 302
    derived = Probe.objects.get(parent_id=probe_id)
    assert (derived.width, derived.height) == (175, 175) and derived.uploaded_by == people["colleague"]
    outsider = Client()
    outsider.force_login(people["outsider"])
    for url in (f"/probes/{probe_id}/enhance/", preview_url, f"/probes/{derived.pk}/"):
        assert outsider.get(url).status_code == 404
    assert (
        client_for(people["outsider"])
        .post(f"/api/probes/{probe_id}/derived/", {"operations": json.loads(chain)}, format="json")
        .status_code
        == 404
    )
    assert Probe.objects.filter(parent_id=probe_id).count() == 1
