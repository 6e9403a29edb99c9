"""What `pip install .` (the README's first command) ships: every package of the source tree.
The tests run on an editable install, which would not notice a package left out."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dicomkit").rglob("__init__.py")
    }
    assert found <= listed, f"not shipped by `pip install .`: {sorted(found - listed)}"
    for name, folder in config["package-dir"].items():
        assert (ROOT / folder / "__init__.py").exists(), name
