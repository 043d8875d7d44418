"""The live HTTP server: dashboard, ``/api/state`` and Prometheus ``/metrics``.

Standard library ``ThreadingHTTPServer`` in a daemon thread, bound to
127.0.0.1 only (the dashboard has no authentication). Routes:

* ``/``: the dashboard (``dashboard.html``: plain HTML and an inline script
  that fetches ``/api/state`` every second and draws with inline SVG; no
  build step, nothing from a CDN);
* ``/api/state``: :meth:`~swarmopt.live.state.LiveState.snapshot` as JSON;
* ``/metrics``: the Prometheus text format of :class:`~swarmopt.live.prom.PromExporter`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from swarmopt.live.prom import PromExporter
from swarmopt.live.state import LiveState
from swarmopt.observe import Observer
from swarmopt.schema import Scenario

HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        live = self.server.live
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", live.page)
        elif path == "/api/state":
            self._send(200, "application/json", json.dumps(live.state.snapshot(), allow_nan=False).encode())
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(live.registry))
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /, /api/state or /metrics\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        """Requests are not logged: the run's narrative owns stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    live: "LiveServer"


class LiveServer:
    """Serves the live view of a run of ``scenario`` on 127.0.0.1:``port``
    (0: a free port; see :attr:`url`). Pass :attr:`observers` to the
    :class:`~swarmopt.simulation.Simulation` (or ``run_scenario``). Raises
    OSError when the port is taken. Use :meth:`close` (or ``with``) to stop."""

    def __init__(self, scenario: Scenario, port: int = 0) -> None:
        self.state = LiveState(scenario)
        self.exporter = PromExporter(self.state)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.exporter)
        self.page = files("swarmopt.live").joinpath("dashboard.html").read_bytes()
        self._server = _Server((HOST, port), _Handler)
        self._server.live = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="swarmopt-live", daemon=True)
        self._thread.start()

    @property
    def observers(self) -> list[Observer]:
        """The observers that feed the server: the live state and the exporter."""
        return [self.state, self.exporter]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The dashboard's address, e.g. ``http://127.0.0.1:8000/``."""
        return f"http://{HOST}:{self.port}/"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> "LiveServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
