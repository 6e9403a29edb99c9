"""Media types for DICOMweb: header parameters, Accept negotiation and multipart/related
bodies (RFC 2387 over RFC 2046 5.1, as PS3.18 8.6 and 8.7 use them)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# token or quoted-string parameter values (RFC 9110 5.6.6)
_PARAM = re.compile(r';\s*([^\s=;,]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)')


class MimeError(ValueError):
    """A body or header that is not what its media type says."""


@dataclass(frozen=True)
class MediaType:
    type: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def q(self) -> float:
        try:
            return float(self.params.get("q", "1"))
        except ValueError:
            return 0.0


def parse_media_type(text: str) -> MediaType:
    """``type/subtype; name=value; name="quoted"`` -> MediaType (names lower-cased)."""
    head, _, rest = text.partition(";")
    params: dict[str, str] = {}
    for name, value in _PARAM.findall(";" + rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.lower()] = value
    return MediaType(head.strip().lower(), params)


def _split_outside_quotes(text: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == "," and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
    out.append("".join(buf))
    return [s.strip() for s in out if s.strip()]


def parse_accept(header: str | None) -> list[MediaType]:
    """The Accept header's media ranges, best first (q=0 dropped); ``*/*`` when absent."""
    ranges = [parse_media_type(p) for p in _split_outside_quotes(header or "")]
    ranges = [r for r in ranges if r.q > 0]
    return sorted(ranges, key=lambda r: -r.q) or [MediaType("*/*")]


def matches(offered: str, wanted: str) -> bool:
    """Whether the media range ``wanted`` (maybe ``*/*`` or ``image/*``) covers ``offered``."""
    if wanted in ("*/*", "*", offered):
        return True
    return wanted.endswith("/*") and offered.startswith(wanted[:-1])


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def parse_related(body: bytes, boundary: str, max_parts: int = 100_000) -> list[Part]:
    """The parts of a multipart body (RFC 2046 5.1.1). Raises MimeError naming what is wrong:
    no boundary in the body, a part not closed by the boundary (a body cut short)."""
    if not boundary or len(boundary) > 70:  # RFC 2046 5.1.1: 1 to 70 characters
        raise MimeError("the Content-Type has no valid boundary parameter")
    delim = b"--" + boundary.encode("latin-1")
    if body.startswith(delim):
        pos = len(delim)
    else:
        first = body.find(b"\r\n" + delim)
        if first < 0:
            raise MimeError(f"the body does not contain the boundary {boundary!r}")
        pos = first + 2 + len(delim)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):
            return parts  # the close delimiter; anything after it is the epilogue
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise MimeError(f"part {len(parts) + 1}: the boundary line is malformed or cut short")
        pos = eol + 2
        headers: dict[str, str] = {}
        while not body.startswith(b"\r\n", pos):
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                raise MimeError(f"part {len(parts) + 1}: its headers are cut short")
            name, sep, value = body[pos:eol].decode("latin-1").partition(":")
            if not sep:
                raise MimeError(f"part {len(parts) + 1}: malformed header line {name[:40]!r}")
            headers[name.strip().lower()] = value.strip()
            pos = eol + 2
        start = pos + 2
        end = body.find(b"\r\n" + delim, start)
        if end < 0:
            raise MimeError(
                f"part {len(parts) + 1} is not closed by the boundary (the body was cut short)"
            )
        parts.append(Part(headers, body[start:end]))
        if len(parts) > max_parts:
            raise MimeError(f"more than {max_parts} parts")
        pos = end + 2 + len(delim)


def new_boundary() -> str:
    return secrets.token_hex(16)


def related_chunks(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """A multipart/related body, part by part (for streaming): (content type, bytes) each."""
    delim = b"--" + boundary.encode("ascii")
    for content_type, content in parts:
        yield b"".join((delim, b"\r\nContent-Type: ", content_type.encode("ascii"),
                        b"\r\nContent-Length: ", str(len(content)).encode("ascii"), b"\r\n\r\n",
                        content, b"\r\n"))  # fmt: skip
    yield delim + b"--\r\n"
