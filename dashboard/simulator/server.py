"""A threaded WSGI server (wsgiref) that can drop a connection without answering.

`start()` runs it in a background thread and returns a handle with `url` and `stop()`;
`serve()` runs it in the foreground until interrupted (the runsim command). With a
`persist.Persister` the cloud is saved after requests and once more when it stops.
"""

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from dashboard.simulator.app import DROP_KEY, SimulatorApp
from dashboard.simulator.persist import Persister
from dashboard.simulator.state import SimState

log = logging.getLogger(__name__)


class _Handler(ServerHandler):
    def finish_response(self) -> None:
        if self.environ.get(DROP_KEY):
            self.close()  # nothing was written: the client sees the connection close
            return
        super().finish_response()


class _RequestHandler(WSGIRequestHandler):
    def handle(self) -> None:
        # As WSGIRequestHandler.handle, with our handler class and real multithreading.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _Handler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self
        handler.run(self.server.get_app())
        if handler.environ.get(DROP_KEY):
            self._drop()

    def _drop(self) -> None:
        with contextlib.suppress(OSError):  # the client may already be gone
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that time out or vanish mid-answer are normal under fault injection.
        log.debug("connection from %s ended abruptly", client_address, exc_info=True)


@dataclass
class RunningServer:
    state: SimState
    host: str
    port: int
    httpd: ThreadedWSGIServer
    stopping: threading.Event
    thread: threading.Thread | None = field(default=None)
    persister: Persister | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.persister is not None:
            self.persister.close()  # after the last request, so it is in the file


def make_server(
    state: SimState, host: str = "127.0.0.1", port: int = 0, persister: Persister | None = None
) -> RunningServer:
    """Bind (port 0 = a free port) without serving yet."""
    stopping = threading.Event()
    httpd = ThreadedWSGIServer((host, port), _RequestHandler)
    on_change = persister.changed if persister is not None else None
    httpd.set_app(SimulatorApp(state, stopping, on_change=on_change))
    return RunningServer(state, host, httpd.server_address[1], httpd, stopping, None, persister)


def start(
    state: SimState, host: str = "127.0.0.1", port: int = 0, persister: Persister | None = None
) -> RunningServer:
    """Serve in a daemon thread; call `.stop()` when done."""
    running = make_server(state, host, port, persister)
    running.thread = threading.Thread(
        target=running.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    running.thread.start()
    return running
