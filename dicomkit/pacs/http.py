"""The embedded PACS's HTTP API: ``/status`` plus a read-only subset of Orthanc's REST API
(``/system``, ``/statistics``, ``/patients|studies|series|instances[/{id}]``, ``/tools/find``),
so lessons and checks make the same calls on both engines. Stdlib only, bound to cfg.host.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from dicomkit.pacs.index import Resource
from dicomkit.pacs.match import compile_query, matches_all
from dicomkit.pacs.qr import flat_of

if TYPE_CHECKING:
    from dicomkit.pacs.server import PacsServer

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
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


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def tools_find(server: PacsServer, body: dict[str, Any]) -> list[Any]:
    """Orthanc's ``POST /tools/find``: {"Level": "Study", "Query": {...}, "Expand": bool}."""
    from pydicom.dataset import Dataset

    level = _FIND_LEVELS.get(str(body.get("Level", "")).lower())
    if level is None:
        raise HttpError(400, "Level must be Patient, Study, Series or Instance")
    query = body.get("Query", {})
    if not isinstance(query, dict):
        raise HttpError(400, "Query must be an object of DICOM keywords")
    ds = Dataset()
    for keyword, value in query.items():
        try:
            setattr(ds, str(keyword), str(value))
        except (ValueError, TypeError, AttributeError):
            raise HttpError(400, f"unknown DICOM keyword {keyword!r}") from None
    constraints = compile_query(ds)
    found = [r for r in server.index.resources(level) if matches_all(flat_of(r)[0], constraints)]
    limit = body.get("Limit")
    if isinstance(limit, int) and limit > 0:
        found = found[:limit]
    if body.get("Expand"):
        return [describe(server, r) for r in found]
    return [r.id for r in found]


def route(server: PacsServer, method: str, path: str, body: bytes) -> Any:
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if method == "GET":
        if parts == ["status"]:
            return server.status()
        if parts == ["system"]:
            from dicomkit.pacs import NAME, VERSION

            return {
                "Name": server.cfg.name,
                "Version": VERSION,
                "DicomAet": server.cfg.aet,
                "DicomPort": server.cfg.dicom_port,
                "HttpPort": server.cfg.http_port,
                "Server": NAME,
            }
        if parts == ["statistics"]:
            c = server.index.counts()
            size = sum(int(r.extra.get("size", 0)) for r in server.index.resources("IMAGE"))
            return {
                "CountPatients": c["patients"],
                "CountStudies": c["studies"],
                "CountSeries": c["series"],
                "CountInstances": c["instances"],
                "TotalDiskSize": str(size),
                "TotalDiskSizeMB": size // (1024 * 1024),
            }
        if parts and parts[0] in _LEVELS and len(parts) <= 2:
            level, _ = _LEVELS[parts[0]]
            resources = server.index.resources(level)
            if len(parts) == 1:
                return [r.id for r in resources]
            for r in resources:
                if r.id == parts[1]:
                    return describe(server, r)
            raise HttpError(404, f"unknown resource {parts[1]}")
        raise HttpError(404, "unknown URI")
    if method == "POST" and parts == ["tools", "find"]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "the body must be a JSON object")
        return tools_find(server, data)
    raise HttpError(405 if parts else 404, f"{method} is not supported here (read-only API)")


def make_handler(server: PacsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dicomkit-pacs"
        protocol_version = "HTTP/1.1"
        timeout = 30  # seconds: an idle keep-alive client must not hold a thread forever

        def _serve(self, method: str) -> None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if length < 0 or length > MAX_BODY:
                    raise HttpError(413, f"request body over {MAX_BODY} bytes")
                body = self.rfile.read(length) if length else b""
                status, payload = 200, route(server, method, self.path, body)
            except HttpError as exc:
                status, payload = exc.status, {"error": str(exc), "HttpStatus": exc.status}
            except Exception:
                log.exception("HTTP %s %s failed", method, self.path)
                status, payload = 500, {"error": "internal error, see the PACS log"}
            data = json.dumps(payload, indent=2).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                log.debug("HTTP client left before the answer to %s", self.path)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def start_http(server: PacsServer) -> ThreadingHTTPServer:
    httpd = _Server((server.cfg.host, server.cfg.http_port), make_handler(server))
    threading.Thread(target=httpd.serve_forever, name="http", daemon=True).start()
    return httpd
