"""Issue 13, "Judged by": through the API alone, with a token, against the production shape: a real server
(runserver), a real Celery worker on Redis, PostgreSQL, and the seeded custody gallery of real faces.

Tokens are obtained with passwords; every later request carries `Authorization: Token <key>` and nothing else (no
cookie is ever sent). List galleries, open a case, upload the probe, wait for the worker, search, read the
candidates, fetch both faces' images, decide (investigator, then supervisor), close the case; then `audit verify`.
The stack is the one tests/e2e/test_workbench_browser.py starts (its own database and Redis database).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.test_workbench_browser import PASSWORD, _run, stack  # noqa: F401  (the stack fixture)


class TokenClient:
    """HTTP with a token only: urllib keeps no cookies unless told to."""

    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, content_type: str = ""
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert "Set-Cookie" not in response.headers, f"{path} set a cookie"
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, _, content = self.call(method, path, body)
        assert status == expect, f"{method} {path}: {status} {content[:500]!r}"
        return json.loads(content) if content else None

    def upload(self, path: str, file: Path, fields: dict[str, str]) -> Any:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{file.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + file.read_bytes()
            + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, _, content = self.call("POST", path, raw=body, content_type=f"multipart/form-data; boundary={boundary}")
        assert status == 201, f"upload: {status} {content[:500]!r}"
        return json.loads(content)

    def image(self, path: str) -> tuple[str, bytes]:
        status, headers, content = self.call("GET", path)
        assert status == 200, f"{path}: {status}"
        assert "no-store" in headers["Cache-Control"], path
        return headers["Content-Type"], content


def _token(base: str, username: str) -> TokenClient:
    key = TokenClient(base).json("POST", "/api/auth/token/", {"username": username, "password": PASSWORD})["token"]
    return TokenClient(base, key)


def _until(read: Any, done: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if done(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not finish within {timeout}s: {value}")


def test_the_judged_flow_through_the_api_alone_against_a_real_worker(stack: dict[str, Any]) -> None:  # noqa: F811
    base, seed = stack["base"], stack["seed"]
    assert seed.get("probe"), f"seeding found no probe photo: {seed}"
    ivy, sam = _token(base, "ivy"), _token(base, "sam")

    galleries = ivy.json("GET", "/api/galleries/")["results"]
    gallery = next(g for g in galleries if g["name"] == seed["gallery"])
    assert gallery["subjects"] == seed["identities"]

    case = ivy.json(
        "POST",
        "/api/cases/",
        {"reference": "OP-E2E-API", "title": "Token only", "purpose": "suspect", "legal_basis": "PACE"},
        expect=201,
    )
    probe = ivy.upload(
        f"/api/cases/{case['id']}/probes/",
        Path(seed["probe"]),
        {"source": "cctv", "description": "Camera 4", "lawfully_held": "true"},
    )
    probe = _until(
        lambda: ivy.json("GET", f"/api/probes/{probe['id']}/"), lambda p: p["status"] in ("done", "failed"), "probe"
    )
    assert probe["status"] == "done" and probe["faces"], probe
    face = probe["faces"][0]

    search = ivy.json(
        "POST",
        f"/api/faces/{face['id']}/searches/",
        {"galleries": [gallery["id"]], "justification": "Suspect seen on camera 4"},
        expect=201,
    )
    _until(
        lambda: ivy.json("GET", f"/api/searches/{search['id']}/status/"),
        lambda s: s["status"] in ("done", "failed"),
        "search",
    )
    assert ivy.json("GET", f"/api/cases/{case['id']}/searches/")["count"] == 1
    candidates = ivy.json("GET", f"/api/searches/{search['id']}/")["candidates"]
    mated = next(c for c in candidates if c["subject_ref"] == seed["subject_ref"])
    candidate = ivy.json("GET", f"/api/candidates/{mated['id']}/")

    # Both faces, as the API addresses it gives: originals and aligned crops.
    kind, original = ivy.image(probe["image_url"])
    assert kind == "image/jpeg" and original == Path(seed["probe"]).read_bytes()
    for key in ("probe_face_crop", "gallery_face_crop"):
        kind, crop = ivy.image(candidate["images"][key])
        assert kind == "image/png" and crop.startswith(b"\x89PNG"), key
    kind, gallery_image = ivy.image(candidate["images"]["gallery_image"])
    assert kind.startswith("image/") and gallery_image

    decisions = f"/api/candidates/{mated['id']}/decisions/"
    ivy.json("POST", decisions, {"decision": "possible_match", "rationale": "Same jaw and ears"}, expect=201)
    released = sam.json("POST", decisions, {"decision": "possible_match", "rationale": "Agree"}, expect=201)
    assert released["released"] is True

    closed = ivy.json("POST", f"/api/cases/{case['id']}/close/", {"reason": "Charged"})
    assert closed["status"] == "closed"

    verify = _run([stack["python"], "manage.py", "audit", "verify"], stack["env"])
    assert "OK" in verify
