"""The service layer: the Fabric object, the one entry point of every front end.

It checks the principal, quotas and read-only state, and reports every access; the domains
below it only carry out what it has allowed.
"""
