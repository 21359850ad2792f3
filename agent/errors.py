"""Errors the CLI turns into one clear message and a non-zero exit, no traceback."""


class UserError(Exception):
    """Something a person can fix; the message says what and how."""

    exit_code = 2


class ConfigError(UserError):
    """The configuration file is missing, unreadable or wrong; names the key."""

    exit_code = 78  # EX_CONFIG


class StorageFull(UserError):
    """The disk or the queue quota is full: new work is refused, nothing is dropped."""

    exit_code = 75  # EX_TEMPFAIL


class NoUsableFingerprint(UserError):
    """The image holds no fingerprint we can use (blank, noise, a photo...)."""

    exit_code = 65  # EX_DATAERR
