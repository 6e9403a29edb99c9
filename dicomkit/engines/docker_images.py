"""The docker engine's images: pulled when missing, and the RIS image built from this package's
sources (rebuilt when they change: a label holds their hash)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from dicomkit.engines.docker_client import ENGINE_LABEL, explain, not_found
from dicomkit.engines.protocol import Reporter
from dicomkit.errors import ConfigError, EngineError

SOURCE_HASH_LABEL = "org.dicomkit.source-hash"
OFFLINE_HINT = (
    "no image registry answers from here? Use --engine native (apt install orthanc "
    "orthanc-dicomweb) or --engine embedded (nothing to install), or point "
    "DICOMKIT_ORTHANC_IMAGE / DICOMKIT_RIS_IMAGE at images you have (docker images)"
)


def pull_image(client: Any, image: str, report: Reporter) -> None:
    """Pull ``image``, reporting each layer's progress (in 25 % steps) through ``report``."""
    from docker.utils import parse_repository_tag

    repo, tag = parse_repository_tag(image)
    report(f"pulling {image} (not present locally)")
    seen: dict[str, str] = {}
    try:
        for event in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise EngineError(f"cannot pull {image}: {event['error']}", OFFLINE_HINT)
            layer, status = event.get("id", ""), event.get("status", "")
            detail = event.get("progressDetail") or {}
            if status == "Downloading" and detail.get("total"):
                step = int(4 * detail.get("current", 0) / detail["total"]) * 25
                status = f"Downloading {step}%"
            if layer and seen.get(layer) != status:
                seen[layer] = status
                report(f"  {layer}: {status}")
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"cannot pull {image}: {explain(exc)}", OFFLINE_HINT) from None


def ensure_image(client: Any, image: str, report: Reporter) -> Any:
    try:
        return client.images.get(image)
    except not_found():
        pull_image(client, image, report)
        return client.images.get(image)


def source_root() -> Path | None:
    """The checkout this package runs from (pyproject.toml beside dicomkit/), if any."""
    here = Path(__file__).resolve().parent.parent.parent
    pyproject = here / "pyproject.toml"
    if pyproject.is_file() and 'name = "dicomkit"' in pyproject.read_text(errors="replace"):
        return here
    return None


def _tree(root: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
            continue
        if rel.parts[0] == "wheels" or rel.parts[0].endswith(".egg-info"):
            continue
        yield f"{prefix}/{rel.as_posix()}", path


def _installed_pyproject(packages: list[str]) -> str:
    """A pyproject.toml for building the installed package (no checkout at hand), laid out
    like the real one: lessons/ and compose/ at the top, shipped as dicomkit.lessons/.compose."""
    dist = metadata.distribution("dicomkit")
    deps = [r for r in (dist.requires or []) if "extra ==" not in r]
    return (
        '[build-system]\nrequires = ["setuptools>=68", "wheel"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "dicomkit"\nversion = "{dist.version}"\nreadme = "README.md"\n'
        f"dependencies = {json.dumps(deps)}\n\n"
        f"[tool.setuptools]\npackages = {json.dumps(sorted(packages))}\n\n"
        "[tool.setuptools.package-dir]\n"
        '"dicomkit.lessons" = "lessons"\n"dicomkit.compose" = "compose"\n\n'
        "[tool.setuptools.package-data]\n"
        'dicomkit = ["py.typed"]\n"dicomkit.lessons" = ["*.toml", "*.md"]\n'
        '"dicomkit.compose" = ["*.yml", "*.json", "Dockerfile*", "*.md"]\n'
    )


def ris_build_files() -> dict[str, bytes]:
    """The RIS image's build context: this package's sources and compose/Dockerfile."""
    files: dict[str, bytes] = {}
    root = source_root()
    if root is not None:
        for name in ("pyproject.toml", "README.md"):
            if (root / name).is_file():
                files[name] = (root / name).read_bytes()
        for folder in ("dicomkit", "lessons", "compose"):
            for arc, path in _tree(root / folder, folder):
                files[arc] = path.read_bytes()
    else:
        pkg = Path(__file__).resolve().parent.parent
        for arc, path in _tree(pkg, "dicomkit"):
            parts = arc.split("/")
            if parts[1] in ("compose", "lessons"):
                arc = "/".join(parts[1:])  # the Dockerfile copies them from the context root
            files[arc] = path.read_bytes()
        packages = [
            ".".join(("dicomkit", *p.parent.relative_to(pkg).parts)).rstrip(".")
            for p in pkg.rglob("__init__.py")
            if "__pycache__" not in p.parts
        ]
        files["pyproject.toml"] = _installed_pyproject(packages).encode()
    files.setdefault("README.md", b"# dicomkit\n")
    if "compose/Dockerfile" not in files:
        raise EngineError(
            "compose/Dockerfile is missing from this installation", "reinstall dicomkit"
        )
    return files


def source_hash(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:16]


def _wheelhouse() -> list[Path]:
    """Wheels for an offline build (``DICOMKIT_WHEELHOUSE``), e.g. where no PyPI is reachable."""
    folder = os.environ.get("DICOMKIT_WHEELHOUSE")
    if not folder:
        return []
    wheels = sorted(p for p in Path(folder).glob("*.whl") if not p.name.startswith("dicomkit-"))
    if not wheels:
        raise ConfigError(
            f"DICOMKIT_WHEELHOUSE={folder} holds no wheels", "run `pip wheel -w DIR .` or unset it"
        )
    return wheels


def _tar(files: dict[str, bytes], extra: list[tuple[str, Path]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, path in extra:
            tar.add(str(path), arcname=name)
    buf.seek(0)
    return buf


def build_ris_image(
    client: Any, image: str, build: dict[str, Any] | None, report: Reporter, force: bool = False
) -> Any:
    """Build the RIS image when it is missing or its package sources changed (a label holds
    their hash). An image without that label was not built by us: use it as it is."""
    files = ris_build_files()
    wheels = _wheelhouse()
    wanted = source_hash({**files, **{f"wheels/{w.name}": b"" for w in wheels}})
    previous = ""
    try:
        current = client.images.get(image)
        have = (current.labels or {}).get(SOURCE_HASH_LABEL)
        if not force and (have is None or have == wanted):
            return current
        previous = current.id
        report(f"the RIS image {image} is stale (package sources changed): rebuilding")
    except not_found():
        report(f"building the RIS image {image} (first run: a minute or two)")
    args = {str(k): str(v) for k, v in ((build or {}).get("args") or {}).items()}
    context = _tar(files, [(f"compose/wheels/{w.name}", w) for w in wheels])
    started = time.monotonic()
    tail: list[str] = []
    try:
        for event in client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile="compose/Dockerfile",
            tag=image,
            buildargs=args,
            labels={SOURCE_HASH_LABEL: wanted, ENGINE_LABEL: "docker"},
            rm=True,
            forcerm=True,
            decode=True,
        ):
            if "error" in event:
                raise EngineError(
                    f"building the RIS image failed: {event['error'].strip()}",
                    ("last build lines:\n  " + "\n  ".join(tail[-8:]) + "\n" if tail else "")
                    + OFFLINE_HINT,
                )
            line = str(event.get("stream", "")).rstrip()
            if line:
                tail.append(line)
                if line.startswith("Step "):
                    first = line.splitlines()[0]
                    report(f"  {first[:72]}{'...' if len(first) > 72 else ''}")
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"building the RIS image failed: {explain(exc)}", OFFLINE_HINT) from None
    report(f"built {image} in {time.monotonic() - started:.0f} s")
    built = client.images.get(image)
    if previous and previous != built.id:
        # The old build is untagged now; drop it unless a container still uses it.
        with contextlib.suppress(Exception):
            client.images.remove(previous)
    return built
