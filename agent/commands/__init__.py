"""The `fpagent` sub-commands: each module here with `register(subparsers)` is found
automatically, so a new command is a new module and nothing else.

EXIT_CODES is the one table from error kinds to exit codes: sysexits.h values
where one fits, 3 for the sensor (as the healthcheck's UNKNOWN), 1 otherwise.
"""

from fpagent import hal
from fpagent.errors import (AccessError, ConfigError, DataError, FpagentError, StartupError,
                            StorageError, StorageFull, UserError)

EXIT_CODES: tuple[tuple[type, int], ...] = (  # the first kind that matches wins
    (ConfigError, 78),  # EX_CONFIG
    (StorageFull, 75),  # EX_TEMPFAIL: retry once space is freed
    (DataError, 65),  # EX_DATAERR
    (AccessError, 77),  # EX_NOPERM
    (StorageError, 74),  # EX_IOERR
    (StartupError, 1),
    (hal.SensorError, 3),
    (UserError, 2),
    (FpagentError, 1),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error of ours (1 for anything the table does not name)."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
