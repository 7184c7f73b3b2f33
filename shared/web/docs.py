"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served from this app, not from a CDN.

FastAPI's own pages load their JavaScript and CSS from a CDN, so on a machine without internet
(or a locked-down production network) they are blank. The files come from the pinned
`fastapi-offline` package (Swagger UI's `swagger-ui-bundle.js` and `swagger-ui.css`, ReDoc's
`redoc.standalone.js`, both MIT/Apache licensed as their bundles' headers say); only its static
folder is used, mounted at `/docs-static/`. The pages are plain Starlette routes, like FastAPI's,
so they are in no OpenAPI document and no route guard rule.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

STATIC_URL = "/docs-static"
STATIC_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def static_folder() -> Path:
    """The folder of the package that ships the Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """`app` must be created with `docs_url=None, redoc_url=None` (no CDN pages)."""
    folder = static_folder()
    missing = [name for name in STATIC_FILES if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"the docs files are missing from {folder}: {', '.join(missing)}")
    app.mount(STATIC_URL, StaticFiles(directory=folder), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(oauth2_redirect_url, oauth2_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
