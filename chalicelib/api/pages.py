"""The worker web page: one self-contained HTML file (CSS and JavaScript inline, no build
step) served by the API itself, so it calls the task API on the same origin."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from chalice import Blueprint, Response

bp = Blueprint(__name__)
PAGE = Path(__file__).resolve().parents[1] / "web" / "worker.html"


@lru_cache(maxsize=1)
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@bp.route("/work", methods=["GET"])
def worker_page() -> Response:
    """The worker page: sign in with a token, pick a job, work by keyboard, see earnings."""
    return Response(body=_page(), status_code=200, headers={
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-cache",
        # The page talks only to this API, and is framed nowhere; it frames HITs' questions
        # (a requester's study page on any host, or HTML this API hosts).
        "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                   "style-src 'unsafe-inline'; frame-src http: https:; "
                                   "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff"})
