"""Every compose file in compose/ is valid against the Compose Specification's JSON Schema
(tests/data/compose-spec.json): this machine's Compose is v1, which knows an older format."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
FILES = sorted((ROOT / "compose").glob("*.yml"))


def test_there_are_compose_files() -> None:
    names = {f.name for f in FILES}
    assert {"docker-compose.yml", "docker-compose.nodes.yml"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compose_file_is_valid_against_the_specification(path: Path) -> None:
    data = yaml.safe_load(path.read_text())
    validator = jsonschema.Draft7Validator(SCHEMA)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
    ]
    assert not errors, "\n".join(errors)


def test_the_schema_catches_a_broken_file() -> None:
    # A misspelt key, and depends_on with a condition Compose does not know.
    broken = {
        "services": {
            "orthanc": {"image": "x", "helthcheck": {}},
            "ris": {"image": "y", "depends_on": {"orthanc": {"condition": "service_ready"}}},
        }
    }
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(broken))
    assert len(errors) == 2, [e.message for e in errors]
