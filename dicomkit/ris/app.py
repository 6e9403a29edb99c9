"""The RIS HTTP API (FastAPI): orders in, worklist items out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomkit import __version__
from dicomkit.ris.models import OrderIn, OrderOut, StatusIn
from dicomkit.ris.store import DuplicateAccession, OrderNotFound, OrderStore, StatusConflict

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # an order is < 1 KiB; anything near this is a mistake or an attack


class BodyLimit:
    """Answer 413 for bodies over ``limit``: by Content-Length up front, and by counting the
    bytes actually received (a client may lie about Content-Length or send chunks)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _too_large(send, self.limit)
                    return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now: FastAPI turns any error while reading the body into a 400.
                    if not started and not refused:
                        refused = True
                        await _too_large(send, self.limit)
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is already out; drop whatever the app answers after it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started and not refused:
                await _too_large(send, self.limit)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = (
        b'{"error":"request body too large","hint":"an order is a small JSON object; '
        b"the limit is " + str(limit).encode() + b' bytes"}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _field_errors(exc: RequestValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        name = ".".join(loc) or "body"
        msg = str(err.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "is required"
        elif err.get("type") == "extra_forbidden":
            msg = "is not a field of an order (check the spelling)"
        fields.setdefault(name, msg)
    return fields


def _warm_up() -> None:
    """Encode one worklist item before serving. pydicom imports its modules on first use, and
    first imports racing in request threads left it half-initialised: every order after that
    failed with "module 'pydicom' has no attribute 'Sequence'" (seen under 16 parallel POSTs)."""
    from pydicom.uid import generate_uid

    from dicomkit.dicom import worklist
    from dicomkit.ris.models import OrderIn

    order = OrderIn(patient_id="P", patient_name="WARM^UP=ÜP", accession="A", modality="CR",
                    study_desc="Ü", referring_physician="R^R")  # fmt: skip
    out = OrderOut(order=order, worklist_item_id="0" * 32, study_instance_uid=generate_uid(),
                   requested_procedure_id="RP", scheduled_procedure_step_id="SPS",
                   scheduled_date="20260101", scheduled_time="000000", station_aet="AE",
                   created="")  # fmt: skip
    worklist.encode(worklist.build_item(out))


def create_app(
    db_path: Path,
    worklist_dir: Path,
    station_aet: str = "DICOMKIT",
    hl7: tuple[str, int] | None = None,
    hl7_timeout: float = 30.0,
) -> FastAPI:
    """The RIS; with ``hl7=(host, port)`` it also listens for HL7 v2 over MLLP (ris/mllp.py)
    while the app runs, on the same event loop and order store."""
    from dicomkit.ris.hl7in import Journal

    _warm_up()
    store = OrderStore(db_path, worklist_dir, station_aet)
    recovered = store.recover()
    if any(recovered.values()):
        log.warning("recovered after restart: %s", recovered)
    journal = Journal()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if hl7 is None:
            yield
            return
        from dicomkit.ris.mllp import Listener

        listener = Listener(store, journal, read_timeout=hl7_timeout)
        await listener.start(*hl7)
        try:
            yield
        finally:
            await listener.close()

    # The API pages (/docs, /redoc) load Swagger UI and ReDoc from this server, never from a
    # CDN: fastapi-offline is FastAPI's documented self-hosting recipe with the assets shipped.
    app = FastAPIOffline(
        lifespan=lifespan,
        title="dicomkit RIS",
        version=__version__,
        description=(
            "A teaching RIS: each order becomes a DICOM Modality Worklist item (a `.wl` file) "
            "that the lab's MWL SCP serves to modalities."
        ),
    )
    app.add_middleware(BodyLimit)
    app.state.store = store
    app.state.hl7_journal = journal

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _field_errors(exc)
        if request.url.path.endswith("/status"):  # the MPPS SCP's report, not an order
            error, hint = "invalid status report", 'e.g. {"status": "COMPLETED"}'
        else:
            error, hint = (
                "invalid order",
                "fix the fields named in 'fields' (DICOM VR limits apply)",
            )
        return JSONResponse(
            status_code=422, content={"error": error, "fields": fields, "hint": hint}
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """Liveness and the worklist folder's state."""
        return {
            "status": "ok",
            "version": __version__,
            "orders": store.count(),
            "worklist_dir": str(store.worklist_dir),
        }

    @app.get("/hl7/messages", tags=["hl7"])
    def hl7_messages() -> list[dict[str, Any]]:
        """The last HL7 messages received over MLLP, oldest first, each with its ACK code
        (AA, AE, AR), the accession it concerned and the errors named in its ERR segments."""
        return journal.list()

    @app.get("/events", tags=["orders"])
    def order_events(accession: str) -> list[dict[str, Any]]:
        """What happened to an order, oldest first: how it arrived (via http or hl7, with the
        HL7 message type and control ID), each status the MPPS SCP reported (with when it
        received the message) and a cancel. Kept after the order is cancelled."""
        return store.events(accession)

    @app.post("/orders", status_code=201, response_model=OrderOut, tags=["orders"])
    def create_order(order: OrderIn) -> Any:
        """Place an order; its worklist item is written before the answer is sent."""
        try:
            return store.create(order)
        except DuplicateAccession:
            return JSONResponse(
                status_code=409,
                content={
                    "error": f"accession {order.accession} already has an order",
                    "hint": "use a new accession number, or cancel the old order first "
                    "(DELETE /orders/{accession})",
                },
            )

    @app.get("/orders", response_model=list[OrderOut], tags=["orders"])
    def list_orders() -> Any:
        """Every order, oldest first."""
        return store.list()

    @app.get("/orders/{accession:path}", response_model=OrderOut, tags=["orders"])
    def get_order(accession: str) -> Any:
        try:
            return store.get(accession)
        except OrderNotFound:
            return _not_found(accession)

    @app.post("/orders/{accession:path}/status", response_model=OrderOut, tags=["orders"])
    def set_status(accession: str, change: StatusIn) -> Any:
        """The order's procedure step state, as the MPPS SCP reports it: IN PROGRESS
        (N-CREATE), COMPLETED or DISCONTINUED (the final N-SET; the worklist item goes)."""
        try:
            heard = {"received": change.received, "calling_aet": change.calling_aet}
            return store.set_status(
                accession,
                change.status,
                change.mpps_sop_instance_uid,
                change.study_instance_uid,
                {k: v for k, v in heard.items() if v},
            )
        except OrderNotFound:
            return _not_found(accession)
        except StatusConflict as exc:
            return JSONResponse(
                status_code=409,
                content={
                    "error": str(exc),
                    "hint": "a step goes SCHEDULED -> IN PROGRESS -> COMPLETED or DISCONTINUED, "
                    "once; see GET /orders/{accession}",
                },
            )

    @app.delete("/orders/{accession:path}", response_model=OrderOut, tags=["orders"])
    def cancel_order(accession: str) -> Any:
        """Cancel an order and remove its worklist item."""
        try:
            return store.delete(accession)
        except OrderNotFound:
            return _not_found(accession)

    return app


def _not_found(accession: str) -> JSONResponse:
    return JSONResponse(
        status_code=404,
        content={
            "error": f"no order with accession {accession}",
            "hint": "list orders with GET /orders (dicomkit order list)",
        },
    )
