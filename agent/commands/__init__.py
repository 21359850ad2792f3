"""CLI subcommands. Each module here defines `register(subparsers)` and is found
automatically, so a new command is a new module and nothing else."""
