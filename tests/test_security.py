"""SECURITY.md's promises about headers, CORS, API keys and server-side files, checked in-process
(no model needed: these answers come before any inference)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from mattekit.service import Settings, create_app

pytestmark = pytest.mark.unit  # make unit: in-process and fast


def _client(**settings) -> TestClient:
    return TestClient(create_app(Settings(workers=1, queue_size=1, load_model=False, **settings)))


def test_no_cors_by_default() -> None:
    with _client() as c:
        r = c.get("/api/v1/limits", headers={"Origin": "https://evil.example"})
        assert r.status_code == 200
        assert not any(h.lower().startswith("access-control-") for h in r.headers)
        pre = c.options("/api/v1/remove", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_exactly_the_listed_origins() -> None:
    with _client(cors_origins=("https://app.example",)) as c:
        ok = c.get("/api/v1/limits", headers={"Origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in ok.headers
        assert "x-crop-box" in ok.headers["access-control-expose-headers"].lower()  # the page's crop
        other = c.get("/api/v1/limits", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        pre = c.options(
            "/api/v1/remove",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key",
            },
        )
        assert pre.status_code == 200 and "POST" in pre.headers["access-control-allow-methods"]
        bad = c.options("/api/v1/remove", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert bad.status_code == 400


@pytest.mark.parametrize(
    "path,method",
    [
        ("/api/v1/limits", "GET"),
        ("/api/v1/remove", "POST"),
        ("/api/v1/jobs", "POST"),
        ("/api/v1/jobs/x", "GET"),
    ],
)
def test_api_keys_guard_every_api_route(path: str, method: str) -> None:
    with _client(api_keys=("s3cret-one", "s3cret-two")) as c:
        for headers in (
            {},
            {"X-API-Key": "wrong"},
            {"Authorization": "Bearer "},
            {"X-API-Key": "s3cret-one "},
            {"Authorization": "Basic s3cret-one"},
            {"X-API-Key": "S3CRET-ONE"},
        ):
            r = c.request(method, path, headers=headers)
            assert r.status_code == 401, (headers, r.status_code)
            assert r.json()["error"]["code"] == "unauthorized"
            assert "s3cret" not in r.text  # a refusal never echoes a key
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
        r = c.request(method, path, headers={"X-API-Key": "s3cret-two"})
        assert r.status_code != 401
        # Probes stay open so orchestrators work without a key.
        for probe in ("/healthz", "/readyz"):
            assert c.get(probe).status_code in (200, 503)


def test_no_auth_by_default() -> None:
    with _client() as c:
        assert c.get("/api/v1/limits").status_code == 200


@pytest.mark.parametrize("bg", ["/etc/passwd", "../../../etc/hosts", "C:\\\\boot.ini", "portrait.jpg", "x.png "])
def test_background_paths_are_refused(bg: str) -> None:
    """A client can never make the server read one of its own files as a background."""
    with _client() as c:
        r = c.post("/api/v1/remove", data={"bg": bg}, files={"file": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_option", r.text


def test_security_headers_and_no_server_limits_from_clients() -> None:
    with _client() as c:
        page = c.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        r = c.post(
            "/api/v1/remove", data={"max_pixels": "999999999999"}, files={"file": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")}
        )
        assert r.status_code == 400 and "max_pixels" in r.json()["error"]["message"]
