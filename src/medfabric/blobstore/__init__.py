"""The blob store engine: immutable, content-addressed, checksummed blobs kept in packs.

Layers, bottom up: ``backend`` (named immutable objects: local directories or S3), ``pack``
(the on-disk record format), ``codec`` (compression, encryption, blob ids), ``index`` (the
catalog rows saying where each blob lives), ``store`` (writers and verified reads over replicas).
It knows nothing of paths, volumes' policies beyond the codec it is handed, users or DICOM.
"""
