"""The /admin dashboard: a page of plain JavaScript modules that signs staff in and draws the
shop's figures from the same GraphQL queries any client sends to /graphql.

Everything it loads ships inside the package (``static/admin``): its modules, its GraphQL
documents, and a pinned copy of Chart.js (``static/admin/MANIFEST`` gives its version and
sha256, which the page also gives as Subresource Integrity; ``make vendor-admin`` fetches it
again). The page runs under a Content-Security-Policy that allows this server's own files
only: no inline script or style, no other origin. Outside production it is on; in production
only when ``SHOPGRAPH_ADMIN_DASHBOARD=true`` (``Settings.admin_dashboard_enabled``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.services.forecasts import SHOP_UTC_OFFSET

STATIC = Path(__file__).resolve().parent / "static"
ADMIN_DIR = STATIC / "admin"
PAGE_PATH = "/admin"
ASSETS_PATH = "/admin/static"

# Only this server's own files; the data comes from /graphql on the same origin. Trusted Types
# with no policy: no script may write HTML (the page builds its DOM node by node).
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page is small; always the current one (a new release may rename its modules).
    "Cache-Control": "no-store",
}
# Assets are revalidated (ETag) rather than kept: an upgrade is seen at the next load.
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
# Media types the platform's table may not know.
MEDIA_TYPES = {".graphql": "application/graphql; charset=utf-8", ".svg": "image/svg+xml"}


@cache
def _template() -> str:
    return (ADMIN_DIR / "index.html").read_text(encoding="utf-8")


async def page(request: Request) -> HTMLResponse:
    """The dashboard's page; URLs honour a proxy's path prefix (``root_path``)."""
    root = request.scope.get("root_path", "").rstrip("/")
    minutes = int(SHOP_UTC_OFFSET.total_seconds() // 60)
    html = (
        _template()
        .replace("{{assets}}", root + ASSETS_PATH)
        .replace("{{graphql}}", root + "/graphql")
        .replace("{{utc_offset_minutes}}", str(minutes))
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


class _WithHeaders:
    """An ASGI app whose responses carry extra headers, and the media type of their file."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        media_type = MEDIA_TYPES.get(Path(scope.get("path", "")).suffix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if media_type is not None and message["status"] < 400:
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    headers.append((b"content-type", media_type.encode()))
                message["headers"] = [*headers, *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def routes() -> list[BaseRoute]:
    """The page and its files (``/admin/`` is redirected to ``/admin`` by the router)."""
    files = StaticFiles(directory=ADMIN_DIR)
    return [
        Route(PAGE_PATH, page, methods=["GET"], name="admin"),
        Mount(ASSETS_PATH, app=_WithHeaders(files, ASSET_HEADERS), name="admin-assets"),
    ]
