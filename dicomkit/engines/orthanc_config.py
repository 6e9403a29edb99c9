"""compose/orthanc.json with this lab's ports, AE titles and folders: what the native engine
gives Orthanc, and where the embedded PACS takes its known AEs from (both answer alike)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from dicomkit.config import LabConfig


def orthanc_template() -> dict[str, Any]:
    text = resources.files("dicomkit.compose").joinpath("orthanc.json").read_text()
    return dict(json.loads(text))


def orthanc_config(cfg: LabConfig, plugins: list[str] | None = None) -> dict[str, Any]:
    """compose/orthanc.json with this lab's ports, AE titles and folders."""
    conf = orthanc_template()
    conf["DicomAet"] = cfg.pacs_aet
    conf["DicomPort"] = cfg.dicom_port
    conf["HttpPort"] = cfg.http_port
    storage = cfg.lab_dir / "orthanc" / "db"
    conf["StorageDirectory"] = str(storage)
    conf["IndexDirectory"] = str(storage)
    conf["Worklists"]["Database"] = str(cfg.worklist_dir)
    if plugins is not None:
        conf["Plugins"] = plugins
    conf["DicomModalities"]["dicomkit"]["AET"] = cfg.aet
    # Where C-MOVE sub-operations and storage commitment reports reach `dicomkit retrieve|commit`.
    conf["DicomModalities"]["dicomkit"]["Host"] = cfg.host
    conf["DicomModalities"]["dicomkit"]["Port"] = cfg.retrieve_port
    return conf


def node_config(
    cfg: LabConfig,
    plugins: list[str] | None,
    number: int,
    dicom_port: int,
    http_port: int,
    postgresql: dict[str, Any],
) -> dict[str, Any]:
    """Node ``number`` of a lab on PostgreSQL: the lab's configuration on its own ports, the
    shared index (``postgresql``, the plugin's section) and the one storage folder."""
    conf = orthanc_config(cfg, plugins)
    conf["Name"] = f"{conf.get('Name', 'dicomkit PACS')} node {number}"
    conf["DicomPort"] = dicom_port
    conf["HttpPort"] = http_port
    conf["PostgreSQL"] = postgresql
    # Jobs live in the shared index: a node must not resume another node's jobs at start
    # (Orthanc book, faq/scalability: SaveJobs false with several Orthanc on one database).
    conf["SaveJobs"] = False
    return conf
