"""``dicomkit show FILE | --accession ACC``: the image in the terminal beside its main tags."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dicomkit.cli.common import CTX, JsonOpt, TimeoutOpt, set_json
from dicomkit.errors import LabNotRunning, UsageError

if TYPE_CHECKING:
    from PIL.Image import Image
    from pydicom.dataset import Dataset
    from rich.text import Text

MAIN_TAGS = (
    "PatientName", "PatientID", "AccessionNumber", "StudyDate", "StudyDescription", "Modality",
    "SeriesNumber", "SeriesDescription", "InstanceNumber", "SOPClassUID", "SOPInstanceUID",
    "PhotometricInterpretation", "BitsStored", "RescaleSlope", "RescaleIntercept",
)  # fmt: skip


def halfblocks(image: Image, width: int) -> Text:
    """Two pixels per character cell: the upper half block in the top pixel's colour on the
    bottom pixel's colour (Rich styles)."""
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    from dicomkit.dicom.render import thumbnail

    small = thumbnail(image.convert("RGB"), width)
    # A cell is about twice as tall as wide: one row of cells per two pixel rows keeps the shape.
    height = max(2, small.height - small.height % 2)
    small = small.resize((small.width, height))
    px = small.load()
    assert px is not None
    text = Text()
    for y in range(0, height, 2):
        if y:
            text.append("\n")
        for x in range(small.width):
            top, bottom = px[x, y], px[x, y + 1]
            style = Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom))  # type: ignore[misc]
            text.append("▀", style=style)
    return text


def _tags(ds: Dataset, window: Any, frames: int) -> dict[str, str]:
    from pydicom.uid import UID

    out = {k: str(ds.get(k, "")) for k in MAIN_TAGS if k in ds}
    if "SOPClassUID" in out:
        out["SOPClassUID"] = UID(out["SOPClassUID"]).name
    if "Rows" in ds:
        out["Size"] = f"{ds.Columns} x {ds.Rows}" + (f", {frames} frames" if frames > 1 else "")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        out["TransferSyntax"] = UID(str(ts)).name
    if window is not None:
        out["Window"] = f"center {window.center:g}, width {window.width:g}"
    return out


def _parse_window(text: str | None) -> Any:
    from dicomkit.dicom.render import Window

    if not text:
        return None
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--window {text!r}", "give CENTER,WIDTH, e.g. --window 40,400") from None
    if width < 1:
        raise UsageError("--window: the width must be at least 1", "e.g. --window 40,400")
    return Window(center, width)


def show(
    file: Annotated[
        Path | None, typer.Argument(help="A DICOM file (or use --accession).", show_default=False)
    ] = None,
    accession: Annotated[
        str, typer.Option("--accession", "-a", help="Fetch the study's first image from the PACS.")
    ] = "",
    frame: Annotated[int, typer.Option("--frame", help="Frame number (multi-frame images).")] = 1,
    window: Annotated[
        str | None, typer.Option("--window", help="CENTER,WIDTH instead of the data set's.")
    ] = None,
    width: Annotated[int, typer.Option("--width", help="Image width in characters.")] = 64,
    timeout: TimeoutOpt = None,
    json: JsonOpt = False,
) -> None:
    """Show an image in the terminal beside its main tags (window/level from the data set)."""
    from dicomkit import ui
    from dicomkit.dicom import render

    set_json(json)
    if (file is None) == (not accession):
        raise UsageError("give a FILE or --accession, not both or neither",
                         "e.g. `dicomkit show img.dcm` or `dicomkit show --accession ACC-1001`")  # fmt: skip
    if not 1 <= width <= 400:
        raise UsageError(f"--width {width}", "give 1 to 400 characters")
    ds = _read_file(file) if file is not None else _fetch(accession, timeout)
    win = _parse_window(window) or render.window_of(ds)
    frames = render.frame_count(ds)
    tags = _tags(ds, win, frames)
    image = None
    if "PixelData" in ds:
        image = render.render(ds, frame - 1, win)  # raises NotAnImage, with a hint
    if json:
        ui.print_json({"tags": tags, "rendered": image is not None, "frame": frame})
        return
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    facts = Table.grid(padding=(0, 1))
    for k, v in tags.items():
        facts.add_row(f"[bold]{k}[/bold]", v)
    if image is None:
        grid.add_row(facts)
        ui.console.print(grid)
        ui.console.print("[muted]no pixel data: nothing to draw[/muted]")
        return
    grid.add_row(halfblocks(image, min(width, max(8, ui.console.width - 50))), facts)
    ui.console.print(grid)


def _read_file(path: Path) -> Dataset:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        return dcmread(path)
    except FileNotFoundError:
        raise UsageError(f"no file {path}", "give the path of a DICOM file") from None
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise UsageError(
            f"{path} is not a DICOM file ({exc})", "give a Part 10 DICOM file"
        ) from None


def _fetch(accession: str, timeout: float | None) -> Dataset:
    from dicomkit.dicom.webclient import fetch_by_accession
    from dicomkit.engines.state import read_state

    cfg = CTX.config(timeout=timeout)
    state = read_state(cfg)
    if state is None:
        raise LabNotRunning("no lab is running", "start it with `dicomkit up`")
    if not state.endpoints.dicomweb:
        raise UsageError(
            f"the {state.engine} engine's PACS has no DICOMweb service",
            "install orthanc-dicomweb, or use the embedded engine",
        )
    return fetch_by_accession(state.endpoints.dicomweb_url, accession, cfg.timeout)
