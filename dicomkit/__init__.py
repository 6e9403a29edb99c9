"""dicomkit: a command-line tutor and lab for RIS -> Modality Worklist -> Modality -> PACS."""

__version__ = "0.1.0"
