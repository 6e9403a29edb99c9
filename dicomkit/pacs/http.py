"""The embedded PACS's HTTP side, on the lab's one HTTP stack (FastAPI on uvicorn, like the
RIS): ``/status``, a read-only subset of Orthanc's REST API (``/system``, ``/statistics``,
``/patients|studies|series|instances[/{id}]``, ``/tools/find``) so lessons and checks make the
same calls on both engines, DICOMweb at ``/dicom-web`` (dicomweb.py) and a browsing page at
``/`` (page.py). Bound to cfg.host.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dicomkit.labevents import PROBE_HEADER
from dicomkit.pacs.httperror import HttpError
from dicomkit.pacs.index import Resource
from dicomkit.pacs.match import compile_query, matches_all
from dicomkit.pacs.qr import flat_of

if TYPE_CHECKING:
    from dicomkit.asgi import ThreadedServer
    from dicomkit.pacs.server import PacsServer

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a /tools/find body is < 1 KiB
# Orthanc's REST names for the levels, and which of our levels they are.
_LEVELS = {
    "patients": ("PATIENT", "Patient"),
    "studies": ("STUDY", "Study"),
    "series": ("SERIES", "Series"),
    "instances": ("IMAGE", "Instance"),
}
_FIND_LEVELS = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "instance": "IMAGE"}
_CHILDREN = {"PATIENT": "Studies", "STUDY": "Series", "SERIES": "Instances"}
_PARENT = {"STUDY": "ParentPatient", "SERIES": "ParentStudy", "IMAGE": "ParentSeries"}

__all__ = ["HttpError", "create_app", "describe", "start_http", "tools_find"]


def _patient_tags(tags: dict[str, str]) -> dict[str, str]:
    from dicomkit.pacs.index import PATIENT_TAGS

    return {k: v for k, v in tags.items() if k in PATIENT_TAGS}


def describe(server: PacsServer, res: Resource) -> dict[str, Any]:
    """A resource in the shape Orthanc gives it (the fields lessons use)."""
    level_name = {"PATIENT": "Patient", "STUDY": "Study", "SERIES": "Series", "IMAGE": "Instance"}
    out: dict[str, Any] = {
        "ID": res.id,
        "Type": level_name[res.level],
        "MainDicomTags": dict(res.tags),
        "IsStable": True,
    }
    if res.level in _PARENT:
        out[_PARENT[res.level]] = res.parent
    if res.level == "STUDY":
        out["PatientMainDicomTags"] = _patient_tags(res.parent_tags)
    if res.level in _CHILDREN:
        out[_CHILDREN[res.level]] = server.index.children(res.level, res.id)
    if res.level == "IMAGE":
        out["FileSize"] = res.extra.get("size", 0)
        out["MainDicomTags"].pop("SOPClassUID", None)
    return out


def _query_tag(name: str) -> int:
    """A /tools/find key: a keyword or ``GGGG,EEEE`` (Orthanc takes both); 400 otherwise."""
    from pydicom.datadict import dictionary_has_tag, tag_for_keyword

    tag = tag_for_keyword(name)
    if tag is None and len(name) == 9 and name[4] == ",":
        try:
            number = int(name[:4] + name[5:], 16)
        except ValueError:
            number = -1
        if number >= 0 and dictionary_has_tag(number):
            tag = number
    if tag is None:
        raise HttpError(400, f"unknown DICOM tag {name!r} in Query (use a keyword or GGGG,EEEE)")
    return int(tag)


def tools_find(server: PacsServer, body: dict[str, Any]) -> list[Any]:
    """Orthanc's ``POST /tools/find``: {"Level": "Study", "Query": {...}, "Expand": bool}."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataset import Dataset

    level = _FIND_LEVELS.get(str(body.get("Level", "")).lower())
    if level is None:
        raise HttpError(400, "Level must be Patient, Study, Series or Instance")
    query = body.get("Query", {})
    if not isinstance(query, dict):
        raise HttpError(400, "Query must be an object of DICOM keywords")
    ds = Dataset()
    for keyword, value in query.items():
        tag = _query_tag(str(keyword))
        vr = str(dictionary_VR(tag)).split(" or ")[0]
        text = str(value)
        if vr == "UI" and ("*" in text or "?" in text):
            # Like Orthanc: UIDs match exactly or as a list (PS3.4 C.2.2.2.2), never by wildcard.
            raise HttpError(400, f"wildcards are not allowed on the UID {keyword!r}")
        if vr in ("SQ", "OB", "OW", "UN"):
            raise HttpError(400, f"{keyword!r} ({vr}) cannot be matched")
        ds.add_new(tag, vr, text)
    constraints = compile_query(ds)
    candidates = server.index.lookup(level, constraints)
    if candidates is None:
        candidates = server.index.resources(level)
    found = [r for r in candidates if matches_all(flat_of(r)[0], constraints)]
    limit = body.get("Limit")
    if isinstance(limit, int) and limit > 0:
        found = found[:limit]
    if body.get("Expand"):
        return [describe(server, r) for r in found]
    return [r.id for r in found]


def _system(server: PacsServer) -> dict[str, Any]:
    from dicomkit.pacs import NAME, VERSION

    return {
        "Name": server.cfg.name,
        "Version": VERSION,
        "DicomAet": server.cfg.aet,
        "DicomPort": server.cfg.dicom_port,
        "HttpPort": server.cfg.http_port,
        "Server": NAME,
    }


def _statistics(server: PacsServer) -> dict[str, Any]:
    c = server.index.counts()
    size = server.index.total_size()
    return {
        "CountPatients": c["patients"],
        "CountStudies": c["studies"],
        "CountSeries": c["series"],
        "CountInstances": c["instances"],
        "TotalDiskSize": str(size),
        "TotalDiskSizeMB": size // (1024 * 1024),
    }


def create_app(server: PacsServer) -> FastAPI:
    from dicomkit.pacs import page
    from dicomkit.pacs.dicomweb import make_router, read_body

    # No /docs here: Orthanc has none, and the lab's pages load nothing from outside.
    app = FastAPI(title="dicomkit embedded PACS", docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "HttpStatus": status}, status_code=status)

    @app.exception_handler(HttpError)
    async def on_http_error(request: Request, exc: HttpError) -> Response:
        return error(exc.status, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_starlette_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = "unknown URI" if exc.status_code == 404 else str(exc.detail)
        if exc.status_code == 405:
            message = f"{request.method} is not supported here"
        return error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("HTTP %s %s failed", request.method, request.url.path)
        return error(500, "internal error, see the PACS log")

    @app.middleware("http")
    async def feed(request: Request, call_next: Any) -> Response:
        """The event feed hears each request but the tutor's own looks (dicomkit/labevents.py)."""
        response: Response = await call_next(request)
        if request.url.path != "/status" and PROBE_HEADER not in request.headers:
            client = request.client.host if request.client else ""
            server.events.emit("http", client, server.cfg.aet, method=request.method,
                               path=request.url.path, status=response.status_code)  # fmt: skip
        return response

    app.include_router(make_router(server))  # first: /{level}/{rid} would take /dicom-web/x

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        return HTMLResponse(page.render_page(server))

    @app.get("/status")
    def status() -> dict[str, Any]:
        return server.status()

    @app.get("/system")
    def system() -> dict[str, Any]:
        return _system(server)

    @app.get("/statistics")
    def statistics() -> dict[str, Any]:
        return _statistics(server)

    @app.get("/instances/{rid}/metadata/ReceptionDate")
    def reception_date(rid: str) -> Response:
        # Orthanc's metadata of the same name (it gives seconds; this PACS keeps milliseconds).
        received = server.index.instance_received(rid)
        if received is None:
            raise HttpError(404, f"unknown resource {rid}")
        return Response(received, media_type="text/plain")

    @app.get("/{level}")
    def list_level(level: str) -> list[str]:
        if level not in _LEVELS:
            raise HttpError(404, "unknown URI")
        return server.index.ids(_LEVELS[level][0])

    @app.get("/{level}/{rid}")
    def one(level: str, rid: str) -> dict[str, Any]:
        if level not in _LEVELS:
            raise HttpError(404, "unknown URI")
        r = server.index.resource(_LEVELS[level][0], rid)
        if r is None:
            raise HttpError(404, f"unknown resource {rid}")
        return describe(server, r)

    @app.post("/tools/find")
    async def find(request: Request) -> list[Any]:
        raw = await read_body(request, MAX_BODY)
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(tools_find, server, data)

    return app


def start_http(server: PacsServer) -> ThreadedServer:
    """Serve the app on cfg.host:cfg.http_port in a background thread; stop it with
    ``shutdown()`` then ``server_close()``."""
    from dicomkit.asgi import ThreadedServer

    cfg = server.cfg
    app = create_app(server)
    return ThreadedServer(app, cfg.host, cfg.http_port, cfg.network_timeout, "http").start()
