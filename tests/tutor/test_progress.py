"""The progress file: one owner, atomic rewrites, and a way out of a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dicomkit.errors import StateError
from dicomkit.tutor.progress import Progress
from tests.conftest import Lab, make_config


def test_fresh_progress_starts_at_lesson_1(tmp_path: Path) -> None:
    p = Progress.load(tmp_path)
    assert p.current([1, 2, 3]) == 1
    assert not (tmp_path / "progress.json").exists()  # reading never writes


def test_changes_are_saved_whole_and_reloaded(tmp_path: Path) -> None:
    p = Progress.load(tmp_path)
    p.start(1)
    p.record(1, echo_ms=3.2)
    p.complete(1)
    acc = p.next_accession()
    again = Progress.load(tmp_path)
    assert again.is_done(1) and again.outcomes(1) == {"echo_ms": 3.2}
    assert again.current([1, 2]) == 2
    assert again.next_accession() != acc
    assert len(acc) <= 16  # an SH value
    assert [f.name for f in tmp_path.iterdir()] == ["progress.json"]  # no temp files left


def test_accessions_differ_between_learners(tmp_path: Path) -> None:
    a = Progress.load(tmp_path / "a").next_accession()
    b = Progress.load(tmp_path / "b").next_accession()
    assert a != b


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "corrupt"),
        ('{"hello": "world"}', "not a dicomkit progress file"),
        ("[1, 2]", "not a dicomkit progress file"),
        ('{"kind": "dicomkit-progress", "format_version": 7}', "newer dicomkit"),
        ('{"kind": "dicomkit-progress", "format_version": 1, "learner": "../x"}', "damaged"),
    ],
)
def test_a_bad_file_gives_a_clear_error_and_a_way_out(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "progress.json").write_text(content)
    with pytest.raises(StateError, match=message) as info:
        Progress.load(tmp_path)
    assert "dicomkit reset --all" in info.value.hint
    assert Progress.reset_all(tmp_path) is True
    assert Progress.load(tmp_path).current([1]) == 1


def test_cli_on_a_corrupt_file_says_so_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text("\x00garbage")
    lab = Lab("none", tmp_path, make_config(tmp_path, "native"))
    for args in (["lessons"], ["hint"], ["verify"], ["lesson", "1"], ["next"]):
        r = lab.cli(*args)
        assert r.code == 1, (args, r.out, r.err)
        assert "Traceback" not in r.err
        assert "corrupt" in r.err and "dicomkit reset --all" in r.err
    r = lab.cli("lessons", "--json")
    assert r.code == 1 and r.json()["error"] == "StateError"
    r = lab.cli("reset", "--all")
    assert r.code == 0, r.err
    r = lab.cli("lessons")
    assert r.code == 0 and "Next: dicomkit lesson 1" in r.out


def test_without_a_lab_verify_and_lesson_say_how_to_start_one(tmp_path: Path) -> None:
    lab = Lab("none", tmp_path, make_config(tmp_path, "native"))
    r = lab.cli("verify")
    assert r.code == 4, r.out + r.err
    assert "no lab is running" in r.err and "dicomkit up" in r.err
    r = lab.cli("verify", "--json")
    assert r.code == 4 and r.json()["error"] == "LabNotRunning"
    r = lab.cli("lesson", "1", "--no-input")
    assert r.code == 4 and "dicomkit up" in r.err
    # Progress is untouched by a lesson that could not start.
    assert not (tmp_path / "progress.json").exists()


def test_course_list_hint_and_reset_need_no_lab(tmp_path: Path) -> None:
    lab = Lab("none", tmp_path, make_config(tmp_path, "native"))
    r = lab.cli("lessons", "--json")
    assert r.code == 0
    data = r.json()
    assert data["current"] == 1 and data["next"] == "dicomkit lesson 1"
    assert [x["status"] for x in data["lessons"]][:2] == ["current", "todo"]
    r = lab.cli("hint", "3")
    assert r.code == 0 and "ScheduledStationAETitle" in r.out
    r = lab.cli("lesson", "99")
    assert r.code == 2 and "there is no lesson 99" in r.err
    r = lab.cli("reset")
    assert r.code == 2
    r = lab.cli("reset", "2")
    assert r.code == 0 and "no progress" in r.out
    assert json.loads((tmp_path / "progress.json").read_text())["kind"] == "dicomkit-progress"
