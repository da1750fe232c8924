"""Identities' building blocks: Access Control Expressions, MapR-style ACLs, token and password hashes.

Everything here is pure — no catalog, no I/O — so the service layer can wire it in; this package
never decides on its own who a caller is, and never stores a secret in plaintext.
"""
