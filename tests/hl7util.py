"""Build HL7 v2 test messages field by field (positions as the standard numbers them), and
talk MLLP with a plain socket so tests can split, join and truncate frames at will."""

from __future__ import annotations

import select
import socket

SB, EB = b"\x0b", b"\x1c\r"


def segment(name: str, fields: dict[int, str]) -> str:
    """``fields`` maps the standard's field number to its value (MSH: MSH-3 onwards)."""
    top = max(fields) if fields else 0
    if name == "MSH":
        values = ["MSH", "^~\\&"] + [fields.get(i, "") for i in range(3, top + 1)]
        return "|".join(values)
    return "|".join([name] + [fields.get(i, "") for i in range(1, top + 1)])


def msh(kind: str, control: str, version: str, **extra: str) -> str:
    f = {3: "HIS", 4: "HOSP", 5: "DICOMKIT", 6: "RAD", 7: "20261201120000", 9: kind,
         10: control, 11: "P", 12: version}  # fmt: skip
    f.update({int(k[1:]): v for k, v in extra.items()})
    return segment("MSH", f)


def orm(
    accession: str = "ACC-HL7-1",
    control: str = "NW",
    patient_id: str = "P-HL7",
    name: str = "DOE^JANE",
    birth: str = "19800101",
    sex: str = "F",
    procedure: str = "CT-HEAD^CT HEAD WO CONTRAST^LOCAL",
    modality: str = "CT",
    when: str = "202612011015",
    msg_id: str = "MSG0001",
    **msh_extra: str,
) -> bytes:
    """ORM^O01 v2.3.1 (IHE RAD-2): accession in OBR-18, modality in OBR-24, OBR-36."""
    segs = [
        msh("ORM^O01", msg_id, "2.3.1", **msh_extra),
        segment("PID", {1: "1", 3: f"{patient_id}^^^HOSP", 5: name, 7: birth, 8: sex}),
        segment("PV1", {1: "1", 2: "O", 8: "1234^WELBY^MARCUS"}),
        segment("ORC", {1: control, 2: "PL1", 3: "FL1"}),
        segment(
            "OBR", {1: "1", 2: "PL1", 3: "FL1", 4: procedure, 18: accession, 24: modality, 36: when}
        ),
    ]
    return ("\r".join(segs) + "\r").encode()


def omi(
    accession: str = "ACC-OMI-1", when: str = "20261202083000", msg_id: str = "MSG0002"
) -> bytes:
    """OMI^O23 v2.5.1: the start time in TQ1-7, accession in OBR-18, modality in OBR-24."""
    segs = [
        msh("OMI^O23^OMI_O23", msg_id, "2.5.1"),
        segment("PID", {1: "1", 3: "P-OMI^^^HOSP", 5: "ROE^RICHARD", 7: "19700203", 8: "M"}),
        segment("ORC", {1: "NW", 2: "PL2", 3: "FL2"}),
        segment("TQ1", {1: "1", 7: when}),
        segment(
            "OBR", {1: "1", 2: "PL2", 3: "FL2", 4: "MR-KNEE^MR KNEE^LOCAL", 18: accession, 24: "MR"}
        ),
    ]
    return ("\r".join(segs) + "\r").encode()


def adt_a08(patient_id: str, name: str = "", birth: str = "", sex: str = "") -> bytes:
    segs = [
        msh("ADT^A08", "MSG0003", "2.3.1"),
        segment("EVN", {1: "A08", 2: "20261201120000"}),
        segment("PID", {1: "1", 3: f"{patient_id}^^^HOSP", 5: name, 7: birth, 8: sex}),
    ]
    return ("\r".join(segs) + "\r").encode()


def frame(message: bytes) -> bytes:
    return SB + message + EB


def connect(port: int, timeout: float = 10) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_ack(s: socket.socket, buf: bytearray | None = None) -> bytes:
    """One framed answer (without its framing); ``buf`` keeps bytes of the next one."""
    buf = bytearray() if buf is None else buf
    while EB not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole ACK; got {bytes(buf)!r}")
        buf += chunk
    end = buf.index(EB)
    block = bytes(buf[:end])
    del buf[: end + len(EB)]
    assert block.startswith(SB), block
    return block[1:]


def exchange(port: int, message: bytes) -> bytes:
    with connect(port) as s:
        s.sendall(frame(message))
        return read_ack(s)


def readable(s: socket.socket, within: float) -> bool:
    """Whether the peer sent something (or closed) within ``within`` seconds."""
    r, _, _ = select.select([s], [], [], within)
    return bool(r)


def fields(ack: bytes) -> dict[str, list[list[str]]]:
    """Segments of an ACK by name -> list of field lists (index = field number)."""
    out: dict[str, list[list[str]]] = {}
    for seg in ack.decode().split("\r"):
        if seg:
            parts = seg.split("|")
            if parts[0] == "MSH":
                parts = ["MSH", "|", *parts[1:]]
            out.setdefault(parts[0], []).append(parts)
    return out


def ack_code(ack: bytes) -> str:
    return fields(ack)["MSA"][0][1]


def err_locations(ack: bytes) -> list[str]:
    """ERR-2 of each ERR segment as SEG-n (or SEG)."""
    out = []
    for err in fields(ack).get("ERR", []):
        comps = err[2].split("^")
        out.append(comps[0] + (f"-{comps[2]}" if len(comps) > 2 and comps[2] else ""))
    return out
