"""Imaging domain: DICOM ingest, index and de-identification, plus the synthetic corpus generator.
Depends downward only (catalog, blobstore); never on gateways or the CLI."""
