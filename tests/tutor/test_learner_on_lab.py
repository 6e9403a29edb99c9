"""The learner's way through the course, on every engine the `lab` fixture offers.

pexpect runs `dicomkit lesson N` in a pseudo-terminal as a learner would; when the tutor says
"Your turn", a second shell asks `dicomkit hint --json` for the hints one at a time (the goal,
which tool, the exact command) and does the task with the real tools: DCMTK (found on the
system path, so pynetdicom's same-named scripts never shadow it), curl and dicomkit. The tutor
must see the result in the lab and say so. Lesson 8's broken scripts must first fail with the
error the lesson describes. Then every command the course prints is run at 80 columns, piped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dicomkit.tutor.course import Question, fill, load_course
from tests.conftest import Lab

pexpect = pytest.importorskip("pexpect")

# What each broken lesson 8 script must say when run as the tutor hands it over (see 08-*.md).
BROKEN = {
    "fix-called-ae": ("Called AE Title Not Recognized",),
    # Orthanc aborts the association; an SCP that answers says Unable to process (PS3.4 C.4.1.1.4).
    "fix-calling-ae": ("UnableToProcess", "Abort"),
    "fix-j2k": ("Failed to send message",),
    "fix-empty-worklist": ("Received Final Find Response (Success)",),
    # Lesson 11: PS3.4 C.4.2.1.5 says 0xA801; Orthanc 1.10 answers 0xC000 (Unable to process).
    "fix-move": ("MoveDestinationUnknown", "UnableToProcess", "Failed"),
}
# What the tutor says it saw the lab's services see (the event feed), after the broken script
# and after the learner's own command; {aet} and {pacs_aet} are the lab's.
SEES_BROKEN = {
    "fix-called-ae": "rejected",
    "fix-calling-ae": "calling AE ROGUE",
    "fix-empty-worklist": "matched 0 items",
}
SAW = {
    "echo-pacs": "a C-ECHO arrive at the PACS from calling AE ECHOSCU to called AE {pacs_aet}",
    "query-worklist": "your C-FIND from {aet} matched",
    "find-study": "your C-FIND from {aet} at level STUDY by AccessionNumber",
    "fix-called-ae": "a C-STORE of next-image.dcm",
    "fix-calling-ae": "the worklist C-FIND from {aet} answered",
    "fix-j2k": "a C-STORE of the JPEG 2000 file",
    "fix-empty-worklist": "station and date match now",
}


def spaced(text: str) -> str:
    """A pattern for ``text`` as the terminal shows it: Rich may wrap it at any space."""
    return r"\s+".join(re.escape(word) for word in text.split())


def dcmtk_dir() -> str:
    found = shutil.which("storescu", path=os.defpath)
    if found is None:
        pytest.skip("DCMTK is not installed on the system path")
    return str(Path(found).parent)


def second_shell(lab: Lab, command: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    """The learner's other terminal: DCMTK first on PATH, then this dicomkit, output piped."""
    path = os.pathsep.join([dcmtk_dir(), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = lab.env(PATH=path, COLUMNS=str(columns))
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True,
                          timeout=120, cwd=lab.home)  # fmt: skip


def progress(lab: Lab) -> dict[str, Any]:
    return dict(json.loads((lab.home / "progress.json").read_text()))


def has_dicomweb(lab: Lab) -> bool:
    return bool(lab.endpoints.dicomweb)


def right_answer(q: Question, values: dict[str, Any]) -> str:
    answer = fill(q.answer, values)
    if q.choices:
        return str([fill(c, values) for c in q.choices].index(answer) + 1)
    return f"  {answer.lower()}  "  # free text: case and spaces do not matter


def do_task(lab: Lab, lesson: int, task: str, child: Any = None) -> None:
    """The learner's second shell: hints one at a time, then the command (after the break);
    with the tutor's ``child``, it must say what the lab saw of the break."""
    levels = []
    for _ in range(3):
        r = lab.cli("hint", "--json")
        assert r.code == 0, r.err
        h = r.json()
        assert h["task"] == task, h
        levels.append((h["level"], h["hint"]))
    assert [lvl for lvl, _ in levels] == [1, 2, 3]
    command = levels[-1][1]
    assert "{{" not in command, command
    if task in BROKEN:
        script = progress(lab)["lessons"][str(lesson)]["outcomes"][f"scene_{task}"]["script"]
        broken = second_shell(lab, f"sh {script}")
        said = broken.stdout + broken.stderr
        assert any(m in said for m in BROKEN[task]), f"{task}: {said}"
        if child is not None and task in SEES_BROKEN:
            child.expect(r"The tutor sees[\s\S]{0,400}?" + spaced(SEES_BROKEN[task]))
    done = second_shell(lab, command)
    assert done.returncode == 0, f"{task}: {command}\n{done.stdout}\n{done.stderr}"


def learn(lab: Lab, number: int) -> tuple[int, str, list[str]]:
    """Run lesson N as a learner; returns its exit status, its output and the tasks done."""
    lesson = load_course().get(number)
    questions = [s.value for s in lesson.segments if s.kind == "question"]
    values = {"pacs_aet": lab.endpoints.pacs_aet, "aet": lab.cfg.aet}
    titles = {t.title: t.id for t in lesson.tasks.values()}
    env = lab.env(NO_COLOR="1", TERM="xterm", COLUMNS="120")
    child = pexpect.spawn(sys.executable, ["-m", "dicomkit", "lesson", str(number)], env=env,
                          encoding="utf-8", timeout=90, dimensions=(50, 120))  # fmt: skip
    done: list[str] = []
    asked = 0
    patterns = [r"Your answer", r"Your turn: (.+?) ─", r"Pick one or more", pexpect.EOF]
    while True:
        i = child.expect(patterns)
        if i == 0:
            child.sendline(right_answer(lesson.questions[questions[asked]], values))
            asked += 1
        elif i == 1:
            task = titles[child.match.group(1).strip()]
            if child.expect(["the tutor watches the lab", "cannot be done on this lab"]) == 1:
                continue  # lesson 7 without DICOMweb: honest, not done
            do_task(lab, number, task, child)
            child.expect(r"The tutor saw")  # it noticed on its own: the learner typed nothing
            if task in SAW:  # what the lab's services saw, in the tutor's words
                child.expect(spaced(SAW[task].format(**values)))
            done.append(task)
        elif i == 2:
            child.sendline("3,4")
        elif i == 3:
            break
    child.close()
    return int(child.exitstatus), str(child.before), done


def test_a_learner_does_every_task_with_the_real_tools(lab: Lab) -> None:
    t0 = time.monotonic()
    for number in range(1, 15):
        status, out, done = learn(lab, number)
        lesson = load_course().get(number)
        if number == 7 and not has_dicomweb(lab):
            assert status == 1 and done == []  # honest: no DICOMweb yet, not done
            continue
        assert status == 0, f"lesson {number}:\n{out}"
        assert done == lesson.task_order
        tasks = progress(lab)["lessons"][str(number)]["outcomes"]["tasks"]
        assert set(tasks.values()) == {"done"}  # the learner did them, not the tutor
    seconds = time.monotonic() - t0
    print(f"\nlearner course on {lab.engine}: {seconds:.0f} s")
    listing = lab.cli("lessons", "--json").json()
    tasks = {t["status"] for row in listing["lessons"] for t in row["tasks"]}
    assert "shown" not in tasks
    r = lab.cli("verify")
    assert r.code == (0 if has_dicomweb(lab) else 1), r.out


def test_a_learner_runs_the_capstone_and_reads_its_timeline(lab: Lab) -> None:
    """Lesson 14 alone (it needs no earlier lesson): each step of the Scheduled Workflow from
    the second shell with the real tools, then the same timeline from that shell."""
    assert lab.cli("reset", "14").code == 0  # done already when the whole course ran first
    t0 = time.monotonic()
    status, out, done = learn(lab, 14)
    assert status == 0, out
    assert done == load_course().get(14).task_order
    outcomes = progress(lab)["lessons"]["14"]["outcomes"]
    assert set(outcomes["tasks"].values()) == {"done"}
    print(f"\nlearner capstone on {lab.engine}: {time.monotonic() - t0:.0f} s")
    r = second_shell(lab, f"dicomkit timeline --accession {outcomes['swf_accession']} --json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    seen = [x["transaction"].split()[0] for x in rows]
    whole_run = ["RAD-2", "RAD-6", "RAD-8", "RAD-7", "RAD-10", "RAD-10"]
    assert [k for k in seen if k in whole_run] == whole_run
    # The learner's own findscu, by accession, is among the worklist queries the lab saw.
    assert any(x["transaction"].startswith("RAD-5") and x["sender"] == lab.cfg.aet
               for x in rows), seen  # fmt: skip


def _course_commands(lab: Lab) -> list[tuple[int, str]]:
    """Every command the course prints outside its tasks, as `lesson N --json` reports them
    (equivalents, reproductions, recaps, the tutor's own curl for an order)."""
    found: list[tuple[int, str]] = []
    for number in range(1, 15):
        r = lab.cli("lesson", str(number), "--json")
        assert r.code in (0, 1), r.err
        data = r.json()
        for step in data["steps"]:
            # A task's own command needs the task's moment (the tutor's listener of lesson 1 is
            # up only while it watches): the learner test above runs each of those live.
            found += [(number, c) for c in step.get("commands", []) if c != step.get("command")]
    return found


def test_every_printed_command_runs_at_80_columns(lab: Lab) -> None:
    commands = _course_commands(lab)
    tools = {c.split()[0] for _, c in commands}
    assert {"echoscu", "findscu", "curl", "dcmdump"} <= tools, tools  # storescu: task commands
    failures = []
    for number, command in commands:
        r = second_shell(lab, command, columns=80)
        said = r.stdout + r.stderr
        if number == 7 and "dicom-web" in command and not has_dicomweb(lab):
            continue  # lesson 7 prints no command on a lab without DICOMweb; none expected here
        if r.returncode != 0:
            failures.append(f"lesson {number}: {command}\n  exit {r.returncode}: {said[-400:]}")
            continue
        http_error = command.startswith("curl") and re.search(r'"(error|detail)"', r.stdout[:300])
        # curl exits 0 on an HTTP error: lesson 2 says a second POST of an order is a 409.
        said_409 = "/orders" in command and "already has an order" in r.stdout
        if http_error and not said_409:
            failures.append(f"lesson {number}: {command}\n  HTTP error: {r.stdout[:300]}")
    assert not failures, "\n".join(failures)


def test_watch_advances_when_the_lab_shows_the_result(lab: Lab) -> None:
    r = lab.cli("reset", "8")
    assert r.code == 0, r.err
    env = lab.env(NO_COLOR="1", TERM="xterm", COLUMNS="120")
    child = pexpect.spawn(sys.executable, ["-m", "dicomkit", "watch"], env=env,
                          encoding="utf-8", timeout=60, dimensions=(50, 120))  # fmt: skip
    child.expect("your turn: Fix the send button")
    do_task(lab, 8, "fix-called-ae")  # from the second shell, with the real storescu
    child.expect(spaced("the tutor saw a C-STORE of next-image.dcm"))  # what the PACS saw
    child.expect("your turn: Fix the morning worklist")  # advanced on its own
    child.sendline("h")
    child.expect("Hint 1/3")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    tasks = progress(lab)["lessons"]["8"]["outcomes"]["tasks"]
    assert tasks == {"fix-called-ae": "done"}


@pytest.mark.parametrize("columns", [80, 120])
def test_printed_commands_are_never_hard_wrapped(lab: Lab, columns: int) -> None:
    """Every command line the course prints (piped, at 80 and 120 columns) is whole: it parses as
    a shell command and the long ones run past the terminal width instead of breaking."""
    tools = ("echoscu ", "findscu ", "storescu ", "getscu ", "curl ", "dcmdump ", "dicomkit ")
    longest = 0
    for number in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14):
        r = lab.cli("lesson", str(number), "--show-me", "--no-input", COLUMNS=str(columns))
        assert r.code == 0, r.out + r.err
        for line in r.out.splitlines():
            if line.startswith(tools):
                words = shlex.split(line)  # an unbalanced quote would mean a broken line
                assert words and not line.endswith((" ", "\\")), line
                longest = max(longest, len(line))
    assert longest > columns  # long commands exist and were printed whole
