"""Run the review application with uvicorn on a socket bound before anything is printed."""

from __future__ import annotations

import errno
import secrets
import socket
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

from rbcflow.errors import ReviewError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0: any free port).

    Raises
    ------
    ReviewError
        The port is in use (or the address cannot be bound): one line naming it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        what = (
            "is in use (choose another with --port)"
            if exc.errno == errno.EADDRINUSE
            else (f"cannot be bound: {exc.strerror or exc}")
        )
        raise ReviewError(f"port {port} on {host} {what}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def review_url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def serve(
    results_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    reviewer: str = "",
    open_browser: bool = True,
    token: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the review of ``results_dir`` until interrupted (Ctrl-C).

    The folder is checked and the port bound first, so a bad folder or a port in use is a
    one-line :class:`ReviewError` before anything starts; then the URL with its token is
    printed (and opened in the browser unless ``open_browser`` is False).
    """
    import uvicorn

    from rbcflow.review.server import create_app

    token = token or secrets.token_urlsafe(24)
    app = create_app(results_dir, token=token, reviewer=reviewer, host=host)
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    url = review_url(host, actual, token)
    echo(f"rbcflow review: {app.state.review.results.root}")
    echo(f"open {url}")
    echo("(Ctrl-C stops it; every decision is already saved)")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        app.state.review.close()  # the report's figures of the last decisions
