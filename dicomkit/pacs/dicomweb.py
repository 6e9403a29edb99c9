"""DICOMweb routes of the embedded PACS at ``/dicom-web`` (the root of Orthanc's plugin):
QIDO-RS (qido.py), WADO-RS (wado.py), STOW-RS (stow.py). Thin: parse, call, answer."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dicomkit.pacs import mime, qido, stow, wado
from dicomkit.pacs.httperror import HttpError

if TYPE_CHECKING:
    from dicomkit.pacs.server import PacsServer

log = logging.getLogger(__name__)

ROOT = "/dicom-web"
DICOM_JSON = "application/dicom+json"
STOW_WORKERS = 4  # parts of one STOW-RS request stored at once
# PS3.18 8.7.3: the origin server chooses among these for a search or metadata answer.
_JSON_TYPES = (DICOM_JSON, "application/json")


def base_url(request: Request) -> str:
    """The DICOMweb root as the client reached it (for RetrieveURL, BulkDataURI)."""
    url = request.base_url
    server = request.scope.get("server")
    if url.port is None and server and server[1] not in (80, 443):
        # dicomweb-client sends "Host: 127.0.0.1" without the port it connected to.
        url = url.replace(port=int(server[1]))
    return str(url).rstrip("/") + ROOT


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import json

    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(body, status, headers=headers, media_type=DICOM_JSON)


def _want_json(request: Request) -> None:
    accepted = mime.parse_accept(request.headers.get("accept"))
    if not any(mime.matches(t, r.type) for r in accepted for t in _JSON_TYPES):
        raise HttpError(406, "this server answers searches and metadata as application/dicom+json")


def _multipart(parts: Iterator[tuple[str, bytes]], type_: str) -> StreamingResponse:
    boundary = mime.new_boundary()
    return StreamingResponse(
        mime.related_chunks(parts, boundary),
        media_type=f'multipart/related; type="{type_}"; boundary={boundary}',
    )


def _retrieve_syntax(request: Request) -> None:
    """PS3.18 8.7.3.5: the client may name the transfer syntax; we send what is stored, so
    only ``*`` or no parameter is acceptable besides the stored one (checked per file)."""
    accepted = mime.parse_accept(request.headers.get("accept"))
    for r in accepted:
        if r.type in ("*/*", "multipart/*"):
            return
        if r.type == "multipart/related" and r.params.get("type", "application/dicom") in (
            "application/dicom", "*/*",
        ):  # fmt: skip
            return
    raise HttpError(406, 'retrieve answers multipart/related; type="application/dicom"')


def _wanted_syntaxes(request: Request) -> set[str]:
    out = set()
    for r in mime.parse_accept(request.headers.get("accept")):
        if r.type == "multipart/related":
            out.add(r.params.get("transfer-syntax", "*"))
        else:
            out.add("*")
    return out


def make_router(server: PacsServer) -> APIRouter:
    router = APIRouter(prefix=ROOT)
    index, storage = server.index, server.storage
    cache = qido.Cache(index)

    # ---- QIDO-RS (PS3.18 10.6) -----------------------------------------------------------
    def search(request: Request, level: str, scope: dict[str, str]) -> Response:
        _want_json(request)
        try:
            query = qido.parse(level, list(request.query_params.multi_items()), scope)
        except qido.QidoError as exc:
            raise HttpError(400, f"bad query parameter(s): {exc}") from None
        found = qido.search(cache, query)
        body = qido.answer(index, storage, query, found, base_url(request), scope)
        headers = {}
        if query.warnings:
            # PS3.18 8.3.3.2 / RFC 7234 5.5: a Warning header says what was not honoured.
            headers["Warning"] = "; ".join(f'299 dicomkit "{w}"' for w in query.warnings)
        return _json(body, headers=headers)

    @router.get("/studies")
    def search_studies(request: Request) -> Response:
        return search(request, "STUDY", {})

    @router.get("/series")
    def search_all_series(request: Request) -> Response:
        return search(request, "SERIES", {})

    @router.get("/instances")
    def search_all_instances(request: Request) -> Response:
        return search(request, "IMAGE", {})

    @router.get("/studies/{study}/series")
    def search_series(request: Request, study: str) -> Response:
        return search(request, "SERIES", {"StudyInstanceUID": study})

    @router.get("/studies/{study}/instances")
    def search_study_instances(request: Request, study: str) -> Response:
        return search(request, "IMAGE", {"StudyInstanceUID": study})

    @router.get("/studies/{study}/series/{series}/instances")
    def search_instances(request: Request, study: str, series: str) -> Response:
        return search(request, "IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series})

    # ---- WADO-RS (PS3.18 10.4) -----------------------------------------------------------
    def retrieve(request: Request, study: str, series: str | None, sop: str | None) -> Response:
        _retrieve_syntax(request)
        found = wado.files(cache, study, series, sop)
        wanted = _wanted_syntaxes(request)
        # PS3.18 8.7.3.5.2: an instance goes in its stored syntax if the client accepts it,
        # else converted into an uncompressed one the client named (pacs/transcode.py).
        plan = [(path, ts if "*" in wanted or ts in wanted else wado.target(ts, wanted))
                for path, _sop_class, ts in found]  # fmt: skip

        def parts() -> Iterator[tuple[str, bytes]]:
            for (path, _c, stored), (_p, ts) in zip(found, plan, strict=True):
                data = storage.read(path) if ts == stored else wado.converted(storage, path, ts)
                yield f"application/dicom; transfer-syntax={ts}", data

        return _multipart(parts(), "application/dicom")

    @router.get("/studies/{study}")
    def retrieve_study(request: Request, study: str) -> Response:
        return retrieve(request, study, None, None)

    @router.get("/studies/{study}/series/{series}")
    def retrieve_series(request: Request, study: str, series: str) -> Response:
        return retrieve(request, study, series, None)

    @router.get("/studies/{study}/series/{series}/instances/{sop}")
    def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
        return retrieve(request, study, series, sop)

    def meta(request: Request, study: str, series: str | None, sop: str | None) -> Response:
        _want_json(request)
        base = base_url(request)
        out = []
        for path, _c, _ts in wado.files(cache, study, series, sop):
            ds = wado.read(storage, path)
            url = (f"{base}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                   f"/instances/{ds.SOPInstanceUID}")  # fmt: skip
            out.append(wado.metadata(ds, url))
        return _json(out)

    @router.get("/studies/{study}/metadata")
    def study_metadata(request: Request, study: str) -> Response:
        return meta(request, study, None, None)

    @router.get("/studies/{study}/series/{series}/metadata")
    def series_metadata(request: Request, study: str, series: str) -> Response:
        return meta(request, study, series, None)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/metadata")
    def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
        return meta(request, study, series, sop)

    def one(study: str, series: str, sop: str) -> Any:
        path = wado.files(cache, study, series, sop)[0][0]
        return wado.read(storage, path)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/bulk/{tag}")
    def bulk(study: str, series: str, sop: str, tag: str) -> Response:
        try:
            number = int(tag, 16)
        except ValueError:
            raise HttpError(400, f"{tag!r} is not a tag (eight hex digits)") from None
        data = wado.bulk(one(study, series, sop), number)
        return _multipart(iter([("application/octet-stream", data)]), "application/octet-stream")

    def frame_numbers(text: str) -> list[int]:
        try:
            numbers = [int(n) for n in text.split(",")]
        except ValueError:
            raise HttpError(400, f"{text!r} is not a list of frame numbers") from None
        if not numbers or any(n < 1 for n in numbers):
            raise HttpError(400, "frame numbers start at 1")
        return numbers

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}")
    def frames(study: str, series: str, sop: str, numbers: str) -> Response:
        media, data = wado.frames(one(study, series, sop), frame_numbers(numbers))
        main = media.split(";")[0]
        return _multipart(iter([(media, d) for d in data]), main)

    # ---- rendered (PS3.18 10.4.1.1.3, 8.3.5.1) -----------------------------------------
    def rendered(request: Request, study: str, series: str, sop: str, frame: int) -> Response:
        from dicomkit.dicom import render

        accepted = mime.parse_accept(request.headers.get("accept"))
        media = next(
            (t for r in accepted for t in render.MEDIA_TYPES if mime.matches(t, r.type)), None
        )
        if media is None:
            raise HttpError(406, f"rendered images are {' or '.join(render.MEDIA_TYPES)}")
        window = _window_param(request.query_params.get("window"))
        quality = _int_param(request.query_params.get("quality"), "quality", 1, 100, 90)
        try:
            image = render.render(one(study, series, sop), frame - 1, window)
            data = render.encode(image, media, quality)
        except render.NotAnImage as exc:
            # PS3.18 8.3.5.1: a resource that cannot be rendered as any accepted type: 406.
            raise HttpError(406, exc.message) from None
        return Response(data, media_type=media)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/rendered")
    def instance_rendered(request: Request, study: str, series: str, sop: str) -> Response:
        return rendered(request, study, series, sop, 1)

    @router.get("/studies/{study}/series/{series}/instances/{sop}/frames/{numbers}/rendered")
    def frame_rendered(
        request: Request, study: str, series: str, sop: str, numbers: str
    ) -> Response:
        wanted = frame_numbers(numbers)
        if len(wanted) != 1:
            raise HttpError(400, "a rendered frame is one frame number")
        return rendered(request, study, series, sop, wanted[0])

    # ---- STOW-RS (PS3.18 10.5) ------------------------------------------------------------
    async def store(request: Request, study: str | None) -> Response:
        ctype = mime.parse_media_type(request.headers.get("content-type", ""))
        if ctype.type != "multipart/related":
            raise HttpError(
                415, 'STOW-RS takes multipart/related; type="application/dicom" (PS3.18 10.5.1)'
            )
        part_type = ctype.params.get("type", "application/dicom")
        if part_type != "application/dicom":
            raise HttpError(415, f"parts of type {part_type!r}: only application/dicom is stored")
        body = await read_body(request, server.cfg.max_stow_bytes)
        try:
            parts = mime.parse_related(body, ctype.params.get("boundary", ""))
        except mime.MimeError as exc:
            raise HttpError(400, f"the multipart body is malformed: {exc}") from None
        if not parts:
            raise HttpError(400, "the multipart body has no part")
        result = await run_in_threadpool(_store_all, parts, study)
        headers = {}
        if result.failed:
            reasons = [f"{o.sop_uid or 'part'}: {o.reason}" for o in result.failed]
            headers["Warning"] = "; ".join(f'299 dicomkit "{r}"' for r in reasons)[:4000]
        # PS3.18 10.5.3: 200 all stored, 202 some stored, 409 none stored.
        status = 409 if not result.stored else 202 if result.failed else 200
        return _json(stow.response(result, base_url(request)), status, headers)

    def _store_all(parts: list[mime.Part], study: str | None) -> stow.StowResult:
        from concurrent.futures import ThreadPoolExecutor

        def one_part(numbered: tuple[int, mime.Part]) -> stow.Outcome:
            n, part = numbered
            ptype = mime.parse_media_type(part.content_type or "application/dicom").type
            if ptype != "application/dicom":
                return stow.Outcome("", "", "", stow.CANNOT_UNDERSTAND,
                                    f"part {n} is {ptype}, not application/dicom")  # fmt: skip
            return stow.store_part(part.content, storage, index, study)

        result = stow.StowResult()
        # Parts are stored side by side, as parallel C-STORE associations are: each one waits
        # for its own fsync. The answer keeps the body's order.
        with ThreadPoolExecutor(max_workers=STOW_WORKERS) as pool:
            outcomes = list(pool.map(one_part, enumerate(parts, 1)))
        for n, out in enumerate(outcomes, 1):
            if out.status == stow.SUCCESS:
                result.stored.append(out)
            else:
                log.warning("STOW-RS part %d refused: %s", n, out.reason)
                result.failed.append(out)
        return result

    @router.post("/studies")
    async def store_studies(request: Request) -> Response:
        return await store(request, None)

    @router.post("/studies/{study}")
    async def store_study(request: Request, study: str) -> Response:
        return await store(request, study)

    return router


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 past ``limit`` bytes (declared or received)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, f"the body ({declared} bytes) is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _window_param(text: str | None) -> Any:
    """``window=center,width[,function]`` (PS3.18 8.3.5.1.3); only the linear function."""
    from dicomkit.dicom.render import Window

    if text is None:
        return None
    bits = text.split(",")
    try:
        center, width = float(bits[0]), float(bits[1])
    except (ValueError, IndexError):
        raise HttpError(400, f"window={text!r}: expected center,width[,function]") from None
    if len(bits) > 2 and bits[2].strip().lower() not in ("linear", ""):
        raise HttpError(400, f"window function {bits[2]!r}: only linear is supported")
    if width < 1:
        raise HttpError(400, "the window width must be at least 1")
    return Window(center, width)


def _int_param(text: str | None, name: str, low: int, high: int, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise HttpError(400, f"{name}={text!r}: expected an integer from {low} to {high}")
    return int(text)
