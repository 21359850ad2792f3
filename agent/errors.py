"""The error kinds every part of fpagent raises on purpose.

Each module has its own error (EnvelopeError, StoreError, SensorError...),
derived from one of these kinds, so a caller can catch one module's errors
or all of fpagent's with `FpagentError`. The command line turns a kind into
one clear message and an exit code (fpagent.commands.EXIT_CODES), never a
traceback.
"""


class FpagentError(Exception):
    """Base of every error fpagent raises on purpose."""


class UserError(FpagentError):
    """Something a person can fix; the message says what and how."""


class ConfigError(UserError):
    """The configuration file is missing, unreadable or wrong; names the key."""


class DataError(UserError):
    """An input file or record is not what it should be; says what is wrong."""


class NoUsableFingerprint(DataError):
    """The image holds no fingerprint we can use (blank, noise, a photo...)."""


class StorageFull(UserError):
    """The disk or the queue quota is full: new work is refused, nothing is dropped."""


class StorageError(UserError):
    """The database cannot be read or written; says which file and why."""


class AccessError(UserError):
    """A file's owner or permissions are wrong (a key others can read, say)."""


class StartupError(UserError):
    """The service cannot start; the message says what to do."""
