"""`up --nodes N` without starting anything: the setting, the state file, each node's Orthanc
configuration, the embedded engine's refusal, and the store journal shared by the nodes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from dicomkit.config import LabConfig, load_config
from dicomkit.engines import postgres
from dicomkit.engines.embedded import EmbeddedEngine
from dicomkit.engines.orthanc_config import node_config, orthanc_config
from dicomkit.engines.state import LabState, Node, archive_port, describe
from dicomkit.errors import ConfigError, EngineError


def test_nodes_come_from_the_environment_and_are_bounded(tmp_path: Path) -> None:
    env = {"DICOMKIT_HOME": str(tmp_path), "DICOMKIT_NODES": "3"}
    assert load_config(env).nodes == 3
    for bad in ("0", "17"):
        with pytest.raises(ConfigError, match="nodes"):
            load_config({**env, "DICOMKIT_NODES": bad})


def test_state_file_keeps_the_nodes_and_describe_lists_them(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path)
    one = LabState(engine="native", endpoints=cfg.endpoints())
    assert describe(one)["nodes"] == [{"dicom": "127.0.0.1:4242", "http": "http://127.0.0.1:8042"}]
    two = replace(one, nodes=[Node(4242, 8042), Node(5001, 5002)])
    back = LabState.from_json(two.to_json(), tmp_path / "state.json")
    assert back.nodes == two.nodes
    assert describe(back)["nodes"][1] == {
        "dicom": "127.0.0.1:5001",
        "http": "http://127.0.0.1:5002",
    }


def test_each_node_shares_the_index_and_storage_on_its_own_ports(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path)
    index = postgres.cluster_for(cfg).plugin_config()
    one = orthanc_config(cfg, [])
    two = node_config(cfg, [], 2, 5001, 5002, index)
    assert (two["DicomPort"], two["HttpPort"]) == (5001, 5002)
    assert two["DicomAet"] == one["DicomAet"] == "ORTHANC"
    assert two["StorageDirectory"] == one["StorageDirectory"]
    assert two["Worklists"] == one["Worklists"]
    assert two["PostgreSQL"]["Lock"] is False and two["PostgreSQL"]["EnableIndex"] is True
    assert "PostgreSQL" not in one
    # libpq reads a host that starts with "/" as the folder of the server's unix socket.
    assert index["Host"] == str(postgres.cluster_for(cfg).socket_dir)


def test_embedded_engine_refuses_nodes(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path, nodes=2)
    with pytest.raises(EngineError) as info:
        EmbeddedEngine().up(cfg, lambda m: None)
    assert "--engine native --nodes 2" in info.value.hint
    assert not (tmp_path / "lab").exists(), "nothing is started or written"


def test_the_nodes_share_one_store_journal(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path)
    state = LabState(
        engine="native", endpoints=cfg.endpoints(), nodes=[Node(4242, 8042), Node(5001, 5002)]
    )
    assert archive_port(state, "127.0.0.1", 5001, "ORTHANC") == 4242
    assert archive_port(state, "127.0.0.1", 4242, "ORTHANC") == 4242
    assert archive_port(state, "127.0.0.1", 5001, "OTHER") == 5001
    assert archive_port(state, "10.0.0.9", 5001, "ORTHANC") == 5001
    assert archive_port(None, "127.0.0.1", 5001, "ORTHANC") == 5001
