"""dicom/wire.py against pynetdicom's own PDU and DIMSE classes as the oracle: what one
encodes the other decodes, both directions, every PDU type and the DIMSE messages the lean
paths speak."""

from __future__ import annotations

import socket
import threading

import pytest
from pynetdicom import dimse_messages as dm
from pynetdicom import dimse_primitives as dp
from pynetdicom import pdu as P
from pynetdicom import pdu_primitives as pp
from pynetdicom.presentation import PresentationContext

from dicomkit.dicom import wire

CT = "1.2.840.10008.5.1.4.1.1.2"
MWL = "1.2.840.10008.5.1.4.31"
EXPLICIT = "1.2.840.10008.1.2.1"
CONTEXTS = {1: (wire.VERIFICATION, [wire.IMPLICIT_LE]), 3: (CT, [EXPLICIT, wire.IMPLICIT_LE]),
            255: (MWL, [wire.IMPLICIT_LE])}  # fmt: skip


def _pynetdicom_rq(user: list[object] | None = None) -> bytes:
    prim = pp.A_ASSOCIATE()
    prim.application_context_name = wire.APPLICATION_CONTEXT
    prim.calling_ae_title = "CALLING"
    prim.called_ae_title = "CALLED"
    contexts = []
    for cid, (abstract, syntaxes) in CONTEXTS.items():
        cx = PresentationContext()
        cx.context_id, cx.abstract_syntax, cx.transfer_syntax = cid, abstract, syntaxes
        contexts.append(cx)
    prim.presentation_context_definition_list = contexts
    ml = pp.MaximumLengthNotification()
    ml.maximum_length_received = 16382
    ic = pp.ImplementationClassUIDNotification()
    ic.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    iv = pp.ImplementationVersionNameNotification()
    iv.implementation_version_name = "PYNETDICOM_304"
    prim.user_information = [ml, ic, iv, *(user or [])]
    rq = P.A_ASSOCIATE_RQ()
    rq.from_primitive(prim)
    return bytes(rq.encode())


def test_associate_rq_pynetdicom_to_wire() -> None:
    raw = _pynetdicom_rq()
    assert wire.pdu_header(raw[:6]) == (wire.ASSOCIATE_RQ, len(raw) - 6)
    a = wire.decode_associate(raw[6:])
    assert (a.called, a.calling) == ("CALLED", "CALLING")
    assert a.application_context == wire.APPLICATION_CONTEXT
    assert a.contexts == CONTEXTS
    assert a.max_pdu == 16382 and a.implementation_version == "PYNETDICOM_304"
    assert a.unusual == ""


def test_associate_rq_with_role_selection_is_unusual() -> None:
    role = pp.SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scu_role, role.scp_role = CT, True, True
    assert "0x54" in wire.decode_associate(_pynetdicom_rq([role])[6:]).unusual


def test_associate_rq_wire_to_pynetdicom() -> None:
    a = wire.Associate("CALLED", "CALLING", contexts=CONTEXTS)
    raw = wire.encode_associate(wire.ASSOCIATE_RQ, a, max_pdu=32768, implementation_version="X")
    rq = P.A_ASSOCIATE_RQ()
    rq.decode(raw)
    prim = rq.to_primitive()
    assert prim.called_ae_title == "CALLED" and prim.calling_ae_title == "CALLING"
    got = {cx.context_id: (str(cx.abstract_syntax), [str(t) for t in cx.transfer_syntax])
           for cx in prim.presentation_context_definition_list}  # fmt: skip
    assert got == CONTEXTS
    assert prim.maximum_length_received == 32768
    assert prim.implementation_class_uid == wire.IMPLEMENTATION_CLASS_UID
    assert rq.encode() == raw  # byte for byte what pynetdicom would send for the same request


def test_associate_ac_both_ways() -> None:
    ac = wire.Associate("CALLED", "CALLING", contexts={1: ("", [wire.IMPLICIT_LE]), 3: ("", [EXPLICIT])},
                        results={1: 0, 3: 4})  # fmt: skip
    raw = wire.encode_associate(wire.ASSOCIATE_AC, ac, max_pdu=0)
    pdu = P.A_ASSOCIATE_AC()
    pdu.decode(raw)
    prim = pdu.to_primitive()
    results = {cx.context_id: cx.result for cx in prim.presentation_context_definition_results_list}
    assert results == {1: 0, 3: 4}
    assert prim.maximum_length_received == 0
    assert pdu.encode() == raw
    back = wire.decode_associate(raw[6:])
    assert back.accepted == {1: wire.IMPLICIT_LE} and back.results == {1: 0, 3: 4}


@pytest.mark.parametrize(("result", "source", "reason"), [(1, 1, 7), (2, 3, 2), (1, 2, 2)])
def test_reject_both_ways(result: int, source: int, reason: int) -> None:
    raw = wire.reject_pdu(result, source, reason)
    pdu = P.A_ASSOCIATE_RJ()
    pdu.decode(raw)
    assert (pdu.result, pdu.source, pdu.reason_diagnostic) == (result, source, reason)
    prim = pp.A_ASSOCIATE()
    prim.result, prim.result_source, prim.diagnostic = result, source, reason
    theirs = P.A_ASSOCIATE_RJ()
    theirs.from_primitive(prim)
    assert theirs.encode() == raw
    assert wire.decode_reject(raw[6:]) == (result, source, reason)


def test_release_and_abort_both_ways() -> None:
    assert P.A_RELEASE_RQ().encode() == wire.RELEASE_RQ_PDU
    assert P.A_RELEASE_RP().encode() == wire.RELEASE_RP_PDU
    for source, reason in [(0, 0), (2, 0), (2, 6)]:
        raw = wire.abort_pdu(source, reason)
        pdu = P.A_ABORT_RQ()
        pdu.decode(raw)
        assert (pdu.source, pdu.reason_diagnostic) == (source, reason)
        assert wire.decode_reject(raw[6:])[1:] == (source, reason)
        prim = pp.A_P_ABORT() if source == 2 else pp.A_ABORT()
        if source == 2:
            prim.provider_reason = reason
        else:
            prim.abort_source = source
        theirs = P.A_ABORT_RQ()
        theirs.from_primitive(prim)
        assert theirs.encode() == raw


def _store_rq(msg_id: int, data: bytes) -> dp.C_STORE:
    prim = dp.C_STORE()
    prim.MessageID, prim.AffectedSOPClassUID, prim.AffectedSOPInstanceUID = msg_id, CT, "1.2.3.45"
    prim.Priority = 0
    from io import BytesIO

    prim.DataSet = BytesIO(data)
    return prim


@pytest.mark.parametrize("max_pdu", [0, 16384, 1024 + 6, 1000 + 6])
def test_c_store_rq_pynetdicom_fragments_to_wire(max_pdu: int) -> None:
    """pynetdicom's P-DATA fragmentation of a C-STORE-RQ reassembles in wire.Messages."""
    data = bytes(range(256)) * 40 + b"\x01"  # odd: fragments of every size
    msg = dm.C_STORE_RQ()
    msg.primitive_to_message(_store_rq(7, data))
    pdus = b""
    for p in msg.encode_msg(5, max_pdu):
        tf = P.P_DATA_TF()
        tf.from_primitive(p)
        pdus += tf.encode()
    got = _read_from(pdus, contexts={5})
    assert got.cid == 5 and got.data == data
    assert got.command.field == wire.C_STORE_RQ and got.command.us(wire.MESSAGE_ID) == 7
    assert got.command.text(wire.AFFECTED_SOP_INSTANCE) == "1.2.3.45"


def _read_from(stream: bytes, contexts: set[int]) -> wire.Message:
    a, b = socket.socketpair()
    try:
        threading.Thread(target=a.sendall, args=(stream,), daemon=True).start()
        return wire.Messages(wire.Link(b, 5.0), 16384, contexts).read()
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("fragment", [10, 100, 16384 - 6])
def test_wire_messages_decode_in_pynetdicom(fragment: int) -> None:
    """A C-STORE-RQ and a C-FIND-RSP written by wire decode as pynetdicom's messages."""
    data = b"\x08\x00\x18\x00\x06\x00\x00\x001.2.3\x00"
    command = wire.encode_command({
        wire.AFFECTED_SOP_CLASS: CT, wire.COMMAND_FIELD: wire.C_STORE_RQ, wire.MESSAGE_ID: 9,
        wire.PRIORITY: 0, wire.DATA_SET_TYPE: 0, wire.AFFECTED_SOP_INSTANCE: "1.2.3",
    })  # fmt: skip
    stream = wire.pdata(3, 0x01, command, fragment) + wire.pdata(3, 0x00, data, fragment)
    msg = dm.DIMSEMessage()
    done = False
    pos = 0
    while pos < len(stream):
        length = wire.pdu_header(stream[pos : pos + 6])[1]
        tf = P.P_DATA_TF()
        tf.decode(stream[pos : pos + 6 + length])
        done = msg.decode_msg(tf.to_primitive())
        pos += 6 + length
    assert done and msg.context_id == 3
    prim = dm.C_STORE_RQ.message_to_primitive(msg)  # type: ignore[arg-type]
    assert isinstance(prim, dp.C_STORE)
    assert prim.MessageID == 9 and prim.AffectedSOPInstanceUID == "1.2.3"
    assert prim.AffectedSOPClassUID == CT
    assert prim.DataSet.getvalue() == data


@pytest.mark.parametrize(
    ("cls", "prim_cls", "values", "fields"),
    [
        (dm.C_ECHO_RSP, dp.C_ECHO, {"AffectedSOPClassUID": wire.VERIFICATION},
         {wire.COMMAND_FIELD: wire.C_ECHO_RSP}),
        (dm.C_STORE_RSP, dp.C_STORE, {"AffectedSOPClassUID": CT, "AffectedSOPInstanceUID": "1.2.3"},
         {wire.COMMAND_FIELD: wire.C_STORE_RSP, wire.AFFECTED_SOP_INSTANCE: "1.2.3"}),
        (dm.C_FIND_RSP, dp.C_FIND, {"AffectedSOPClassUID": MWL},
         {wire.COMMAND_FIELD: wire.C_FIND_RSP}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("status", [0x0000, 0xA900, 0xC000])
def test_responses_match_pynetdicom_byte_for_byte(
    cls: type, prim_cls: type, values: dict[str, object], fields: dict[int, object], status: int
) -> None:
    """The responses the lean server writes are the command sets pynetdicom writes."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    prim = prim_cls()
    prim.MessageIDBeingRespondedTo = 4
    prim.Status = status
    for k, v in values.items():
        setattr(prim, k, v)
    msg = cls()
    msg.primitive_to_message(prim)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = True, True
    write_dataset(fp, msg.command_set)
    ours = wire.encode_command({
        **fields, wire.RESPONDED_TO: 4, wire.AFFECTED_SOP_CLASS: values["AffectedSOPClassUID"],
        wire.STATUS: status, wire.DATA_SET_TYPE: wire.NO_DATA_SET,
    })  # type: ignore[dict-item]  # fmt: skip
    assert ours == fp.getvalue()
    assert wire.decode_command(ours[12:]).us(wire.STATUS) == status


@pytest.mark.parametrize(
    "bad",
    [b"", b"\x00\x00\x00\x05\x01", b"\x00\x00\x00\x01\x01\x03", b"\x00\x00\x00\x10\x01\x03abc"],
)
def test_split_pdvs_refuses_malformed(bad: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        wire.split_pdvs(bad)


def test_decode_associate_refuses_garbage() -> None:
    raw = _pynetdicom_rq()[6:]
    for cut in (10, 67, 70, len(raw) - 3):
        with pytest.raises(wire.ProtocolError):
            wire.decode_associate(raw[:cut])
    with pytest.raises(wire.ProtocolError):
        wire.decode_associate(b"\x00\x00" + raw[2:])  # protocol version 0


def test_link_caps_pdu_size_and_times_out() -> None:
    a, b = socket.socketpair()
    try:
        link = wire.Link(b, 0.3, limit=1000)
        a.sendall(b"\x04\x00" + (5000).to_bytes(4, "big"))
        with pytest.raises(wire.ProtocolError, match="over our limit"):
            link.recv()
        link = wire.Link(b, 0.3)
        a.sendall(b"\x04\x00" + (10).to_bytes(4, "big") + b"abc")  # half a PDU, then silence
        with pytest.raises(wire.TimedOut):
            link.recv()
        a.close()
        with pytest.raises(wire.Lost):
            wire.Link(b, 0.3).recv()
    finally:
        a.close()
        b.close()
