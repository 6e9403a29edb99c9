"""The RIS: an HTTP order API whose orders become Modality Worklist items."""
