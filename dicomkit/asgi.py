"""The lab's one HTTP stack (FastAPI on uvicorn), shared by the RIS and the embedded PACS:
a request deadline against slow clients, and a server run in a background thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds a client has to send one whole request (headers and body)


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for receiving each request: uvicorn only times
    out idle keep-alive connections, so a client that connects and sends nothing, or dribbles
    a byte at a time (slowloris), would hold its connection forever."""

    request_timeout = REQUEST_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets TCP_NODELAY only on sockets made with proto IPPROTO_TCP, and ours
            # (proto 0) are not: every keep-alive request after the first stalled ~40 ms
            # (Nagle + delayed ACK) until this.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.warning(
                "closed a connection from %s: no whole request within %.0f s",
                self.client[0] if self.client else "?",
                self.request_timeout,
            )
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # bytes of a new request: its clock starts now
        super().data_received(data)
        if self.cycle is not None and not self.cycle.more_body:
            self._disarm()  # the whole request is in; the app sets the pace from here

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class ThreadedServer:
    """A uvicorn server for ``app`` in a daemon thread, on a socket bound before ``start``
    returns (a taken port fails here, not later in the thread). ``shutdown`` and
    ``server_close`` stop it, like socketserver's."""

    def __init__(self, app: Any, host: str, port: int, request_timeout: float = REQUEST_TIMEOUT,
                 name: str = "http") -> None:  # fmt: skip
        import uvicorn

        protocol: Any = type(
            f"{name.title()}Protocol", (DeadlineH11Protocol,), {"request_timeout": request_timeout}
        )
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(128)
        except OSError:
            self.sock.close()
            raise
        config = uvicorn.Config(
            app, log_level="warning", timeout_keep_alive=5, limit_concurrency=256, http=protocol,
            lifespan="off", access_log=False, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        # No signal handlers: the thread is not the main one (uvicorn checks), the owner stops it.
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP server on {self.sock.getsockname()} did not start")
            time.sleep(0.005)
        return self

    def shutdown(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def server_close(self) -> None:
        self.sock.close()
