"""``/docs`` without a CDN: Swagger UI's own files, served from the ``swagger-ui-bundle-v2`` package.

FastAPI's default docs page loads Swagger UI from a CDN, which fails offline. Here the same page
points at local copies. Without the package, ``/docs`` says how to get it and still links to
``/openapi.json``.
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def docs_headers(html: str) -> dict[str, str]:
    """The security headers of a docs page, allowing exactly its inline scripts by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    policy = (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def add_docs(app: FastAPI) -> None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None

    if swagger_ui_path is not None:
        app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            html = (
                "<!doctype html><title>mattekit API</title><p>The interactive docs need the "
                "<code>swagger-ui-bundle-v2</code> package (<code>pip install swagger-ui-bundle-v2</code>). "
                'The API description is at <a href="/openapi.json">/openapi.json</a>.</p>'
            )
        else:
            html = bytes(
                get_swagger_ui_html(
                    openapi_url=app.openapi_url or "/openapi.json",
                    title=f"{app.title} API",
                    swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                    swagger_css_url=f"{ASSETS}/swagger-ui.css",
                    swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
                ).body
            ).decode()
        return HTMLResponse(html, headers=docs_headers(html))
