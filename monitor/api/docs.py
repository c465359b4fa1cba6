"""Self-hosted API docs: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, their JavaScript,
CSS and favicon served from :data:`STATIC` by this daemon instead of FastAPI's default CDN, so
both pages work on a machine without internet.

The files come from the ``fastapi-offline`` package (its ``static`` folder: Swagger UI 5,
which reads the OpenAPI 3.1 that FastAPI writes, and ReDoc 2); only the files are used, the
routes are FastAPI's own page builders (FastAPI's "Custom Docs UI Static Assets" how-to).
Nothing here is under ``/v1``, so the signature gate leaves it public as the default docs were.
Both pages carry :data:`CSP`, so the browser fetches nothing from another origin (ReDoc's
sidebar would load the Redocly logo from its CDN; blocked, the logo is just left out).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = "/static/docs"
"""Where the docs' assets are mounted."""

ASSETS = ("fastapi_offline", "static")
"""(package, folder) holding ``swagger-ui-bundle.js``, ``swagger-ui.css``,
``redoc.standalone.js`` and ``favicon.png``."""

CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'")
"""Content-Security-Policy of the two pages: this origin only (inline code is FastAPI's page
setup; ReDoc styles inline and searches in a ``blob:`` worker)."""


def _same_origin(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Add ``docs_url`` (Swagger UI, with its OAuth2 redirect page as FastAPI adds it),
    ``redoc_url`` (ReDoc) and the assets under :data:`STATIC` to ``app``, which was
    built with ``docs_url=None, redoc_url=None``. URLs honour the ASGI ``root_path``."""
    app.mount(STATIC, StaticFiles(packages=[ASSETS]), name="docs-static")
    openapi_url, redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url
    assert openapi_url, "the docs need the OpenAPI document"

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return _same_origin(get_swagger_ui_html(
            openapi_url=base + openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{base}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{base}{STATIC}/favicon.png",
            oauth2_redirect_url=base + redirect_url if redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth,
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})}))

    if redirect_url:
        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return _same_origin(get_redoc_html(
            openapi_url=base + openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{STATIC}/favicon.png", with_google_fonts=False))
