"""Body Part Examined and Laterality from a procedure description ("XR KNEE LEFT").

Terms are PS3.16 Annex L (Correspondence of Anatomic Region Codes and Body Part Examined
Defined Terms). Laterality (0020,0060) is Type 2C in the General Series module (PS3.3
C.7.3.1): required when the body part is a paired structure, absent otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words a description may use -> Body Part Examined defined term (PS3.16 Annex L).
_WORDS = {
    "HEAD": "HEAD",
    "BRAIN": "BRAIN",
    "SKULL": "SKULL",
    "NECK": "NECK",
    "CSPINE": "CSPINE",
    "TSPINE": "TSPINE",
    "LSPINE": "LSPINE",
    "SPINE": "SPINE",
    "CHEST": "CHEST",
    "THORAX": "CHEST",
    "LUNG": "LUNG",
    "HEART": "HEART",
    "CORONARY": "HEART",
    "CARDIAC": "HEART",
    "ABDOMEN": "ABDOMEN",
    "ABD": "ABDOMEN",
    "PELVIS": "PELVIS",
    "LIVER": "LIVER",
    "KIDNEY": "KIDNEY",
    "BREAST": "BREAST",
    "MAMMO": "BREAST",
    "MAMMOGRAPHY": "BREAST",
    "SHOULDER": "SHOULDER",
    "ELBOW": "ELBOW",
    "WRIST": "WRIST",
    "HAND": "HAND",
    "HIP": "HIP",
    "KNEE": "KNEE",
    "ANKLE": "ANKLE",
    "FOOT": "FOOT",
    "WHOLEBODY": "WHOLEBODY",
    "BONE": "WHOLEBODY",  # "NM BONE SCAN": a whole-body bone scan
}
# Paired structures among them: these need a Laterality (PS3.3 C.7.3.1.1.2).
PAIRED = frozenset(
    {"KIDNEY", "BREAST", "SHOULDER", "ELBOW", "WRIST", "HAND", "HIP", "KNEE", "ANKLE", "FOOT"}
)
_SIDES = {"LEFT": "L", "LT": "L", "L": "L", "RIGHT": "R", "RT": "R", "R": "R"}


@dataclass(frozen=True)
class Anatomy:
    body_part: str  # "" when the description names no known body part
    laterality: str | None  # None: the attribute is absent; "": present, side unknown

    @property
    def paired(self) -> bool:
        return self.body_part in PAIRED


def anatomy_of(description: str) -> Anatomy:
    """The body part a description names, and its side when it is a paired structure.

    A paired part without a side, or no known part at all, gives an empty Laterality: the
    standard allows it empty exactly when the side is unknown (Type 2C, PS3.3 C.7.3.1)."""
    words = re.findall(r"[A-Z]+", description.upper().replace("-SPINE", "SPINE"))
    part = next((_WORDS[w] for w in words if w in _WORDS), "")
    if part and part not in PAIRED:
        return Anatomy(part, None)
    side = next((_SIDES[w] for w in words if w in _SIDES), "")
    return Anatomy(part, side)
