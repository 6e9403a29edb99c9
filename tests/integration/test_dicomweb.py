"""DICOMweb on the embedded PACS, driven by the real dicomweb-client: every endpoint
(QIDO-RS, WADO-RS, STOW-RS; PS3.18 10.4-10.6), against a PACS started in this process on free
ports, and what it answers checked against the files that were sent."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.conftest import start_pacs, testdata

FILES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")


def rt_plan() -> Dataset:
    """A non-image instance (RT Plan) with consistent File Meta Information."""
    ds = dcmread(testdata("rtplan.dcm"))
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = start_pacs(tmp_path_factory.mktemp("dicomweb"), "ORTHANC")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def client(pacs: Any) -> Any:
    from dicomweb_client.api import DICOMwebClient

    c = DICOMwebClient(url=f"http://127.0.0.1:{pacs.cfg.http_port}/dicom-web")
    answer = c.store_instances(datasets=[dcmread(testdata(n)) for n in FILES])
    assert len(answer.ReferencedSOPSequence) == 3
    assert "FailedSOPSequence" not in answer
    return c


def uids(name: str) -> tuple[str, str, str]:
    ds = dcmread(testdata(name), stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def value(item: dict[str, Any], tag: str) -> Any:
    v = item.get(tag, {}).get("Value", [None])[0]
    return v.get("Alphabetic") if isinstance(v, dict) else v


# ---- STOW-RS ---------------------------------------------------------------------------------


def test_stow_to_a_study_url_and_the_response_module(client: Any) -> None:
    plan = rt_plan()
    answer = client.store_instances(datasets=[plan], study_instance_uid=plan.StudyInstanceUID)
    (ref,) = answer.ReferencedSOPSequence
    assert ref.ReferencedSOPInstanceUID == plan.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == plan.SOPClassUID
    assert ref.RetrieveURL.endswith(f"/instances/{plan.SOPInstanceUID}")
    assert answer.RetrieveURL.endswith(f"/studies/{plan.StudyInstanceUID}")


def test_stow_to_another_study_url_fails_that_instance(client: Any) -> None:
    from requests.exceptions import HTTPError

    ct = dcmread(testdata("CT_small.dcm"))
    with pytest.raises(HTTPError) as err:
        client.store_instances(datasets=[ct], study_instance_uid="1.2.3.4")
    assert err.value.response.status_code == 409  # PS3.18 10.5.3: none stored
    failed = err.value.response.json()["00081198"]["Value"][0]
    assert value(failed, "00081155") == ct.SOPInstanceUID
    assert value(failed, "00081197") == 0xA900


def test_stored_bytes_come_back_unchanged(client: Any) -> None:
    for name in FILES:
        study, series, sop = uids(name)
        got = client.retrieve_instance(study, series, sop)
        out = BytesIO()
        got.save_as(out, enforce_file_format=True)
        sent = dcmread(testdata(name))
        assert got.SOPInstanceUID == sop
        assert got.file_meta.TransferSyntaxUID == sent.file_meta.TransferSyntaxUID
        assert got.PixelData == sent.PixelData


# ---- QIDO-RS ---------------------------------------------------------------------------------


def test_search_for_studies_matching_and_paging(client: Any) -> None:
    every = client.search_for_studies()
    assert len(every) == 4  # three images' studies and the RT plan's
    ct_study = uids("CT_small.dcm")[0]
    found = client.search_for_studies(search_filters={"PatientName": "CompressedSamples^CT*"})
    assert [value(s, "0020000D") for s in found] == [ct_study]
    assert value(found[0], "00100010") == "CompressedSamples^CT1"
    assert value(found[0], "00201208") == 1  # NumberOfStudyRelatedInstances, a JSON number
    assert value(found[0], "00081190").endswith(f"/dicom-web/studies/{ct_study}")
    assert client.search_for_studies(search_filters={"StudyDate": "20040119-20040119"})
    assert not client.search_for_studies(search_filters={"StudyDate": "19000101-19001231"})
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})
    assert client.search_for_studies(fuzzymatching=False, search_filters={"PatientID": "1CT1"})
    page1 = client.search_for_studies(limit=2)
    page2 = client.search_for_studies(limit=2, offset=2)
    assert len(page1) == 2 and len(page2) == 2
    assert {value(s, "0020000D") for s in page1 + page2} == {value(s, "0020000D") for s in every}


def test_includefield_adds_attributes_from_the_index_and_the_files(client: Any) -> None:
    study = uids("CT_small.dcm")[0]
    (found,) = client.search_for_studies(
        search_filters={"StudyInstanceUID": study},
        fields=["StudyDescription", "00180050", "InstitutionName"],
    )
    assert "00081030" in found  # StudyDescription, in the index
    assert value(found, "00180050") == pytest.approx(5.0)  # SliceThickness, read from the file
    everything = client.search_for_studies(
        search_filters={"StudyInstanceUID": study}, get_remaining=False, fields=["all"]
    )
    assert "00080080" in everything[0]


def test_search_for_series_and_instances_at_every_scope(client: Any) -> None:
    study, series, sop = uids("CT_small.dcm")
    assert len(client.search_for_series()) == 4
    (se,) = client.search_for_series(study)
    assert value(se, "0020000E") == series and value(se, "00080060") == "CT"
    assert value(se, "00201209") == 1
    assert len(client.search_for_series(search_filters={"Modality": "MR"})) == 1
    assert len(client.search_for_instances()) == 4
    (inst,) = client.search_for_instances(study)
    assert value(inst, "00080018") == sop
    (inst,) = client.search_for_instances(study, series)
    assert (value(inst, "00280010"), value(inst, "00280011")) == (128, 128)  # Rows, Columns
    assert value(inst, "00080016") == "1.2.840.10008.5.1.4.1.1.2"
    assert not client.search_for_instances(study, series, search_filters={"InstanceNumber": 99})


# ---- WADO-RS ---------------------------------------------------------------------------------


def test_retrieve_study_and_series(client: Any) -> None:
    study, series, sop = uids("MR_small.dcm")
    assert [str(d.SOPInstanceUID) for d in client.retrieve_study(study)] == [sop]
    assert [str(d.SOPInstanceUID) for d in client.retrieve_series(study, series)] == [sop]


def test_metadata_at_every_level_with_bulk_data(client: Any) -> None:
    study, series, sop = uids("CT_small.dcm")
    for meta in (
        client.retrieve_study_metadata(study)[0],
        client.retrieve_series_metadata(study, series)[0],
        client.retrieve_instance_metadata(study, series, sop),
    ):
        assert value(meta, "00080018") == sop
        assert value(meta, "00100010") == "CompressedSamples^CT1"
    uri = meta["7FE00010"]["BulkDataURI"]
    (pixels,) = client.retrieve_bulkdata(uri)
    assert pixels == dcmread(testdata("CT_small.dcm")).PixelData


def test_frames_uncompressed_and_compressed(client: Any) -> None:
    study, series, sop = uids("CT_small.dcm")
    (frame,) = client.retrieve_instance_frames(study, series, sop, [1])
    assert frame == dcmread(testdata("CT_small.dcm")).PixelData
    study, series, sop = uids("JPEG2000.dcm")
    (frame,) = client.retrieve_instance_frames(
        study, series, sop, [1], media_types=(("image/jp2", "1.2.840.10008.1.2.4.90"),)
    )
    assert frame[:4] in (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c")  # a J2K codestream


@pytest.mark.parametrize("media", ["image/png", "image/jpeg"])
def test_rendered_instance_and_frame(client: Any, media: str) -> None:
    from PIL import Image

    study, series, sop = uids("CT_small.dcm")
    data = client.retrieve_instance_rendered(study, series, sop, media_types=(media,))
    image = Image.open(BytesIO(data))
    assert image.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[media]
    assert image.size == (128, 128)
    assert image.getextrema()[1] > 200  # windowed, not a black square
    frame = client.retrieve_instance_frames_rendered(study, series, sop, [1], media_types=(media,))
    assert Image.open(BytesIO(frame)).size == (128, 128)


def test_rendering_a_non_image_is_406_never_500(client: Any, pacs: Any) -> None:
    plan = rt_plan()
    url = (f"http://127.0.0.1:{pacs.cfg.http_port}/dicom-web/studies/{plan.StudyInstanceUID}"
           f"/series/{plan.SeriesInstanceUID}/instances/{plan.SOPInstanceUID}/rendered")  # fmt: skip
    r = httpx.get(url, headers={"Accept": "image/png"}, timeout=10)
    assert r.status_code == 406, r.text
    assert "no pixel data" in r.json()["error"]


def test_unknown_resources_are_404(pacs: Any) -> None:
    base = f"http://127.0.0.1:{pacs.cfg.http_port}/dicom-web"
    for path in ("/studies/1.2.3", "/studies/1.2.3/metadata", "/studies/1.2.3/series/4.5"):
        assert httpx.get(base + path, timeout=10).status_code == 404, path


def test_rest_and_page_link_the_same_instances(client: Any, pacs: Any) -> None:
    root = f"http://127.0.0.1:{pacs.cfg.http_port}"
    page = httpx.get(root + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    study, series, sop = uids("CT_small.dcm")
    assert f"/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    stats = httpx.get(root + "/statistics", timeout=10).json()
    assert stats["CountInstances"] == 4


def test_path_of_stored_files_stays_inside_storage(pacs: Any) -> None:
    # STOW goes through the same storage path as C-STORE: files named by hash, not by UID.
    files = list(Path(pacs.cfg.storage_dir, "files").glob("*/*.dcm"))
    assert len(files) == 4
    assert all(len(f.stem) == 64 for f in files)


def test_a_data_set_written_without_preamble_is_stored(client: Any) -> None:
    """pydicom's dcmwrite leaves out the preamble and "DICM" of a data set made in memory
    (dicomweb-client sends that, e.g. `dicomkit make-image`'s image); stored as Part 10."""
    from dicomkit.dicom.image import make_image

    item = Dataset()
    item.PatientName, item.PatientID, item.AccessionNumber = "NO^PREAMBLE", "NP1", "NP-1"
    item.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds = make_image(item)
    assert not hasattr(ds, "preamble") or ds.preamble is None
    answer = client.store_instances(datasets=[ds])
    assert answer.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert got.preamble == b"\0" * 128


def test_retrieve_converts_into_an_uncompressed_syntax_the_client_names(client: Any) -> None:
    """PS3.18 8.7.3.5.2: a JPEG 2000 instance asked for as Explicit VR Little Endian comes
    back decoded (pixel values equal to pydicom's decoding of the stored file)."""
    import numpy as np

    study, series, sop = uids("JPEG2000.dcm")
    explicit = "1.2.840.10008.1.2.1"
    got = client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", explicit),)
    )
    assert got.file_meta.TransferSyntaxUID == explicit
    assert got.SOPInstanceUID == sop
    assert np.array_equal(got.pixel_array, dcmread(testdata("JPEG2000.dcm")).pixel_array)


def test_retrieve_in_a_syntax_it_cannot_make_is_406(pacs: Any) -> None:
    import httpx

    study, series, sop = uids("JPEG2000.dcm")
    url = f"http://127.0.0.1:{pacs.cfg.http_port}/dicom-web/studies/{study}/series/{series}/instances/{sop}"
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    r = httpx.get(url, headers={"Accept": accept})
    assert r.status_code == 406 and "transfer-syntax=*" in r.json()["error"]
