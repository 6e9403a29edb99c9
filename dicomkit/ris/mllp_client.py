"""Send HL7 v2 messages over MLLP and read the ACKs (what `dicomkit hl7 send` calls), with
python-hl7's asyncio MLLP streams: the same framing code the RIS listens with."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dicomkit.errors import ConnectionFailed, UsageError


@dataclass
class AckError:
    location: str  # e.g. OBR-18
    code: str  # HL7 table 0357
    text: str


@dataclass
class Ack:
    code: str  # MSA-1: AA, AE, AR (or CA/CE/CR)
    control_id: str  # MSA-2: the MSH-10 of the message it answers
    text: str  # MSA-3
    message_type: str  # of the message sent, e.g. ORM^O01
    errors: list[AckError] = field(default_factory=list)
    raw: str = ""

    @property
    def accepted(self) -> bool:
        return self.code in ("AA", "CA")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_messages(text: str) -> list[str]:
    """The messages in a file: segments end in CR (LF and CRLF accepted), and each MSH starts
    a new message. Blank lines are dropped."""
    segments = [s.strip() for s in re.split(r"\r\n|\r|\n", text) if s.strip()]
    messages: list[list[str]] = []
    for seg in segments:
        if seg.startswith("MSH") or not messages:
            messages.append([])
        messages[-1].append(seg)
    return ["\r".join(m) + "\r" for m in messages]


def send_messages(host: str, port: int, messages: list[bytes], timeout: float = 10.0) -> list[Ack]:
    """Send each message on one MLLP connection and wait for its ACK before the next."""
    try:
        return asyncio.run(asyncio.wait_for(_send(host, port, messages, timeout), timeout * 3))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        raise ConnectionFailed(
            f"no HL7 ACK from {host}:{port} ({type(exc).__name__}: {exc})".replace(": )", ")"),
            "start the lab with `dicomkit up` (check `dicomkit status`: the hl7 port), "
            "or name the listener with --to HOST:PORT",
        ) from None


async def _send(host: str, port: int, messages: list[bytes], timeout: float) -> list[Ack]:
    from hl7.mllp import open_hl7_connection

    reader, writer = await asyncio.wait_for(open_hl7_connection(host, port), timeout)
    acks = []
    try:
        for message in messages:
            writer.writeblock(message)
            await writer.drain()
            block = await asyncio.wait_for(reader.readblock(), timeout)
            acks.append(parse_ack(block, message))
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 2)
    return acks


def parse_ack(block: bytes, sent: bytes = b"") -> Ack:
    import hl7

    from dicomkit.ris.hl7map import get, message_type

    text = block.decode("utf-8", "replace")
    try:
        msg = hl7.parse(text.replace("\n", "\r"))
        code = get(msg, "MSA", 1)
    except Exception:
        raise UsageError(
            "the peer answered with something that is not an HL7 ACK", f"it sent: {text[:120]!r}"
        ) from None
    kind = ""
    if sent.startswith(b"MSH"):
        try:
            kind = "^".join(message_type(hl7.parse(sent.decode("utf-8", "replace")))).strip("^")
        except Exception:
            kind = ""
    errors = []
    for err in _segments(msg, "ERR"):
        loc = [str(c) for c in (_field(msg, err, 2) or _field(msg, err, 1))]
        where = loc[0] + (f"-{loc[2]}" if len(loc) > 2 and loc[2] else "") if loc else ""
        cwe = _field(msg, err, 3)
        detail = msg.unescape(str(err(8))) if len(err) > 8 else ""
        errors.append(AckError(where, str(cwe[0]) if cwe else "", detail))
    return Ack(
        code=code,
        control_id=get(msg, "MSA", 2),
        text=get(msg, "MSA", 3),
        message_type=kind,
        errors=errors,
        raw=text,
    )


def _segments(msg: Any, name: str) -> list[Any]:
    try:
        return list(msg.segments(name))
    except KeyError:
        return []


def _field(msg: Any, seg: Any, num: int) -> list[str]:
    """The components of a segment's field (first repetition) as strings."""
    if len(seg) <= num or not str(seg(num)):
        return []
    value = seg(num)
    first = value[0] if not isinstance(value, str) and len(value) else value
    if isinstance(first, str):
        return [first]
    return [str(c) for c in first]
