from __future__ import annotations

from pathlib import Path

import pytest

from dicomkit.config import LabConfig, load_config
from dicomkit.dicom.net import Peer
from dicomkit.errors import ConfigError, UsageError


def test_defaults_match_the_classic_tutorial(tmp_path: Path) -> None:
    cfg = load_config(env={"DICOMKIT_HOME": str(tmp_path)})
    assert (cfg.pacs_aet, cfg.dicom_port, cfg.http_port, cfg.mwl_port, cfg.ris_port) == (
        "ORTHANC",
        4242,
        8042,
        10500,
        5000,
    )
    assert cfg.host == "127.0.0.1"


def test_env_overrides_and_flags_win(tmp_path: Path) -> None:
    env = {"DICOMKIT_HOME": str(tmp_path), "DICOMKIT_DICOM_PORT": "11112", "DICOMKIT_AET": "CT01"}
    cfg = load_config(env=env)
    assert cfg.dicom_port == 11112 and cfg.aet == "CT01"
    assert load_config(env=env, dicom_port=2000).dicom_port == 2000


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("DICOMKIT_DICOM_PORT", "four", "DICOMKIT_DICOM_PORT"),
        ("DICOMKIT_RIS_PORT", "70000", "not a TCP port"),
        ("DICOMKIT_AET", "A" * 17, "not a valid AE title"),
        ("DICOMKIT_AET", "BAD\\AE", "not a valid AE title"),
        ("DICOMKIT_ENGINE", "podman", "unknown engine"),
        ("DICOMKIT_TIMEOUT", "-1", "must be positive"),
    ],
)
def test_garbage_in_environment_is_named(
    tmp_path: Path, var: str, value: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(env={"DICOMKIT_HOME": str(tmp_path), var: value})
    assert fragment in exc.value.message
    assert exc.value.hint


def test_running_lab_ports_are_picked_up(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "state.json").write_text(
        '{"version": 1, "engine": "native", "endpoints": {"host": "127.0.0.1", "pacs_aet": "ORTHANC",'
        ' "dicom_port": 1234, "mwl_port": 1234, "http_port": 1235, "ris_port": 1236, "dicomweb": true}}'
    )
    cfg = load_config(env={"DICOMKIT_HOME": str(tmp_path)})
    assert cfg.dicom_port == 1234 and cfg.ris_port == 1236
    assert (
        load_config(env={"DICOMKIT_HOME": str(tmp_path), "DICOMKIT_DICOM_PORT": "9"}).dicom_port
        == 9
    )


def test_corrupt_state_file_is_ignored_for_config(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "state.json").write_text("{garbage")
    assert load_config(env={"DICOMKIT_HOME": str(tmp_path)}).dicom_port == 4242


@pytest.mark.parametrize("spec", ["nohost", "h:p:AE", "h:0:AE", ":104:AE", "h:104:" + "A" * 17])
def test_bad_peer_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        Peer.parse(spec)


def test_peer_spec() -> None:
    assert Peer.parse("127.0.0.1:11112:STORESCP") == Peer("127.0.0.1", 11112, "STORESCP")
    assert Peer.parse("[::1]:104:X").host == "::1"


def test_labconfig_paths(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path)
    assert cfg.worklist_dir == tmp_path / "lab" / "worklists"
