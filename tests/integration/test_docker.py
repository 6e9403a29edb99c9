"""The docker engine on a real Docker Engine, driven through the real CLI.

Images: no registry is reachable in CI, so scripts/docker-setup.sh builds local stand-ins
(dicomkit-test/orthanc, a Debian Python base for compose/Dockerfile, a wheelhouse) and these
tests point dicomkit at them. Every test of a running lab skips, saying why, when no Docker
Engine answers or the stand-ins are missing. The compose-file parsing tests always run.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicomkit.config import LabConfig
from tests.conftest import Lab, free_port, make_config, need, testdata

ORTHANC_IMAGE = os.environ.get("DICOMKIT_TEST_ORTHANC_IMAGE", "dicomkit-test/orthanc:bookworm")
PYTHON_IMAGE = os.environ.get("DICOMKIT_TEST_PYTHON_IMAGE", "dicomkit-test/python:bookworm")
POSTGRES_IMAGE = os.environ.get("DICOMKIT_TEST_POSTGRES_IMAGE", "dicomkit-test/postgres:bookworm")
RIS_IMAGE = os.environ.get("DICOMKIT_TEST_RIS_IMAGE", "dicomkit-test/ris:latest")
CACHE = Path(os.environ.get("DICOMKIT_TEST_CACHE", "/var/cache/dicomkit-test"))
WHEELHOUSE = CACHE / "wheels"  # scripts/docker-setup.sh fills it
SETUP = "run scripts/docker-setup.sh (it starts dockerd and builds the stand-in images)"


def _docker_ready() -> str:
    """Empty when the docker tests can run, else why not."""
    from dicomkit.engines.docker import DockerEngine
    from dicomkit.engines.docker_client import connect

    ok, why = DockerEngine().available()
    if not ok:
        return f"no Docker Engine: {why}"
    client = connect(timeout=10)
    try:
        for image in (ORTHANC_IMAGE, PYTHON_IMAGE):
            try:
                client.images.get(image)
            except Exception:
                return f"stand-in image {image} is missing: {SETUP}"
    finally:
        client.close()
    return ""


@pytest.fixture(scope="module")
def docker_ready() -> None:
    why = _docker_ready()
    if why:
        pytest.skip(why)


@dataclass
class DockerLab(Lab):
    """A lab on the docker engine under its own compose project, ports and images."""

    project: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{**self.extra, **extra})


def docker_env(cfg: LabConfig, project: str) -> dict[str, str]:
    env = {
        "DICOMKIT_PROJECT": project,
        "DICOMKIT_DICOM_PORT": str(cfg.dicom_port),
        "DICOMKIT_MWL_PORT": str(cfg.mwl_port),
        "DICOMKIT_HTTP_PORT": str(cfg.http_port),
        "DICOMKIT_RIS_PORT": str(cfg.ris_port),
        "DICOMKIT_HL7_PORT": str(cfg.hl7_port),
        "DICOMKIT_MPPS_PORT": str(cfg.mpps_port),
        "DICOMKIT_RETRIEVE_PORT": str(cfg.retrieve_port),
        "DICOMKIT_ORTHANC_IMAGE": ORTHANC_IMAGE,
        "DICOMKIT_RIS_IMAGE": RIS_IMAGE,
        "DICOMKIT_RIS_BASE_IMAGE": PYTHON_IMAGE,
        "DICOMKIT_POSTGRES_IMAGE": POSTGRES_IMAGE,
    }
    if any(WHEELHOUSE.glob("*.whl")):
        env["DICOMKIT_WHEELHOUSE"] = str(WHEELHOUSE)
    return env


def new_lab(home: Path) -> DockerLab:
    cfg = make_config(home, "docker")
    project = f"dktest{uuid.uuid4().hex[:8]}"
    return DockerLab("docker", home, cfg, project=project, extra=docker_env(cfg, project))


def client() -> Any:
    from dicomkit.engines.docker_client import connect

    return connect()


def labelled(project: str) -> dict[str, list[str]]:
    """Names of containers, volumes and networks carrying the project's compose label."""
    c = client()
    label = {"label": f"com.docker.compose.project={project}"}
    try:
        return {
            "containers": [x.name for x in c.containers.list(all=True, filters=label)],
            "volumes": [x.name for x in c.volumes.list(filters=label)],
            "networks": [x.name for x in c.networks.list(filters=label)],
        }
    finally:
        c.close()


def purge(project: str) -> None:
    """Remove whatever a failed test left under ``project`` (never another project)."""
    c = client()
    label = {"label": f"com.docker.compose.project={project}"}
    try:
        for x in c.containers.list(all=True, filters=label):
            x.remove(force=True)
        for n in c.networks.list(filters=label):
            n.remove()
        for v in c.volumes.list(filters=label):
            v.remove(force=True)
    finally:
        c.close()


@pytest.fixture(scope="module")
def lab(docker_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerLab]:
    """One docker lab for this module (the workflow tests below reuse this fixture name)."""
    lab = new_lab(tmp_path_factory.mktemp("lab-docker"))
    # The first `up` may build the RIS image (about a minute); later ones reuse it.
    r = lab.cli("up", "--engine", "docker", "--json", timeout=600)
    try:
        assert r.code == 0, f"dicomkit up failed ({r.code}):\n{r.out}\n{r.err}"
        yield lab
    finally:
        lab.cli("down", "--volumes", "--engine", "docker")
        purge(lab.project)


# ---- the workflow suite of every engine, on this engine ----------------------------------------

try:
    from tests.integration import test_workflow as _workflow
except ImportError:  # pragma: no cover - the suite is optional for this module
    _workflow = None  # type: ignore[assignment]


def _shared_tests() -> dict[str, Any]:
    """test_workflow's tests that talk to the lab only through its endpoints. Those that write
    into the host's worklist folder do not apply: here the folder is a Docker volume."""
    if _workflow is None:
        return {}
    out = {}
    for name, fn in vars(_workflow).items():
        if (
            name.startswith("test_")
            and callable(fn)
            and "worklist_dir" not in inspect.getsource(fn)
        ):
            out[f"{name}_on_docker"] = fn
    return out


globals().update(_shared_tests())

# MPPS through the lab's MPPS container: the same tests as on the other engines.
from tests.integration import test_mpps_lab as _mpps  # noqa: E402

scu = _mpps.scu
globals().update({f"{n}_on_docker": f for n, f in vars(_mpps).items() if n.startswith("test_")})

# Retrieval and storage commitment: Orthanc in its container reaches dicomkit's listener (C-MOVE
# destination, N-EVENT-REPORT on a new association) through host.docker.internal, the bridge
# gateway. The same tests as on the other engines.
from tests.integration import test_commitment as _commitment  # noqa: E402
from tests.integration import test_retrieve as _retrieve  # noqa: E402

acquire_study = _retrieve.acquire_study
globals().update(
    {
        f"{n}_on_docker": getattr(m, n)
        for m, names in (
            (_retrieve, ("test_retrieve_by_accession", "test_move_destination_unknown_names_the_fix",
                         "test_same_instances_as_dcmtk", "test_status_names_the_retrieve_and_commitment_endpoints")),
            (_commitment, ("test_commit_files", "test_commit_unknown_instance_fails_with_0x0112",
                           "test_commit_by_accession")),
        )
        for n in names
    }
)  # fmt: skip


# ---- docker-specific behaviour -----------------------------------------------------------------


def test_mwl_on_dicom_port_and_mwl_port(lab: DockerLab) -> None:
    acc = "DK-MWL-1"
    body = {"patient_id": "P-DK", "patient_name": "DOE^JOHN", "accession": acc, "modality": "CR"}
    r = lab.cli("order", "create", "--from-json", "-", "--json", input=json.dumps(body))
    assert r.code == 0, r.out + r.err
    for port in (lab.cfg.dicom_port, lab.cfg.mwl_port):
        r = lab.cli(
            "worklist", "find", "--accession", acc, "--to", f"127.0.0.1:{port}:ORTHANC", "--json"
        )
        assert r.code == 0, r.out + r.err
        assert [m["accession"] for m in r.json()["matches"]] == [acc], port
    findscu = shutil.which("findscu")
    if findscu:  # the classic DCMTK query, against the published MWL port
        proc = subprocess.run(
            [
                findscu,
                "-W",
                "-aet",
                "DICOMKIT",
                "-aec",
                "ORTHANC",
                "-k",
                f"AccessionNumber={acc}",
                "-k",
                "PatientName",
                "127.0.0.1",
                str(lab.cfg.mwl_port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, proc.stderr
        assert "DOE^JOHN" in proc.stdout + proc.stderr


def test_rest_studies_after_store(lab: DockerLab, tmp_path: Path) -> None:
    acc = "DK-REST-1"
    body = {"patient_id": "P-REST", "patient_name": "ROE^RICH", "accession": acc, "modality": "CR"}
    placed = lab.cli("order", "create", "--from-json", "-", "--json", input=json.dumps(body)).json()
    img = tmp_path / "img.dcm"
    assert lab.cli("make-image", "--accession", acc, "--out", str(img)).code == 0
    r = lab.cli("store", str(img), "--json")
    assert r.code == 0, r.out + r.err
    studies = httpx.get(f"http://127.0.0.1:{lab.cfg.http_port}/studies?expand", timeout=10).json()
    uids = [s["MainDicomTags"]["StudyInstanceUID"] for s in studies]
    assert placed["study_instance_uid"] in uids


def test_status_names_engine_and_containers(lab: DockerLab) -> None:
    r = lab.cli("status", "--json")
    assert r.code == 0, r.out + r.err
    d = r.json()
    assert d["engine"] == "docker" and d["healthy"] is True
    details = {s["name"]: s["detail"] for s in d["services"]}
    assert details.keys() == {"pacs", "ris", "mpps"}
    assert f"{lab.project}-orthanc-1" in details["pacs"]
    assert f"{lab.project}-mpps-1" in details["mpps"]
    assert f"{lab.project}-ris-1" in details["ris"]


def test_hl7_order_reaches_the_worklist(lab: DockerLab, tmp_path: Path) -> None:
    from tests import hl7util

    msg = tmp_path / "orm.hl7"
    msg.write_bytes(hl7util.orm(accession="DK-HL7-1", modality="CR"))
    r = lab.cli("hl7", "send", str(msg), "--json")
    assert r.code == 0 and r.json()["code"] == "AA", r.out + r.err
    r = lab.cli("worklist", "find", "--accession", "DK-HL7-1", "--json")
    assert r.code == 0 and len(r.json()["matches"]) == 1, r.out + r.err
    assert lab.cli("status", "--json").json()["hl7"] == f"127.0.0.1:{lab.cfg.hl7_port}"


def test_logs_of_each_service(lab: DockerLab) -> None:
    r = lab.cli("logs", "pacs")
    assert r.code == 0 and "Orthanc" in r.out
    r = lab.cli("logs", "ris")
    assert r.code == 0 and r.out.strip()
    r = lab.cli("logs", "nope")
    assert r.code != 0 and "pacs" in r.err


def test_compose_file_round_trip(lab: DockerLab) -> None:
    """Every service, port, volume and healthcheck in the YAML is on the created containers."""
    from dicomkit.engines.compose import load_compose

    cfg = LabConfig(
        home=lab.home,
        dicom_port=lab.cfg.dicom_port,
        mwl_port=lab.cfg.mwl_port,
        http_port=lab.cfg.http_port,
        ris_port=lab.cfg.ris_port,
        hl7_port=lab.cfg.hl7_port,
        mpps_port=lab.cfg.mpps_port,
    )
    project = load_compose(cfg, env=lab.extra)
    assert project.name == lab.project
    assert set(project.services) == {"orthanc", "ris", "mpps"}
    c = client()
    try:
        for name, svc in project.services.items():
            container = c.containers.get(f"{lab.project}-{name}-1")
            labels = container.labels
            assert labels["com.docker.compose.project"] == lab.project
            assert labels["com.docker.compose.service"] == name
            assert labels["com.docker.compose.oneoff"] == "False"
            assert container.image.tags and svc.image in container.image.tags
            bindings = container.attrs["HostConfig"]["PortBindings"]
            for p in svc.ports:
                published = bindings[f"{p.container_port}/{p.protocol}"]
                assert {"HostIp": p.host_ip, "HostPort": str(p.host_port)} in published
            mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
            for m in svc.mounts:
                got = mounts[m.target]
                assert got["RW"] is (not m.read_only)
                if m.kind == "volume":
                    assert got["Name"] == f"{lab.project}_{m.source}"
                else:
                    assert Path(got["Source"]) == Path(m.source)
            health = container.attrs["Config"]["Healthcheck"]
            assert svc.healthcheck is not None
            assert health["Test"] == svc.healthcheck["test"]
            assert health["Interval"] == svc.healthcheck["interval"]
            net = container.attrs["NetworkSettings"]["Networks"]
            assert f"{lab.project}_default" in net
            extra = container.attrs["HostConfig"].get("ExtraHosts") or []
            assert sorted(extra) == sorted(f"{k}:{v}" for k, v in svc.extra_hosts.items())
        published = {p.host_port for s in project.services.values() for p in s.ports}
        assert published == {
            lab.cfg.dicom_port,
            lab.cfg.mwl_port,
            lab.cfg.http_port,
            lab.cfg.ris_port,
            lab.cfg.hl7_port,
            lab.cfg.mpps_port,
        }
        assert all(p.host_ip == "127.0.0.1" for s in project.services.values() for p in s.ports)
    finally:
        c.close()


def test_up_again_converges_without_recreating(lab: DockerLab) -> None:
    before = _containers(lab.project)
    r = lab.cli("up", "--engine", "docker", "--json")
    assert r.code == 0 and r.json()["already_running"] is True
    # Lose the state file: `up` must adopt the running containers, not fail or duplicate them.
    lab.cfg.state_file.unlink()
    r = lab.cli("up", "--engine", "docker", "--json", timeout=600)
    assert r.code == 0, r.out + r.err
    assert r.json()["already_running"] is False
    after = _containers(lab.project)
    assert after.keys() == before.keys()
    for name, (container_id, image_id) in after.items():
        # Kept as it was, unless its image was rebuilt because the package sources changed.
        if image_id == before[name][1]:
            assert container_id == before[name][0], name


def _containers(project: str) -> dict[str, tuple[str, str]]:
    """name -> (container id, image id) of the project's containers."""
    c = client()
    label = {"label": f"com.docker.compose.project={project}"}
    try:
        return {x.name: (x.id, x.image.id) for x in c.containers.list(all=True, filters=label)}
    finally:
        c.close()


def test_status_with_one_container_stopped_by_hand(lab: DockerLab) -> None:
    c = client()
    try:
        c.containers.get(f"{lab.project}-ris-1").stop(timeout=5)
    finally:
        c.close()
    r = lab.cli("status", "--json")
    assert r.code == 1
    services = {s["name"]: s for s in r.json()["services"]}
    assert services["ris"]["running"] is False and services["ris"]["healthy"] is False
    assert services["pacs"]["running"] is True and services["pacs"]["healthy"] is True
    r = lab.cli("status")
    assert "docker" in r.out and "stopped" in r.out
    # `up` repairs a half-running lab.
    r = lab.cli("up", "--engine", "docker", "--json")
    assert r.code == 0, r.out + r.err
    assert lab.cli("status", "--json").json()["healthy"] is True


def test_down_volumes_leaves_nothing_labelled(docker_ready: None, tmp_path: Path) -> None:
    lab = new_lab(tmp_path)
    try:
        r = lab.cli("up", "--engine", "docker", "--json", timeout=600)
        assert r.code == 0, r.out + r.err
        volumes = sorted(v.rsplit("_", 1)[-1] for v in labelled(lab.project)["volumes"])
        assert volumes == ["mpps-data", "orthanc-db", "ris-data", "worklists"], volumes
        r = lab.cli("down", "--volumes")
        assert r.code == 0, r.err
        assert labelled(lab.project) == {"containers": [], "volumes": [], "networks": []}
        assert lab.cli("status").code == 4
    finally:
        purge(lab.project)


def test_two_nodes_share_one_index(docker_ready: None, tmp_path: Path) -> None:
    """`up --nodes 2`: postgres + orthanc-2 from docker-compose.nodes.yml; an instance stored
    through node 1 is found through node 2; `down --volumes` removes the database too."""
    from dicomkit.engines.docker_client import connect

    c = connect()
    try:
        c.images.get(POSTGRES_IMAGE)
    except Exception:
        pytest.skip(f"stand-in image {POSTGRES_IMAGE} is missing: {SETUP}")
    finally:
        c.close()
    lab = new_lab(tmp_path / "home")
    try:
        r = lab.cli("up", "--engine", "docker", "--nodes", "2", "--json", timeout=600)
        assert r.code == 0, r.out + r.err
        nodes = r.json()["nodes"]
        assert len(nodes) == 2
        assert nodes[0]["dicom"] == f"127.0.0.1:{lab.cfg.dicom_port}"
        status = lab.cli("status", "--json")
        assert status.code == 0, status.out + status.err
        assert {s["name"] for s in status.json()["services"]} >= {"pacs", "pacs-2", "postgres"}
        ct = tmp_path / "ct.dcm"
        shutil.copy(testdata("CT_small.dcm"), ct)
        r = lab.cli("store", str(ct), "--json")
        assert r.code == 0, r.out + r.err
        uid = r.json()["files"][0]["sop_instance_uid"]
        hits = httpx.post(f"{nodes[1]['http']}/tools/lookup", content=uid, timeout=10).json()
        assert [h["Type"] for h in hits] == ["Instance"]
        volumes = sorted(v.rsplit("_", 1)[-1] for v in labelled(lab.project)["volumes"])
        assert "postgres-data" in volumes, volumes
        r = lab.cli("down", "--volumes")
        assert r.code == 0, r.err
        assert labelled(lab.project) == {"containers": [], "volumes": [], "networks": []}
    finally:
        purge(lab.project)


# ---- errors a user will hit ----------------------------------------------------------------------


def test_port_conflict_names_the_port(docker_ready: None, tmp_path: Path) -> None:
    lab = new_lab(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", lab.cfg.http_port))
        squatter.listen()
        try:
            r = lab.cli("up", "--engine", "docker", timeout=600)
            assert r.code == 5, r.out + r.err
            assert str(lab.cfg.http_port) in r.err and "already taken" in r.err
            assert labelled(lab.project)["containers"] == []
        finally:
            lab.cli("down", "--volumes", "--engine", "docker")
            purge(lab.project)


def test_unpullable_image_fails_fast_with_hint(docker_ready: None, tmp_path: Path) -> None:
    lab = new_lab(tmp_path)
    lab.extra["DICOMKIT_ORTHANC_IMAGE"] = "dicomkit-test/absent:never"
    try:
        r = lab.cli("up", "--engine", "docker", timeout=180)
        assert r.code == 5, r.out + r.err
        assert "cannot pull dicomkit-test/absent:never" in r.err
        assert "--engine native" in r.err and "--engine embedded" in r.err
    finally:
        purge(lab.project)


def test_no_engine_answering_is_explained(tmp_path: Path) -> None:
    """Runs everywhere: a socket nobody serves."""
    home = tmp_path / "home"
    env_lab = Lab("docker", home, make_config(home, "docker"))
    sock = tmp_path / "nobody.sock"
    r = env_lab.cli("up", "--engine", "docker", DOCKER_HOST=f"unix://{sock}", timeout=60)
    assert r.code == 5
    assert f"unix://{sock}" in r.err and "--engine native" in r.err


def test_permission_denied_names_the_docker_group(tmp_path: Path) -> None:
    """A socket we may not open (root drops its file-permission override for the check)."""
    import sys

    sock_path = tmp_path / "locked.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        s.listen()
        os.chmod(sock_path, 0)
        argv = [sys.executable, "-m", "dicomkit", "up", "--engine", "docker"]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("root ignores socket permissions and setpriv is missing")
            argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *argv]
        env = Lab("docker", tmp_path, make_config(tmp_path, "docker")).env(
            DOCKER_HOST=f"unix://{sock_path}"
        )
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "permission denied" in proc.stderr and "docker group" in proc.stderr
    assert "newgrp" in proc.stderr


# ---- the compose file, parsed (no engine needed) ----------------------------------------------


def test_compose_file_defaults_are_the_classic_lab(tmp_path: Path) -> None:
    from dicomkit.engines.compose import load_compose

    project = load_compose(LabConfig(home=tmp_path), env={})
    assert project.name == "dicomkit"
    orthanc, ris = project.services["orthanc"], project.services["ris"]
    assert orthanc.image.startswith("orthancteam/orthanc:")
    assert {(p.host_ip, p.host_port, p.container_port) for p in orthanc.ports} == {
        ("127.0.0.1", 4242, 4242),
        ("127.0.0.1", 10500, 4242),
        ("127.0.0.1", 8042, 8042),
    }
    assert [(p.host_ip, p.host_port, p.container_port) for p in ris.ports] == [
        ("127.0.0.1", 5000, 5000),
        ("127.0.0.1", 2575, 2575),  # HL7 over MLLP
    ]
    config = next(m for m in orthanc.mounts if m.target == "/etc/orthanc/orthanc.json")
    assert config.kind == "bind" and config.read_only and Path(config.source).is_file()
    shared = {m.source for m in orthanc.mounts} & {m.source for m in ris.mounts}
    # The lab's worklist folder, bound into both (a plain `docker compose up`: the volume).
    assert shared == {str(tmp_path / "lab" / "worklists")}
    assert orthanc.environment["ORTHANC__AUTHENTICATION_ENABLED"] == "false"
    assert (
        json.loads(orthanc.environment["ORTHANC_JSON"])["DicomModalities"]["dicomkit"]["AET"]
        == "DICOMKIT"
    )
    assert orthanc.healthcheck and ris.healthcheck
    assert ris.command and ris.command[:3] == ["python", "-m", "dicomkit.ris"]
    assert ris.build and ris.build["dockerfile"] == "compose/Dockerfile"
    # The MPPS SCP Orthanc lacks: the RIS image, its own port and AE title, telling the RIS.
    mpps = project.services["mpps"]
    assert mpps.image == ris.image and mpps.command
    assert mpps.command[:3] == ["python", "-m", "dicomkit.pacs.mpps"]
    assert mpps.command[mpps.command.index("--aet") + 1] == "DICOMKIT_MPPS"
    assert mpps.command[mpps.command.index("--ris-url") + 1] == "http://ris:5000"
    assert [(p.host_ip, p.host_port, p.container_port) for p in mpps.ports] == [
        ("127.0.0.1", 4243, 4243)
    ]


def test_compose_file_follows_the_config(tmp_path: Path) -> None:
    from dicomkit.engines.compose import load_compose

    cfg = LabConfig(home=tmp_path, dicom_port=free_port(), mwl_port=free_port(), http_port=free_port(),
                    ris_port=free_port(), hl7_port=free_port(), aet="MODALITY1", pacs_aet="PACS1",
                    retrieve_port=free_port(), orthanc_image="local/orthanc:1")  # fmt: skip
    project = load_compose(cfg, env={"DICOMKIT_PROJECT": "mine"})
    assert project.name == "mine"
    orthanc = project.services["orthanc"]
    assert orthanc.image == "local/orthanc:1"
    assert {p.host_port for p in orthanc.ports} == {cfg.dicom_port, cfg.mwl_port, cfg.http_port}
    extra = json.loads(orthanc.environment["ORTHANC_JSON"])
    assert (
        extra["DicomAet"] == "PACS1" and extra["DicomModalities"]["dicomkit"]["AET"] == "MODALITY1"
    )
    # Orthanc in its container reaches our listener on this machine, on the lab's retrieve port.
    assert extra["DicomModalities"]["dicomkit"]["Host"] == "host.docker.internal"
    assert extra["DicomModalities"]["dicomkit"]["Port"] == cfg.retrieve_port
    assert orthanc.extra_hosts == {"host.docker.internal": "host-gateway"}
    command = project.services["ris"].command
    assert command is not None
    assert command[command.index("--station-aet") + 1] == "MODALITY1"
    assert {p.host_port for p in project.services["ris"].ports} == {cfg.ris_port, cfg.hl7_port}


def test_extra_hosts_forms() -> None:
    from dicomkit.engines.compose import parse_extra_hosts
    from dicomkit.errors import EngineError

    assert parse_extra_hosts(["a:host-gateway", "b=10.0.0.1", "v6:::1"]) == {
        "a": "host-gateway", "b": "10.0.0.1", "v6": "::1"}  # fmt: skip
    assert parse_extra_hosts({"a": "1.2.3.4"}) == {"a": "1.2.3.4"}
    assert parse_extra_hosts(None) == {}
    with pytest.raises(EngineError, match="NAME:ADDRESS"):
        parse_extra_hosts(["nocolon"])


def test_nodes_file_adds_postgres_and_node_2_on_one_index(tmp_path: Path) -> None:
    from dicomkit.engines.compose import (
        NODES_FILE,
        compose_file,
        load_compose,
        start_order,
        with_nodes,
    )
    from dicomkit.engines.state import Node

    cfg = LabConfig(home=tmp_path)
    extra = {"DICOMKIT_NODE2_DICOM_PORT": "5001", "DICOMKIT_NODE2_HTTP_PORT": "5002"}
    project = load_compose(cfg, env={}, overlays=[compose_file(NODES_FILE)], extra=extra)
    one, two, pg = (project.services[s] for s in ("orthanc", "orthanc-2", "postgres"))
    assert not pg.ports, "PostgreSQL is reachable on the project's network only"
    assert {(p.host_ip, p.host_port, p.container_port) for p in two.ports} == {
        ("127.0.0.1", 5001, 4242),
        ("127.0.0.1", 5002, 8042),
    }
    # One index, one storage volume, one worklist folder; the same AE title.
    index = [json.loads(s.environment["ORTHANC_JSON"]) for s in (one, two)]
    assert index[0]["PostgreSQL"] == index[1]["PostgreSQL"]
    assert index[0]["PostgreSQL"]["Lock"] is False and index[0]["PostgreSQL"]["Host"] == "postgres"
    assert index[0]["DicomAet"] == index[1]["DicomAet"] == "ORTHANC"
    # Both reach dicomkit's retrieve/commit listener as the main file's node does.
    assert index[0]["DicomModalities"] == index[1]["DicomModalities"]
    assert index[0]["DicomModalities"]["dicomkit"]["Host"] == "host.docker.internal"
    assert one.extra_hosts == two.extra_hosts == {"host.docker.internal": "host-gateway"}
    assert {m.source for m in one.mounts} == {m.source for m in two.mounts}
    # The main file's ports stay (merged, not replaced).
    assert {p.host_port for p in one.ports} == {4242, 10500, 8042}
    order = start_order(project)
    assert order.index("postgres") < order.index("orthanc") < order.index("orthanc-2")
    assert two.depends_on == {"postgres": "service_healthy", "orthanc": "service_healthy"}
    nodes = [Node(4242, 8042), Node(5001, 5002), Node(5003, 5004)]
    three = with_nodes(project, nodes).services["orthanc-3"]
    assert {p.host_port for p in three.ports} == {5003, 5004}
    assert json.loads(three.environment["ORTHANC_JSON"])["Name"] == "dicomkit PACS node 3"


def test_interpolation_and_durations() -> None:
    from dicomkit.engines.compose import interpolate, parse_duration, parse_port
    from dicomkit.errors import ConfigError

    v = {"A": "1", "E": ""}
    assert interpolate("${A}-${B:-x}-${E:-y}-${E-z}-$$", v) == "1-x-y--$"
    assert parse_duration("2s") == 2_000_000_000
    assert parse_duration("1m30s") == 90_000_000_000
    assert parse_duration("500ms") == 500_000_000
    with pytest.raises(ConfigError):
        parse_duration("soon")
    assert parse_port("127.0.0.1:10500:4242").host_port == 10500
    with pytest.raises(ConfigError):
        parse_port("localhost:http:4242")


def test_bad_project_name_is_refused(tmp_path: Path) -> None:
    from dicomkit.engines.compose import project_name
    from dicomkit.errors import ConfigError

    assert project_name({"DICOMKIT_PROJECT": "lab-2"}) == "lab-2"
    with pytest.raises(ConfigError):
        project_name({"DICOMKIT_PROJECT": "../Evil"})


def _compose_cli() -> list[str] | None:
    """`docker compose` (v2) or Debian's `docker-compose` (v1), whichever is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_recognises_the_lab(lab: DockerLab, tmp_path: Path) -> None:
    """`docker compose -p PROJECT ps` lists what `dicomkit up` created through the SDK."""
    from dicomkit.engines.compose import compose_file as shipped_compose_file

    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    compose_file = shipped_compose_file()
    if cli[0].endswith("docker-compose"):
        # Compose v1 predates the top-level `name:` key; the project comes from -p anyway.
        text = compose_file.read_text().replace("name: ${DICOMKIT_PROJECT:-dicomkit}\n", "")
        shutil.copy(compose_file.parent / "orthanc.json", tmp_path / "orthanc.json")
        compose_file = tmp_path / "docker-compose.yml"
        compose_file.write_text(text)
    proc = subprocess.run(
        [*cli, "-f", str(compose_file), "-p", lab.project, "ps"],
        capture_output=True,
        text=True,
        timeout=60,
        env=lab.env(),
    )
    assert proc.returncode == 0, proc.stderr
    for service in ("orthanc", "ris"):
        assert f"{lab.project}-{service}-1" in proc.stdout


def test_ctrl_c_during_up_leaves_nothing_unmanageable(docker_ready: None, tmp_path: Path) -> None:
    """Interrupt `up` once the containers exist; the next `up` and `down` still work."""
    import signal
    import sys

    lab = new_lab(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomkit", "up", "--engine", "docker"],
        env=lab.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "created" in line or "waiting for" in line:
                proc.send_signal(signal.SIGINT)
                break
        proc.wait(timeout=60)
        r = lab.cli("up", "--engine", "docker", "--json", timeout=600)
        assert r.code == 0, r.out + r.err
        assert lab.cli("status", "--json").json()["healthy"] is True
        r = lab.cli("down", "--volumes")
        assert r.code == 0, r.err
        assert labelled(lab.project) == {"containers": [], "volumes": [], "networks": []}
    finally:
        if proc.poll() is None:
            proc.kill()
        purge(lab.project)


def test_the_capstone_timeline_on_docker(lab: DockerLab, tmp_path: Path) -> None:
    """The Scheduled Workflow of lesson 14 with the CLI, then `dicomkit timeline`: the RIS's and
    the MPPS container's records, the event feed Orthanc's Lua writes into the lab's folder
    (worklist C-FINDs, the store with its sender) and the commitment report, which Orthanc
    sends to dicomkit's listener through host.docker.internal."""
    from dicomkit.tutor.steps.lesson09_orders_arrive_as_hl7 import orm

    acc = "DK-SWF-1"
    msg = tmp_path / "orm.hl7"
    msg.write_text(orm(acc, "MSG-DK-SWF-1"), encoding="utf-8")
    img = tmp_path / "img.dcm"
    for args in (("hl7", "send", str(msg)), ("mpps", "start", "--accession", acc),
                 ("make-image", "--accession", acc, "--out", str(img)), ("store", str(img)),
                 ("mpps", "complete", "--accession", acc), ("commit", str(img))):  # fmt: skip
        r = lab.cli(*args)
        assert r.code == 0, f"{args}: {r.out}{r.err}"
    r = lab.cli("timeline", "--accession", acc, "--json")
    assert r.code == 0, r.err
    tl = r.json()
    kinds = [x["transaction"].split()[0] for x in tl["rows"]]
    for rad in ("RAD-2", "RAD-5", "RAD-6", "RAD-8", "RAD-7", "RAD-10"):
        assert rad in kinds, kinds
    assert kinds.index("RAD-2") < kinds.index("RAD-6") < kinds.index("RAD-8") < kinds.index("RAD-7")
    store = tl["rows"][kinds.index("RAD-8")]
    assert store["sender"] == lab.cfg.aet
    assert "writes no event feed" not in " ".join(tl["unseen"])


def test_the_course_watches_the_docker_lab(lab: DockerLab) -> None:
    """Lessons 1-8 with --no-input: the tutor does each task and checks it in the event feed
    (lesson 1: the C-ECHO, read from Orthanc's dicom log in the container; lessons 3, 6, 8:
    the C-FINDs and C-STOREs its Lua wrote); `verify` counts them."""
    for n in range(1, 9):
        r = lab.cli("lesson", str(n), "--no-input", timeout=300)
        assert r.code == 0, f"lesson {n}: {r.out[-2000:]}{r.err[-2000:]}"
        assert "writes no event feed" not in r.out, f"lesson {n}"
    r = lab.cli("verify")
    for n in range(1, 9):  # verify exits 1 here: lessons 9-14 are not done in this lab
        assert f"✓ Lesson {n}:" in r.out, r.out + r.err
    feed = (lab.cfg.lab_dir / "events.jsonl").read_text()
    assert '"service": "store"' in feed or '"service":"store"' in feed
    assert "Association Received" in (lab.cfg.log_dir / "orthanc.log").read_text()


def test_a_learner_does_the_watched_lessons_on_docker(lab: DockerLab) -> None:
    """Lessons 1, 3, 6, 8 and 14 as a learner (pexpect; each task from a second shell with
    DCMTK after the hints): on docker too the tutor notices on its own what Orthanc in its
    container saw (its Lua's feed, its dicom log copied from the container) and says so. The
    lessons these build on (2's order, 4's image, 5's store) are shown by the tutor when the
    course above has not run them in this lab."""
    pytest.importorskip("pexpect")
    from dicomkit.tutor.course import load_course
    from tests.tutor.test_learner_on_lab import learn, progress

    for number in (2, 4, 5):
        if not (lab.home / "progress.json").exists() or (
            progress(lab)["lessons"].get(str(number), {}).get("status") != "done"
        ):
            r = lab.cli("lesson", str(number), "--no-input", timeout=300)
            assert r.code == 0, r.out + r.err
    for number in (1, 3, 6, 8, 14):
        assert lab.cli("reset", str(number)).code == 0
        status, out, done = learn(lab, number)
        assert status == 0, f"lesson {number}:\n{out}"
        assert done == load_course().get(number).task_order
        tasks = progress(lab)["lessons"][str(number)]["outcomes"]["tasks"]
        assert set(tasks.values()) == {"done"}  # the learner did them, not the tutor


def test_the_feed_survives_an_orthanc_restart(lab: DockerLab) -> None:
    """`restart: unless-stopped` brings a crashed Orthanc (or all of them after a Docker restart)
    back at the default log level, without the associations and C-ECHOs the feed reads. Where a
    watch starts, the tutor turns the dicom category back on: it still sees the learner's echo."""
    from dicomkit.labevents import mark, read_feed

    pacs = f"{lab.project}-orthanc-1"
    client().containers.get(pacs).restart(timeout=10)
    url = f"http://127.0.0.1:{lab.cfg.http_port}/tools/log-level-dicom"
    deadline = time.monotonic() + 90
    level = ""
    while time.monotonic() < deadline and not level:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url, timeout=2)
            level = r.text.strip() if r.status_code == 200 else ""
        time.sleep(0.5)
    assert level == "default", f"Orthanc after a restart: dicom log level {level!r}"

    since = mark(lab.cfg.lab_dir)  # what the tutor does where a task's watch starts
    assert httpx.get(url, timeout=5).text.strip() == "verbose"
    echo = subprocess.run([need("echoscu"), "-aet", "RESTARTED", "-aec", "ORTHANC", "127.0.0.1",
                           str(lab.cfg.dicom_port)], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert echo.returncode == 0, echo.stderr
    seen: list[str] = []
    while time.monotonic() < deadline and "RESTARTED" not in seen:
        seen = [e.calling for e in read_feed(lab.cfg.lab_dir, since, "ORTHANC")
                if e.service == "echo"]  # fmt: skip
        time.sleep(0.5)
    assert "RESTARTED" in seen
