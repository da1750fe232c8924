"""The file-system domain: volumes, the versioned namespace, file contents, GC and fsck.

It provides mechanisms that run inside a catalog transaction handed in by the service layer;
policy (who may do what, auditing) is the service layer's and never decided here.
"""
