"""The embedded PACS's index at 10,000 one-instance studies, in-process: the first QIDO-RS
study search after a new instance, the same search again, a Study Root C-FIND match by
accession, and Index.add. Before/after a change:

    python -P bench/index_cold.py                                  # this checkout
    PYTHONPATH=DIR python -P bench/index_cold.py                   # e.g. DIR an export of an older commit

First QIDO-RS study search after a new instance, 10,000 one-instance studies, in-process
(the embedded PACS's own Index and qido.Cache): run with PYTHONPATH=<package> python -P."""

import statistics
import sys
import tempfile
import time
from pathlib import Path

from dicomkit.pacs import qido
from dicomkit.pacs.index import Index, InstanceRecord
from dicomkit.pacs.qr import find_resources

n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000


def rec(i: int) -> InstanceRecord:
    return InstanceRecord.from_values(
        {
            "PatientID": f"P{i % 3000:04d}",
            "PatientName": f"PATIENT^{i:05d}",
            "AccessionNumber": f"ACC-{i:05d}",
            "StudyInstanceUID": f"1.2.3.{i}",
            "SeriesInstanceUID": f"1.2.3.{i}.1",
            "SOPInstanceUID": f"1.2.3.{i}.1.1",
            "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
            "Modality": "CT",
        },
        "1.2.840.10008.1.2.1",
    )


with tempfile.TemporaryDirectory() as d:
    index = Index(Path(d) / "index.sqlite3")
    t0 = time.perf_counter()
    for i in range(n):
        index.add(rec(i), "now")
    fill = time.perf_counter() - t0
    cache = qido.Cache(index)
    cold, warm, cfind = [], [], []
    from pydicom.dataset import Dataset

    for k in range(5):
        index.add(rec(n + k), "now")  # a new instance: the next search is "first"
        q = qido.parse("STUDY", [("AccessionNumber", f"ACC-{(k * 1777) % n:05d}")], {})
        t0 = time.perf_counter()
        assert len(qido.search(cache, q)) == 1
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assert len(qido.search(cache, q)) == 1
        warm.append(time.perf_counter() - t0)
        ds = Dataset()
        ds.QueryRetrieveLevel, ds.AccessionNumber = "STUDY", f"ACC-{(k * 1777) % n:05d}"
        ds.NumberOfStudyRelatedInstances = ""
        t0 = time.perf_counter()
        assert len(find_resources(index, ds)[1]) == 1
        cfind.append(time.perf_counter() - t0)

    def med(xs: list[float]) -> str:
        return f"{statistics.median(xs) * 1000:.1f} ms"

    print(
        f"{n} studies: QIDO first after a new instance {med(cold)}, again {med(warm)}; "
        f"C-FIND match by accession {med(cfind)}; Index.add {fill / n * 1e6:.0f} us each"
    )
