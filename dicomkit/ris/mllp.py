"""The RIS's HL7 listener: MLLP (HL7 v2 Appendix C: <VT> message <FS><CR>) over TCP.

Library choice: ``hl7`` (python-hl7) over ``hl7apy``. Its MLLP framing is an asyncio stream
reader (``hl7.mllp.start_hl7_server`` / ``readblock``), so the listener runs on the RIS's own
event loop beside uvicorn and shares its ``OrderStore`` (one process, one writer lock), and
frames split across reads or several in one read are the stream reader's job, not ours.
hl7apy's MLLP server is a thread-per-connection ``socketserver`` and its structure-aware
parser is far slower; its schema validation would not replace ours, as the limits that
matter are the DICOM VR rules the worklist item must meet (``OrderIn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from dicomkit.ris import hl7in

if TYPE_CHECKING:
    from dicomkit.ris.store import OrderStore

log = logging.getLogger(__name__)

DEFAULT_PORT = 2575  # IANA's registered port for HL7 over MLLP
MAX_MESSAGE = 64 * 1024  # an order is < 1 KiB; bigger blocks are refused and the link closed
READ_TIMEOUT = 30.0  # seconds a connection may take to deliver one whole message (or idle)
MAX_CONNECTIONS = 64


class Listener:
    """Serves MLLP on ``host:port`` until ``close``; each message is handled in a worker
    thread (the store writes and fsyncs) and answered before the next is read."""

    def __init__(
        self,
        store: OrderStore,
        journal: hl7in.Journal,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.store = store
        self.journal = journal
        self.read_timeout = read_timeout
        self.server: asyncio.AbstractServer | None = None
        self.connections = 0

    async def start(self, host: str, port: int) -> None:
        from hl7.mllp import start_hl7_server

        self.server = await start_hl7_server(self._serve, host, port, limit=MAX_MESSAGE)
        log.info("HL7 MLLP listener on %s:%d", host, port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from hl7.mllp import InvalidBlockError

        peer = writer.get_extra_info("peername")
        self.connections += 1
        loop = asyncio.get_running_loop()
        try:
            if self.connections > MAX_CONNECTIONS:
                log.warning("HL7: refused %s, already %d connections", peer, MAX_CONNECTIONS)
                return
            sock = writer.get_extra_info("socket")
            if sock is not None:
                import socket

                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    block = await asyncio.wait_for(
                        reader.readblock(),  # type: ignore[attr-defined]
                        self.read_timeout,
                    )
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.warning("HL7: %s closed in the middle of a message", peer)
                    return
                except asyncio.TimeoutError:
                    log.warning(
                        "HL7: closed %s: no whole message within %.0f s", peer, self.read_timeout
                    )
                    return
                except InvalidBlockError:
                    # Bytes before <VT>: the stream is out of step, so answer once and close.
                    await self._answer(
                        writer, hl7in.refusal("bytes before the MLLP start block <VT>")
                    )
                    return
                except ValueError:  # over MAX_MESSAGE
                    await self._answer(
                        writer, hl7in.refusal(f"message longer than {MAX_MESSAGE} bytes")
                    )
                    return
                ack = await loop.run_in_executor(
                    None, hl7in.handle, block, self.store, self.journal
                )
                await self._answer(writer, ack)
        except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
            log.info("HL7: connection from %s lost: %s", peer, exc)
        finally:
            self.connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, ack: bytes) -> None:
        writer.writeblock(ack)  # type: ignore[attr-defined]  # hl7.mllp.HL7StreamWriter
        await asyncio.wait_for(writer.drain(), 10)
