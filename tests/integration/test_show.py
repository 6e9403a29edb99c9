"""`dicomkit show`: a file, or the first image of an accession fetched from a running lab over
DICOMweb, drawn with half blocks beside its main tags (the real CLI in a subprocess)."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread

from tests.conftest import Lab, make_config, start_lab, stop_lab, testdata


def test_show_file_draws_half_blocks_in_colour(tmp_path: Path) -> None:
    lab = Lab("embedded", tmp_path, make_config(tmp_path, "embedded"))
    r = lab.cli("show", str(testdata("MR_small.dcm")), "--width", "32", FORCE_COLOR="1", COLORTERM="truecolor",
                COLUMNS="120")  # fmt: skip
    assert r.code == 0, r.err
    assert r.out.count("▀") == 32 * 16  # 64x64 pixels: 32 columns, 16 rows of two pixels
    assert "\x1b[38;2;" in r.out  # truecolour: each half block has its own grey
    assert "CompressedSamples^MR1" in r.out and "Window" in r.out
    r = lab.cli("show", str(testdata("MR_small.dcm")), "--json")
    assert r.code == 0, r.err
    assert r.json()["tags"]["Window"] == "center 600, width 1600"
    assert r.json()["rendered"] is True


def test_show_errors_name_the_problem(tmp_path: Path) -> None:
    lab = Lab("embedded", tmp_path, make_config(tmp_path, "embedded"))
    r = lab.cli("show", str(tmp_path / "nope.dcm"), "--json")
    assert r.code == 2 and "no file" in r.json()["message"]
    r = lab.cli("show", "--accession", "A-1", "--json")
    assert r.code == 4  # no lab running
    r = lab.cli("show", "--json")
    assert r.code == 2
    r = lab.cli("show", str(testdata("CT_small.dcm")), "--window", "x", "--json")
    assert r.code == 2 and "--window" in r.json()["message"]


def test_show_accession_from_the_running_lab(tmp_path: Path) -> None:
    ds = dcmread(testdata("CT_small.dcm"))
    ds.AccessionNumber = "SHOW-1"
    path = tmp_path / "ct.dcm"
    ds.save_as(path, enforce_file_format=True)
    lab = start_lab(tmp_path / "lab", "embedded")
    try:
        r = lab.cli("store", str(path), "--json")
        assert r.code == 0, r.out + r.err
        r = lab.cli("show", "--accession", "SHOW-1", "--width", "16", FORCE_COLOR="1", COLORTERM="truecolor",
                    COLUMNS="120")  # fmt: skip
        assert r.code == 0, r.err
        assert r.out.count("▀") == 16 * 8
        assert "SHOW-1" in r.out
        r = lab.cli("show", "--accession", "NO-SUCH", "--json")
        assert r.code == 1 and "no study" in r.json()["message"]
    finally:
        stop_lab(lab)
