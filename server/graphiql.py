"""GraphiQL served offline: the page and its pinned assets ship inside the package.

The assets are exact copies of npm packages (``static/graphiql/MANIFEST`` lists each with
its sha384, which the page also gives as Subresource Integrity); ``make vendor-graphiql``
fetches them again. Nothing is loaded from a CDN.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
ASSETS_DIR = STATIC / "graphiql"
ASSETS_PATH = "/graphiql"


@cache
def _template() -> str:
    return (STATIC / "graphiql.html").read_text(encoding="utf-8")


def page(request: Request) -> HTMLResponse:
    """The playground page; asset URLs honour a proxy's path prefix (``root_path``)."""
    prefix = request.scope.get("root_path", "").rstrip("/") + ASSETS_PATH
    return HTMLResponse(_template().replace("{{assets}}", prefix))


def assets_mount() -> Mount:
    return Mount(ASSETS_PATH, app=StaticFiles(directory=ASSETS_DIR), name="graphiql-assets")
