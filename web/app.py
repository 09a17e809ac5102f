"""The built-in web page and its JSON API (Starlette), over one store client.

Read-only by construction: every route is a GET, every query is a named one from `web.queries`
bound with server-side parameters, and each statement runs with `readonly = 2`. A bad
parameter is a 400 naming it; only a failing store is a 5xx.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from web import metrics, queries
from web.pages import PAGE_BY_SLUG, PAGES, TIMELINE_QUERIES, Page
from web.params import DataClock, iso, query_values, read_clock, refresh_seconds, result_json
from web.querylib import ParamError, QueryResult, StoreReadError, run_query

log = logging.getLogger(__name__)

DEFAULT_REFRESH_S = 30


class _OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class WebApp:
    """Routes over one clickhouse-connect client (shared with the pipeline under `--serve`)."""

    def __init__(self, client: Any, database: str, *, live: bool = False, refresh_s: int = DEFAULT_REFRESH_S) -> None:
        self.client = client
        self.database = database
        self.live = live
        self.refresh_s = refresh_s
        self.business = metrics.business_registry(client, database)
        self.templates = Environment(
            loader=PackageLoader("web", "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
        )

    def clock(self) -> DataClock:
        return read_clock(self.client, self.database, datetime.now(UTC))

    def run(self, name: str, values: dict[str, Any]) -> QueryResult:
        return run_query(self.client, queries.get(name), self.database, values)

    # --- JSON API -------------------------------------------------------------------------
    def api_query(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in queries.QUERIES:
            return _OrjsonResponse({"error": f"no query named {name!r}"}, status_code=404)
        try:
            clock = self.clock()
            values = query_values(request.query_params, clock)
            result = self.run(name, values)
        except ParamError as exc:
            return _OrjsonResponse({"error": str(exc)}, status_code=400)
        except StoreReadError as exc:
            log.warning("%s", exc)
            return _OrjsonResponse({"error": str(exc)}, status_code=503)
        query = queries.get(name)
        return _OrjsonResponse(
            {
                "query": name,
                "title": query.title,
                "clock": clock.as_json(),
                "params": {key: iso(value) if isinstance(value, datetime) else value for key, value in values.items()},
                **result_json(result),
            }
        )

    def api_queries(self, request: Request) -> Response:
        return _OrjsonResponse(
            [
                {"name": q.name, "title": q.title, "description": q.description, "params": sorted(q.params)}
                for q in queries.QUERIES.values()
            ]
        )

    def api_clock(self, request: Request) -> Response:
        try:
            return _OrjsonResponse(self.clock().as_json())
        except StoreReadError as exc:
            return _OrjsonResponse({"error": str(exc)}, status_code=503)

    def metrics_endpoint(self, request: Request) -> Response:
        return Response(metrics.exposition(self.business), media_type=CONTENT_TYPE_LATEST)

    # --- pages ----------------------------------------------------------------------------
    def page(self, request: Request) -> Response:
        slug = request.path_params.get("slug", "overview")
        if slug == "timeline":
            return self.timeline(request)
        page = PAGE_BY_SLUG.get(slug)
        if page is None:
            return self._error_page(404, f"no page {slug!r}")
        try:
            clock = self.clock()
            values = query_values(request.query_params, clock)
            refresh = refresh_seconds(request.query_params, self.refresh_s)
            options = self._options(values)
        except ParamError as exc:
            return self._error_page(400, str(exc))
        except StoreReadError as exc:
            return self._error_page(503, str(exc))
        panels = [
            {
                "query": p.query,
                "title": p.title,
                "description": queries.get(p.query).description,
                "width": p.width,
                "chart": asdict(p.chart),
            }
            for p in page.panels
        ]
        return self._render(page, clock, request, refresh, panels=panels, options=options)

    def timeline(self, request: Request) -> Response:
        try:
            clock = self.clock()
            values = query_values(request.query_params, clock)
            refresh = refresh_seconds(request.query_params, self.refresh_s)
            matches = self.run("delivery_search", values).records() if values["q"] else []
            if not values["delivery"] and len(matches) == 1:
                target = str(request.url.include_query_params(delivery=matches[0]["delivery_id"]))
                return RedirectResponse(target, status_code=303)
            sections = {}
            if values["delivery"]:
                sections = {name: result_json(self.run(name, values)) for name in TIMELINE_QUERIES}
        except ParamError as exc:
            return self._error_page(400, str(exc))
        except StoreReadError as exc:
            return self._error_page(503, str(exc))
        page = Page("timeline", "Delivery timeline", (), filters=())
        return self._render(
            page,
            clock,
            request,
            refresh,
            matches=matches,
            sections=sections,
            q=values["q"],
            delivery=values["delivery"],
        )

    def _options(self, values: dict[str, Any]) -> dict[str, list[str]]:
        return {
            "site": [str(row[0]) for row in self.run("sites", values).rows],
            "handoff": [str(row[0]) for row in self.run("handoffs", values).rows],
            "partner": [str(row[0]) for row in self.run("partners", values).rows],
        }

    def _render(self, page: Page, clock: DataClock, request: Request, refresh: int, **context: Any) -> Response:
        template = self.templates.get_template("timeline.html" if page.slug == "timeline" else "page.html")
        html = template.render(
            page=page,
            pages=PAGES,
            clock=clock.as_json(),
            args=dict(request.query_params),
            refresh=refresh,
            live=self.live,
            database=self.database,
            **context,
        )
        return HTMLResponse(html)

    def _error_page(self, status: int, message: str) -> Response:
        html = self.templates.get_template("error.html").render(status=status, message=message, pages=PAGES)
        return HTMLResponse(html, status_code=status)


def create_app(client: Any, database: str, *, live: bool = False, refresh_s: int = DEFAULT_REFRESH_S) -> Starlette:
    """The ASGI app for one store: pages, `/api/...`, `/metrics`, `/static/...`."""
    web = WebApp(client, database, live=live, refresh_s=refresh_s)
    static = StaticFiles(directory=str(resources.files("web").joinpath("static")))
    routes = [
        Route("/", web.page, methods=["GET"]),
        Route("/api/queries", web.api_queries, methods=["GET"]),
        Route("/api/query/{name}", web.api_query, methods=["GET"]),
        Route("/api/clock", web.api_clock, methods=["GET"]),
        Route("/metrics", web.metrics_endpoint, methods=["GET"]),
        Mount("/static", app=static, name="static"),
        Route("/{slug}", web.page, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.web = web
    return app
