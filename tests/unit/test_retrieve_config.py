"""The retrieve/commitment port: configured like the other ports, recorded in the lab state,
and registered (AE, host, port) in the PACS configuration of the native and embedded engines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomkit.config import LabConfig, load_config
from dicomkit.errors import ConfigError


def test_env_sets_the_retrieve_port(tmp_path: Path) -> None:
    env = {"DICOMKIT_HOME": str(tmp_path), "DICOMKIT_RETRIEVE_PORT": "12345"}
    cfg = load_config(env)
    assert cfg.retrieve_port == 12345
    assert cfg.endpoints().retrieve_port == 12345 and cfg.endpoints().aet == "DICOMKIT"
    with pytest.raises(ConfigError):
        load_config({**env, "DICOMKIT_RETRIEVE_PORT": "70000"})


def test_state_carries_the_port_and_old_states_get_the_default(tmp_path: Path) -> None:
    state = tmp_path / "lab" / "state.json"
    state.parent.mkdir(parents=True)
    ep = {"host": "127.0.0.1", "pacs_aet": "ORTHANC", "dicom_port": 1, "mwl_port": 2,
          "http_port": 3, "ris_port": 4}  # fmt: skip
    state.write_text(json.dumps({"endpoints": ep}))
    assert load_config({"DICOMKIT_HOME": str(tmp_path)}).retrieve_port == 11112
    state.write_text(json.dumps({"endpoints": {**ep, "retrieve_port": 2222}}))
    assert load_config({"DICOMKIT_HOME": str(tmp_path)}).retrieve_port == 2222


def test_both_engines_register_our_ae_at_the_retrieve_port(tmp_path: Path) -> None:
    from dicomkit.engines.embedded import server_config
    from dicomkit.engines.orthanc_config import orthanc_config
    from dicomkit.pacs.settings import ServerConfig

    cfg = LabConfig(home=tmp_path, aet="MYWS", retrieve_port=23456)
    mod = orthanc_config(cfg)["DicomModalities"]["dicomkit"]
    assert (mod["AET"], mod["Host"], mod["Port"]) == ("MYWS", "127.0.0.1", 23456)
    known = ServerConfig.from_dict(server_config(cfg)).find_modality("MYWS")
    assert known is not None and (known.host, known.port) == ("127.0.0.1", 23456)
