"""Reports of triage results: CSV, PDF, and DICOM Secondary Capture results for PACS (no Tk)."""
