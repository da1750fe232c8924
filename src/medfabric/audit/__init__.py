"""The audit trail's building blocks: the tamper-evident, hash-chained record and its FHIR export.

Pure functions and values only: storage and the decision to write a record belong to the service
layer; nothing here ever drops, rewrites or reorders a record.
"""
