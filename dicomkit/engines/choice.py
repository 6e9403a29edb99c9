"""Which engine runs the lab: by name, or the first of docker, native, embedded that can run
here (``auto``), falling back to the next when one fails to start."""

from __future__ import annotations

from collections.abc import Callable

from dicomkit.config import LabConfig
from dicomkit.engines.protocol import Engine, Reporter
from dicomkit.engines.state import LabState, clear_state, read_state
from dicomkit.errors import EngineError


def get_engine(name: str) -> Engine:
    if name == "native":
        from dicomkit.engines.native import NativeEngine

        return NativeEngine()
    if name == "docker":
        try:
            from dicomkit.engines.docker import DockerEngine
        except ImportError as exc:
            raise EngineError(
                f"the docker engine is not available: {exc}", "use --engine native"
            ) from None
        return DockerEngine()
    if name == "embedded":
        try:
            from dicomkit.engines.embedded import EmbeddedEngine
        except ImportError as exc:
            raise EngineError(
                f"the embedded engine is not available: {exc}", "use --engine native"
            ) from None
        return EmbeddedEngine()
    raise EngineError(f"unknown engine {name!r}", "choose docker, native or embedded")


def engine_candidates(requested: str) -> list[tuple[Engine, str]]:
    """The engines to try, in order, each with why it qualifies.

    ``auto``: docker if an engine answers, else native if Orthanc is installed, else embedded;
    every available one is listed so ``start_lab`` can fall back (e.g. Docker runs but no
    registry is reachable for the Orthanc image).
    """
    if requested != "auto":
        engine = get_engine(requested)
        ok, why = engine.available()
        if not ok:
            raise EngineError(
                f"the {requested} engine cannot run here: {why}",
                _alternatives(requested),
            )
        return [(engine, f"--engine {requested}")]
    reasons: list[str] = []
    found: list[tuple[Engine, str]] = []
    for name in ("docker", "native", "embedded"):
        try:
            engine = get_engine(name)
        except EngineError as exc:
            reasons.append(f"{name}: {exc.message}")
            continue
        ok, why = engine.available()
        if ok:
            prefix = ("; ".join(reasons) + "; ") if reasons and not found else ""
            found.append((engine, f"{prefix}{name}: {why}"))
        else:
            reasons.append(f"{name}: {why}")
    if not found:
        raise EngineError(
            "no engine can run here: " + "; ".join(reasons), "install Orthanc or Docker"
        )
    return found


def select_engine(requested: str) -> tuple[Engine, str]:
    return engine_candidates(requested)[0]


def start_lab(
    cfg: LabConfig, report: Reporter, chose: Callable[[Engine, str], None]
) -> tuple[LabState, str]:
    """Start the lab on the first engine that comes up. With ``auto``, an engine that fails
    to start (other than for a taken port, which every engine would hit) yields to the next."""
    from dicomkit.errors import PortInUse

    candidates = engine_candidates(cfg.engine)
    if cfg.nodes > 1 and cfg.engine == "auto" and len(candidates) > 1:
        # The embedded engine is one node: with auto, the engines that can run nodes only.
        candidates = [c for c in candidates if c[0].name != "embedded"]
    failures: list[str] = []
    for i, (engine, why) in enumerate(candidates):
        if failures:
            why = f"{why} (after: {'; '.join(failures)})"
        chose(engine, why)
        try:
            return engine.up(cfg, report), why
        except PortInUse:
            raise
        except EngineError as exc:
            if i == len(candidates) - 1:
                raise
            failures.append(f"{engine.name} failed: {exc.message}")
            report(f"{engine.name} engine failed ({exc.message}); trying the next engine")
            leftover = read_state(cfg)
            if leftover is not None:
                engine.down(cfg, leftover, False, report)
                clear_state(cfg)
    raise AssertionError("unreachable")  # pragma: no cover


def _alternatives(name: str) -> str:
    others = {
        "docker": "start Docker, or use --engine native (apt install orthanc orthanc-dicomweb) "
        "or --engine embedded (nothing to install)",
        "native": "install Orthanc (sudo apt install orthanc orthanc-dicomweb), or use "
        "--engine embedded (nothing to install)",
        "embedded": "use --engine native or --engine docker",
    }
    return others.get(name, "")
