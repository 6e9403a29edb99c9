"""The lab's pages render in a real browser with no internet: Debian's headless Chromium loads
the PACS page (studies -> series -> instances with rendered previews) and the RIS's API docs
(Swagger UI) with every host name but 127.0.0.1 unresolvable, and the test checks the DOM
after scripts ran and a screenshot of what was drawn."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from tests.conftest import free_port, start_pacs, testdata


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def browse(url: str, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run; names other than 127.0.0.1 do not resolve (no network)."""
    argv = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--no-first-run",
        f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,900", "--virtual-time-budget=10000", *mode, url,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def screenshot(url: str, tmp: Path, name: str) -> Any:
    from PIL import Image

    out = tmp / f"{name}.png"
    browse(url, tmp / f"profile-{name}-shot", f"--screenshot={out}")
    return Image.open(out).convert("RGB")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from dicomweb_client.api import DICOMwebClient

    from dicomkit.asgi import ThreadedServer
    from dicomkit.ris.app import create_app

    home = tmp_path_factory.mktemp("pages")
    pacs = start_pacs(home, "ORTHANC")
    ris = None
    try:
        ris = ThreadedServer(create_app(home / "ris.db", home / "wl"), "127.0.0.1", free_port())
        ris.start()
        client = DICOMwebClient(url=f"http://127.0.0.1:{pacs.cfg.http_port}/dicom-web")
        client.store_instances(datasets=[dcmread(testdata("MR_small.dcm"))])
        yield (f"http://127.0.0.1:{pacs.cfg.http_port}/",
               f"http://127.0.0.1:{ris.sock.getsockname()[1]}/docs")  # fmt: skip
    finally:
        if ris is not None:
            ris.shutdown()
            ris.server_close()
        pacs.stop()


def test_pacs_page_renders_previews_offline(servers: tuple[str, str], tmp_path: Path) -> None:
    page, _ = servers
    dom = browse(page, tmp_path / "profile-pacs", "--dump-dom").stdout
    assert 'data-previews="1/1"' in dom  # the page's script saw the preview decoded
    assert "CompressedSamples^MR1" in dom and "/instances/" in dom
    shot = screenshot(page, tmp_path, "pacs")
    # The MR preview is drawn: a 170x170 box of many grey levels where the page is flat colour.
    greys = {c for _n, c in shot.getcolors(maxcolors=1 << 20) or [] if c[0] == c[1] == c[2]}
    assert len(greys) > 100, "no rendered preview on the screenshot"


def test_ris_api_docs_render_offline(servers: tuple[str, str], tmp_path: Path) -> None:
    _, docs = servers
    dom = browse(docs, tmp_path / "profile-ris", "--dump-dom").stdout
    assert "jsdelivr" not in dom and "unpkg" not in dom  # assets from the RIS itself
    paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/orders", "/orders/{accession}", "/healthz"} <= paths, "Swagger UI did not render"
    shot = screenshot(docs, tmp_path, "ris")
    colours = shot.getcolors(maxcolors=1 << 20) or []
    # Swagger UI's green POST and blue GET badges: drawn only when its script and CSS loaded.
    assert any(g > 150 and r < 100 and b < 150 for _n, (r, g, b) in colours)
    assert len(colours) > 50
