"""Status codes are named per service (PS3.4 B.2.3 C-STORE, C.4.1.1.4 C-FIND, C.4.2.1.5 /
C.4.3.1.4 C-MOVE/C-GET), and association rejections per PS3.8 Table 9-21."""

from __future__ import annotations

from dicomkit.dicom import net


def test_b000_means_coercion_for_store_and_failed_sub_operations_for_retrieve() -> None:
    assert net.status_name(0xB000) == "Warning: coercion of data elements"
    assert net.status_name(0xB000, "retrieve") == (
        "Warning: sub-operations complete, one or more failures"
    )


def test_cxxx_and_a9xx_per_service() -> None:
    assert net.status_name(0xC123) == "Failure: cannot understand"
    for service in ("find", "retrieve"):
        assert net.status_name(0xC123, service) == "Failure: unable to process"
        assert net.status_name(0xA900, service) == "Failure: identifier does not match SOP class"
    assert net.status_name(0xA801, "retrieve") == "Failure: move destination unknown"


def test_reject_reasons_of_the_service_user() -> None:
    hints = net._REJECT_HINTS
    assert "application context" in hints[(1, 2)] and "Table 9-21" in hints[(1, 2)]
    assert "calling AE title" in hints[(1, 3)]
    assert "called AE title" in hints[(1, 7)]
