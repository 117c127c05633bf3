"""The node's web page: one static page (``node/static/``) that verifies receipts with ``fetch()``.

``index.html`` answers ``/`` and ``/v/{leaf}`` (the link a receipt's QR code carries); every other
file there is served under ``/static/``, all under a strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from chain.service.web import ASGIApp, Message, NotFound, Receive, Scope, Send

#: The page (built separately): served when the directory exists.
STATIC_DIR = Path(__file__).resolve().parent / "static"

#: The page's Content-Security-Policy: its own files only, no inline code, no framing, and no form
#: submissions (the page has no form: it verifies with fetch()). Images may also be ``data:`` URIs:
#: an Open Badge's image carried inside the credential (a remote one is never fetched; an image
#: runs no script).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _PagePolicy:
    """Adds :data:`PAGE_POLICY` to every response of the wrapped (static files) app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", PAGE_POLICY.encode()),
                ]
            await send(message)

        await self.app(scope, receive, send_with_policy)


def mount_page(app: FastAPI, directory: Path) -> None:
    """Serves ``directory``'s ``index.html`` at ``/`` and ``/v/{leaf}``, and its files under ``/static/``."""
    index = directory / "index.html"
    headers = {"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        if not index.is_file():
            raise NotFound("no page is installed")
        return FileResponse(index, media_type="text/html", headers=headers)

    @app.get("/v/{leaf}", include_in_schema=False)
    async def page_for_leaf(leaf: Annotated[str, PathParam(pattern=r"^0x[0-9a-fA-F]{64}$")]) -> FileResponse:
        return await page()

    app.mount("/static", _PagePolicy(StaticFiles(directory=directory)), name="static")
