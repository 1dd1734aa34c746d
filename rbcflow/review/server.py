"""The review web application: Starlette routes, Jinja2 pages, the token, and ``serve``.

Security
--------
- It listens on 127.0.0.1 unless told otherwise; with a loopback address, requests whose
  ``Host`` is not a loopback name are refused (a DNS-rebinding page cannot reach it).
- A random token (:func:`secrets.token_urlsafe`) is part of the URL printed and opened, as
  Jupyter does. A page request carrying it (``?token=``) gets it back as a ``SameSite=Strict``,
  ``HttpOnly`` cookie, so the page's images and links work; every request without the token
  (in the query, the cookie or the ``X-Rbcflow-Token`` header) gets 403. A decision
  (``POST``) needs the token in the ``X-Rbcflow-Token`` header, which another web page
  cannot set, and a JSON body: no form on another site can post one.
- Jinja2 autoescapes every string in the pages; data for the page's script goes as JSON with
  ``<``, ``>`` and ``&`` escaped, so a file or track name cannot close the script.
- Acquisitions are resolved only against ``report.csv``'s ``output`` names
  (:meth:`rbcflow.review.store.Results.acquisition`), tracks only as integers of
  ``tracks.csv``; no request path is joined to a folder.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from pathlib import Path

from rbcflow.errors import ReviewError
from rbcflow.review.decide import fit_reviews, record_decision, review_queue, reviewed_figures
from rbcflow.review.state import Review, _clean, page_json
from rbcflow.review.store import LABELS, Results, read_review

HERE = Path(__file__).parent
COOKIE = "rbcflow_review_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(
    results_dir: str | Path,
    *,
    token: str | None = None,
    reviewer: str = "",
    host: str = "127.0.0.1",
):
    """The Starlette application on ``results_dir`` (:class:`ReviewError` if it is not one)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    state = Review(Results(results_dir), token or secrets.token_urlsafe(24), reviewer)
    state.sync_all()
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def authorised(request: Request, header_only: bool = False) -> bool:
        given = request.headers.get("x-rbcflow-token", "")
        if not header_only:
            given = (
                given or request.query_params.get("token", "") or request.cookies.get(COOKIE, "")
            )
        return hmac.compare_digest(given.encode(), state.token.encode())

    def guarded(header_only: bool = False):
        def wrap(fn):
            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                if not authorised(request, header_only):
                    return PlainTextResponse("403: missing or wrong token", status_code=403)
                try:
                    response = await fn(request)
                except ReviewError as exc:
                    return PlainTextResponse(f"404: {exc.reason}", status_code=404)
                if request.query_params.get("token"):
                    response.set_cookie(COOKIE, state.token, httponly=True, samesite="strict")
                response.headers["Cache-Control"] = "no-store"
                response.headers["Content-Security-Policy"] = (
                    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'"
                )
                return response

            return endpoint

        return wrap

    @guarded()
    async def index(request: Request) -> Response:
        rows = await run_in_threadpool(state.index_rows)
        return templates.TemplateResponse(
            request, "index.html", {"rows": rows, "root": str(state.results.root)}
        )

    @guarded()
    async def acquisition(request: Request) -> Response:
        name = request.path_params["name"]
        data = await run_in_threadpool(state.page_data, name)
        return templates.TemplateResponse(
            request,
            "acquisition.html",
            {"data": data, "data_json": page_json(data), "token": state.token},
        )

    @guarded()
    async def state_of(request: Request) -> Response:
        name = request.path_params["name"]

        def get():
            acq = state.acquisition(name)
            review = read_review(acq)
            fitted = fit_reviews(acq, review)
            return {
                "review": {str(k): v["reviewed"] for k, v in review.items()},
                "figures": _clean(reviewed_figures(acq, review, fitted=fitted)),
                "order": review_queue(acq, review, fitted),
            }

        return JSONResponse(await run_in_threadpool(get))

    @guarded()
    async def strip(request: Request) -> Response:
        acq = state.acquisition(request.path_params["name"])
        path = acq.strip_path(request.path_params["track_id"])
        if not path.is_file():
            return PlainTextResponse("404: no strip for this track", status_code=404)
        return FileResponse(path, media_type="image/png")

    @guarded()
    async def thumbnail(request: Request) -> Response:
        acq = state.acquisition(request.path_params["name"])
        path = acq.folder / "thumbnail.png"
        if not path.is_file():
            return PlainTextResponse("404: no thumbnail", status_code=404)
        return FileResponse(path, media_type="image/png")

    @guarded()
    async def track_path(request: Request) -> Response:
        name, tid = request.path_params["name"], request.path_params["track_id"]
        return JSONResponse(await run_in_threadpool(state.path_of, name, tid))

    @guarded(header_only=True)
    async def decide(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            body = await request.json()
            track_id = int(body["track_id"])
            label = body.get("reviewed")
            if label is not None and label not in LABELS:
                raise ValueError(label)
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("400: expected {track_id, reviewed}", status_code=400)

        def save():
            acq = state.acquisition(name)
            order: list[int] = []
            figs = record_decision(
                state.results, acq, track_id, label, state.reviewer, derived=False, queue=order
            )
            state.changed(name)
            return {
                "figures": _clean(figs),
                "order": order,
                "track_id": track_id,
                "reviewed": label,
                "report_error": state.writer_error,
            }

        try:
            return JSONResponse(await run_in_threadpool(save))
        except ReviewError as exc:
            return PlainTextResponse(f"409: {exc}", status_code=409)

    routes = [
        Route("/", index),
        Route("/a/{name}", acquisition),
        Route("/a/{name}/state", state_of),
        Route("/a/{name}/decide", decide, methods=["POST"]),
        Route("/a/{name}/strip/{track_id:int}.png", strip),
        Route("/a/{name}/thumbnail.png", thumbnail),
        Route("/a/{name}/path/{track_id:int}", track_path),
        Mount("/static", app=_guarded_static(StaticFiles(directory=str(HERE / "static")), state)),
    ]
    middleware = []
    if host in LOOPBACK:
        middleware.append(
            Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])
        )
    app = Starlette(routes=routes, middleware=middleware)
    app.state.review = state
    return app


def _guarded_static(static, state: Review):
    """Static files behind the token cookie (or query) too."""

    async def app(scope, receive, send):
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        request = Request(scope)
        given = request.query_params.get("token", "") or request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(given.encode(), state.token.encode()):
            await PlainTextResponse("403: missing or wrong token", status_code=403)(
                scope, receive, send
            )
            return
        await static(scope, receive, send)

    return app
