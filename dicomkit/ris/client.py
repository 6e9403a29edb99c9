"""The RIS API from the client side (what `dicomkit order ...` and the lessons call)."""

from __future__ import annotations

from typing import Any

import httpx

from dicomkit.errors import ConnectionFailed, RisError


class RisClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            r = httpx.request(method, url, timeout=self.timeout, **kw)
        except httpx.TransportError as exc:
            raise ConnectionFailed(
                f"the RIS does not answer at {self.base_url} ({type(exc).__name__})",
                "start the lab with `dicomkit up` (check `dicomkit status`)",
            ) from None
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text[:200]}
            msg = body.get("error") or body.get("detail") or r.reason_phrase
            fields = body.get("fields")
            if fields:
                msg = f"{msg}: " + "; ".join(f"{k} {v}" for k, v in fields.items())
            raise RisError(
                f"RIS answered {r.status_code}: {msg}",
                body.get("hint", ""),
                status=r.status_code,
                fields=fields or {},
            )
        return r.json()

    def create_order(self, order: dict[str, Any]) -> dict[str, Any]:
        return dict(self._request("POST", "/orders", json=order))

    def list_orders(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/orders"))

    def get_order(self, accession: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/orders/{_quote(accession)}"))

    def cancel_order(self, accession: str) -> dict[str, Any]:
        return dict(self._request("DELETE", f"/orders/{_quote(accession)}"))

    def set_status(
        self,
        accession: str,
        status: str,
        mpps_uid: str = "",
        study_uid: str = "",
        received: str = "",
        calling_aet: str = "",
    ) -> dict[str, Any]:
        """What the MPPS SCP tells the RIS: the order's step is IN PROGRESS, COMPLETED or
        DISCONTINUED (IHE RAD-6/RAD-7 forwarded to the Order Filler), when it received the
        message and from which AE."""
        body = {"status": status, "mpps_sop_instance_uid": mpps_uid,
                "study_instance_uid": study_uid, "received": received,
                "calling_aet": calling_aet}  # fmt: skip
        return dict(self._request("POST", f"/orders/{_quote(accession)}/status", json=body))

    def events(self, accession: str) -> list[dict[str, Any]]:
        """What happened to the order, oldest first (``GET /events``)."""
        return list(self._request("GET", "/events", params={"accession": accession}))

    def hl7_messages(self) -> list[dict[str, Any]]:
        """The last HL7 messages the RIS received, each with its ACK code."""
        return list(self._request("GET", "/hl7/messages"))

    def health(self) -> dict[str, Any]:
        return dict(self._request("GET", "/healthz"))


def _quote(value: str) -> str:
    from urllib.parse import quote

    # Dots too: a client must not "normalise" an accession like ".." into another path.
    return quote(value, safe="").replace(".", "%2E")
