"""The embedded PACS: a pure-Python DICOM server (pynetdicom) for machines without Orthanc.

It serves Verification, Storage, Modality Worklist C-FIND (over the RIS's worklist folder),
Query/Retrieve (C-FIND, C-MOVE, C-GET) and a small read-only HTTP API shaped like Orthanc's,
so lessons and checks make the same calls on every engine. Run it with
``python -m dicomkit.pacs --config FILE.json`` (``dicomkit up --engine embedded`` does that).
"""

from __future__ import annotations

VERSION = "0.1.0"
NAME = "dicomkit embedded PACS"
