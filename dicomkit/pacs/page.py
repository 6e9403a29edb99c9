"""The PACS's home page (``GET /``): studies -> series -> instances, a rendered preview of each
instance, and the REST and DICOMweb URLs of each. One self-contained HTML document: no script,
style sheet or font from anywhere else, so it works on a network with no internet access."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from dicomkit.pacs.index import Resource
    from dicomkit.pacs.server import PacsServer

MAX_STUDIES = 200  # newest first; the REST API and QIDO-RS list the rest

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#f6f8fa}
h1{font-size:1.4rem;margin:0 0 .3rem}
.muted{color:#57606a;font-size:.85rem}
details{background:#fff;border:1px solid #d0d7de;border-radius:6px;margin:.5rem 0;padding:.4rem .8rem}
details details{background:#f6f8fa}
summary{cursor:pointer;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:.8rem;margin:.5rem 0}
figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4rem;width:180px}
figure img{width:170px;height:170px;object-fit:contain;background:#000;display:block}
figcaption{font-size:.75rem;word-break:break-all}
a{color:#0969da;text-decoration:none}
code{font-size:.8rem}
"""

# An instance the PACS cannot render (no pixel data: 406) shows a note instead of a broken image.
_NO_PREVIEW = "this.outerHTML='<span class=&quot;muted&quot;>no preview: not an image</span>'"

# Says on the page whether every preview decoded (the browser test reads it).
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.preview');
  var ok = 0;
  imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) { ok++; } });
  document.body.setAttribute('data-previews', ok + '/' + imgs.length);
});
"""


def _a(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _study(server: PacsServer, study: Resource, series: list[Resource],
           instances: dict[str, list[Resource]], first: bool) -> str:  # fmt: skip
    tags = {**study.parent_tags, **study.tags}
    uid = tags.get("StudyInstanceUID", "")
    web = f"/dicom-web/studies/{quote(uid)}"
    title = " · ".join(
        v for v in (tags.get("PatientName", ""), tags.get("AccessionNumber", ""),
                    tags.get("StudyDate", ""), tags.get("StudyDescription", "")) if v
    )  # fmt: skip
    out = [
        f"<details{' open' if first else ''}><summary>{escape(title or uid)}</summary>",
        f'<p class="muted">Study {escape(uid)} — REST {_a(f"/studies/{study.id}", "study")}'
        f" · DICOMweb {_a(web + '/series', 'QIDO series')} · "
        f"{_a(web + '/metadata', 'metadata')} · {_a(web, 'WADO-RS study')}</p>",
    ]
    for n, se in enumerate(s for s in series if s.parent == study.id):
        st = se.tags
        se_uid = st.get("SeriesInstanceUID", "")
        se_web = f"{web}/series/{quote(se_uid)}"
        label = " · ".join(v for v in (st.get("Modality", ""), st.get("SeriesNumber", ""),
                                       st.get("SeriesDescription", "")) if v)  # fmt: skip
        out.append(
            f"<details{' open' if first and n == 0 else ''}><summary>Series "
            f"{escape(label or se_uid)}</summary>"
            f'<p class="muted">REST {_a(f"/series/{se.id}", "series")} · DICOMweb '
            f"{_a(se_web + '/instances', 'QIDO instances')} · "
            f'{_a(se_web + "/metadata", "metadata")}</p><div class="grid">'
        )
        for inst in instances.get(se.id, []):
            sop = inst.tags.get("SOPInstanceUID", "")
            i_web = f"{se_web}/instances/{quote(sop)}"
            out.append(
                f'<figure><a href="{escape(i_web)}/rendered"><img class="preview" alt="instance '
                f'{escape(inst.tags.get("InstanceNumber", ""))}" src="{escape(i_web)}/rendered"'
                f' loading="{"eager" if first else "lazy"}" onerror="{_NO_PREVIEW}"></a><figcaption>#'
                f"{escape(inst.tags.get('InstanceNumber', '') or '?')} "
                f"{_a(f'/instances/{inst.id}', 'REST')} · {_a(i_web, 'WADO-RS')} · "
                f"{_a(i_web + '/metadata', 'metadata')} · {_a(i_web + '/rendered', 'PNG/JPEG')}"
                f"<br><code>{escape(sop)}</code></figcaption></figure>"
            )
        out.append("</div></details>")
    out.append("</details>")
    return "".join(out)


def render_page(server: PacsServer) -> str:
    index = server.index
    studies = index.newest("STUDY", MAX_STUDIES)
    wanted = [s.id for s in studies]
    series = index.under("SERIES", "STUDY", wanted)
    instances: dict[str, list[Resource]] = {}
    for inst in index.under("IMAGE", "STUDY", wanted):
        instances.setdefault(inst.parent, []).append(inst)
    counts = index.counts()
    cfg = server.cfg
    body = "".join(_study(server, st, series, instances, n == 0) for n, st in enumerate(studies))
    if not studies:
        body = (
            "<p>No study stored yet. Send one: <code>dicomkit store FILE.dcm</code> (C-STORE) or "
            "STOW-RS to <code>/dicom-web/studies</code>.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(cfg.name)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(cfg.name)}</h1>"
        f'<p class="muted">AE {escape(cfg.aet)} · DICOM {cfg.dicom_port} · HTTP {cfg.http_port}'
        f" · {counts['patients']} patient(s), {counts['studies']} stud(ies), "
        f"{counts['series']} series, {counts['instances']} instance(s) · "
        f"{_a('/statistics', 'REST /statistics')} · {_a('/studies', 'REST /studies')} · "
        f"{_a('/dicom-web/studies', 'QIDO-RS /dicom-web/studies')}</p>"
        f"{body}<script>{_SCRIPT}</script></body></html>"
    )
