"""`esper karn serve`: a local web dashboard over every run in a runs directory.

A stdlib HTTP server (no framework, no network access: the page, script and styles ship in `esper/karn/static/`,
with the vendored uPlot charting library and its licence).
The page polls `/api/runs/<run_id>?log_after=N` once a second; each poll folds the run's newly written events into
its LiveRun, so a run in progress updates live. Binds to 127.0.0.1 unless told otherwise.

Routes: `/` the page; `/static/<file>` its assets; `/api/runs` the run listing; `/api/runs/<run_id>` a run's
snapshot (the event log only after `log_after`); `/api/compare?runs=a,b` what the run comparison overlays for each
named run (LiveRun.comparison), in the order named.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from esper.karn.live import LiveRun
from esper.karn.runs import describe_run
from esper.karn.store import is_run_dir, list_run_dirs
from esper.leyline import WireError

STATIC_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".txt": "text/plain",  # uPlot.LICENSE.txt: the vendored library's licence ships and is served with it
}
RUN_ID: Final = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_COMPARED: Final = 8  # runs one comparison overlays: one colour each, a legend that still reads


class NoRun(LookupError):
    """A run id that names no run directory under the dashboard's runs directory."""

    def __init__(self, run_id: str, runs_dir: Path) -> None:
        super().__init__(f"no run {run_id!r} in {runs_dir}")


class Dashboard:
    """The runs directory and one LiveRun per run that has been looked at."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._live: dict[str, LiveRun] = {}
        self._lock = threading.Lock()
        self.snapshots_served = 0

    def runs(self) -> list[dict[str, object]]:
        return [describe_run(path).as_dict() for path in reversed(list_run_dirs(self.runs_dir))]

    def _refreshed(self, run_id: str) -> LiveRun:
        """The run's LiveRun with its newly written events folded (the caller holds the lock); NoRun: no such run."""
        run_dir = self.runs_dir / run_id
        if not RUN_ID.match(run_id) or not is_run_dir(run_dir):
            raise NoRun(run_id, self.runs_dir)
        live = self._live.setdefault(run_id, LiveRun(run_dir))
        live.refresh()
        return live

    def snapshot(self, run_id: str, log_after: int) -> dict[str, Any]:
        """The run's state for the page (NoRun: no such run)."""
        with self._lock:  # one fold at a time per dashboard: LiveRun is not thread-safe
            live = self._refreshed(run_id)
            self.snapshots_served += 1
            return live.snapshot(log_after=log_after)

    def compare(self, run_ids: list[str]) -> dict[str, Any]:
        """What the comparison overlays for each run, in the order given; NoRun names the first that is missing."""
        with self._lock:
            return {"runs": [self._refreshed(run_id).comparison() for run_id in run_ids]}


def compared_runs(query: str) -> list[str]:
    """The run ids of `/api/compare?runs=a,b`; ValueError says what is wrong with them."""
    values = parse_qs(query, keep_blank_values=True)
    if "runs" not in values or len(values["runs"]) != 1:
        raise ValueError("give the runs to compare once, as runs=a,b")
    run_ids = values["runs"][0].split(",")
    bad = [run_id for run_id in run_ids if not RUN_ID.match(run_id)]
    if bad:
        raise ValueError(f"not a run id: {bad[0]!r}")
    if len(set(run_ids)) != len(run_ids):
        raise ValueError(f"a run is named twice in {values['runs'][0]!r}")
    if len(run_ids) > MAX_COMPARED:
        raise ValueError(f"at most {MAX_COMPARED} runs are compared at once, got {len(run_ids)}")
    return run_ids


def static_file(name: str) -> tuple[bytes, str] | None:
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
        return None
    asset = resources.files("esper.karn") / "static" / name
    if not asset.is_file():
        return None
    return asset.read_bytes(), STATIC_TYPES[suffix]


class DashboardHandler(BaseHTTPRequestHandler):
    server: DashboardServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, allow_nan=False).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        if path.startswith("/static/"):
            found = static_file(path.removeprefix("/static/"))
            if found is None:
                self._json({"error": f"no asset {path}"}, HTTPStatus.NOT_FOUND)
                return
            self._send(HTTPStatus.OK, *found)
            return
        if path == "/api/runs":
            self._json(self.server.dashboard.runs())
            return
        if path == "/api/compare":
            self._compare(url.query)
            return
        if path.startswith("/api/runs/"):
            query = parse_qs(url.query)
            raw = query["log_after"][0] if "log_after" in query else "0"
            if not raw.isdigit():
                self._json({"error": f"log_after must be a non-negative integer, got {raw!r}"}, HTTPStatus.BAD_REQUEST)
                return
            run_id = path.removeprefix("/api/runs/")
            self._answer(lambda: self.server.dashboard.snapshot(run_id, int(raw)))
            return
        self._json({"error": f"no route {path}"}, HTTPStatus.NOT_FOUND)

    def _compare(self, query: str) -> None:
        try:
            run_ids = compared_runs(query)
        except ValueError as exc:  # the page or a script asked badly: say how
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
            return
        self._answer(lambda: self.server.dashboard.compare(run_ids))

    def _answer(self, read: Callable[[], dict[str, Any]]) -> None:
        """What `read` gives about runs, or the error the page shows: each is an answer, not a swallowed failure."""
        try:
            body = read()
        except NoRun as exc:  # a run id that names no run: 404 naming it and the runs directory
            self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
            return
        except WireError as exc:  # a corrupt event log: the page shows its file and line number
            self._json({"error": str(exc)}, HTTPStatus.UNPROCESSABLE_ENTITY)
            return
        self._json(body)


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, runs_dir: Path, host: str = "127.0.0.1", port: int = 8765, *, verbose: bool = False) -> None:
        self.dashboard = Dashboard(runs_dir)
        self.verbose = verbose
        super().__init__((host, port), DashboardHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/"


def serve(runs_dir: Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    server = DashboardServer(runs_dir, host, port, verbose=True)
    print(f"Karn dashboard for {runs_dir} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how a dashboard is stopped: close the socket and return normally
        print("stopped")
    finally:
        server.server_close()
