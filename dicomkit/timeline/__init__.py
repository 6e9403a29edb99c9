"""The timeline of one order: every message the lab saw for an accession, in order (rows.py
builds it from records, sources.py reads the records from the running lab)."""
