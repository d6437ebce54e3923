"""The `/ui` page: recommend and explain, memory browser, learning dashboard (issue 18).

`mount_ui(app)` adds the page routes, the dashboard's JSON route and the static assets
(`static/`: the page's own script and style; `static/vendor/`: htmx and Chart.js, built by
`serving/ui/assets/build.sh` from the pinned npm lock file and served by the app, no CDN).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from serving.ui import pages, stats

STATIC = Path(__file__).parent / "static"
"""Served at `/ui/static`."""


def mount_ui(app: FastAPI) -> None:
    """Add the `/ui` routes and static files to the app."""
    app.state.ui_model_seen = {}  # model version -> first served (the dashboard's "loaded")
    app.include_router(pages.router)
    app.include_router(stats.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


__all__ = ["mount_ui"]
