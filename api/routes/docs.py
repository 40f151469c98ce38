"""The dashboard at `/` and the OpenAPI docs (Swagger UI at `/docs`, ReDoc at `/redoc`), from files shipped in the
package: they work with no internet, as GPU clusters often have none (FastAPI's defaults load both from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(include_in_schema=False)


def _under_root(request: Request, path: str) -> str:
    return request.scope.get("root_path", "") + path


@router.get("/")
def dashboard() -> FileResponse:
    """The dashboard: jobs, live plots, bounds picked from a range test (the key is typed on the page)."""
    return FileResponse(STATIC_DIR / "dashboard" / "index.html")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for this API."""
    return get_swagger_ui_html(
        openapi_url=_under_root(request, request.app.openapi_url),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_under_root(request, "/static/swagger-ui/swagger-ui-bundle.js"),
        swagger_css_url=_under_root(request, "/static/swagger-ui/swagger-ui.css"),
        swagger_favicon_url=_under_root(request, "/static/swagger-ui/favicon-32x32.png"),
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc for this API."""
    return get_redoc_html(
        openapi_url=_under_root(request, request.app.openapi_url),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_under_root(request, "/static/redoc/redoc.standalone.js"),
        redoc_favicon_url=_under_root(request, "/static/swagger-ui/favicon-32x32.png"),
        with_google_fonts=False,
    )
