"""DICOM library: VR validation, worklist items, image making, and the SCU operations."""
