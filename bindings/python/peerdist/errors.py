"""Exceptions raised by peerdist: one class per C error code, under peerdist.Error."""


class Error(Exception):
    """A peerdist call failed. ``code`` is the C pd_error_code, ``category`` its subsystem."""

    code = -1

    def __init__(self, message, code=None, category=0):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.category = category
        self.message = message


class MisuseError(Error):
    code = -2


class NotFoundError(Error):
    code = -3


class ExistsError(Error):
    code = -4


class VersionError(Error):
    code = -7


class AuthError(Error):
    code = -8


class InvalidError(Error):
    code = -9


class IntegrityError(Error):
    code = -10


class IOError_(Error):
    code = -11


class NoSpaceError(Error):
    code = -12


class QuotaError(Error):
    code = -13


class PluginError(Error):
    code = -14


class CancelledError(Error):
    code = -15


class TimeoutError_(Error):
    code = -16


class BusyError(Error):
    code = -18


class ReadOnlyError(Error):
    code = -19


class ChangedError(Error):
    code = -20


class StateError(Error):
    code = -22


class NoSourceError(Error):
    code = -23


_BY_CODE = {cls.code: cls for cls in Error.__subclasses__()}


def from_code(code, category, message):
    """Build the exception for a C error code (used by the native module)."""
    cls = _BY_CODE.get(code, Error)
    return cls(message, code, category)
