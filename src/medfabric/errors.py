"""The error hierarchy every layer raises and every front end maps exactly once.

Each class carries the three translations a front end needs: a CLI exit code, an HTTP
status, and a DICOM (DIMSE) status. Front ends never invent their own mapping.
"""

from __future__ import annotations


class MedfabricError(Exception):
    """Base of every error medfabric raises on purpose."""

    exit_code = 1
    http_status = 500
    dimse_status = 0xC000  # Failure: unable to process
    errno_name = "EIO"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        return type(self).__name__


class InvalidInput(MedfabricError):
    """The request is malformed: a bad path, option, ACE, DICOM object or JSON condition."""

    exit_code = 22
    http_status = 400
    dimse_status = 0xA900  # Error: data set does not match SOP class
    errno_name = "EINVAL"


class NotFound(MedfabricError):
    """A volume, path, snapshot, table or principal that does not exist."""

    exit_code = 2
    http_status = 404
    dimse_status = 0xA801  # Refused: move destination unknown / no such object
    errno_name = "ENOENT"


class PermissionDenied(MedfabricError):
    """The principal's grants do not allow the operation."""

    exit_code = 13
    http_status = 403
    dimse_status = 0x0124  # Refused: not authorized
    errno_name = "EACCES"


class ReadOnly(PermissionDenied):
    """The target is read-only: a read-only or mirror volume, or a snapshot."""

    exit_code = 30
    errno_name = "EROFS"


class QuotaExceeded(MedfabricError):
    """The write would take a volume past its hard quota."""

    exit_code = 28
    http_status = 507
    dimse_status = 0xA700  # Refused: out of resources
    errno_name = "EDQUOT"


class Conflict(MedfabricError):
    """The target already exists, is not empty, or is in a state that forbids the operation."""

    exit_code = 17
    http_status = 409
    dimse_status = 0xA900
    errno_name = "EEXIST"


class NotEmpty(Conflict):
    """A directory or volume still has children."""

    exit_code = 39
    errno_name = "ENOTEMPTY"


class IntegrityError(MedfabricError):
    """Stored bytes or catalog rows fail verification and no good copy could be found."""

    exit_code = 74
    http_status = 500
    dimse_status = 0xC000
    errno_name = "EIO"


class Unavailable(MedfabricError):
    """An engine the fabric needs (catalog, object store, broker) cannot be reached."""

    exit_code = 69
    http_status = 503
    dimse_status = 0xA700
    errno_name = "EIO"


def exit_code_for(error: BaseException) -> int:
    """The CLI exit code for any exception (1 for errors that are not ours)."""
    return error.exit_code if isinstance(error, MedfabricError) else 1
