"""`fpagent transaction check FILE [--profile NAME]`: conformance of any ANSI/NIST-ITL file.

Reads the file with nistitl and checks its Type-1 and Type-2 records against
the booking profile (config `[transaction] profile`, or --profile): one line
per finding, exit 0 when the file conforms, 1 with findings, 65 when the
file is not a readable ANSI/NIST-ITL transaction.
"""

from __future__ import annotations

import pathlib

from fpagent import config
from fpagent.errors import UserError

MAX_FILE_BYTES = 64 * 1024 * 1024  # a ten-print with images is a few MB


def cmd_check(args) -> int:
    from fpagent.records.profile import load_profile
    from fpagent.records.profile_check import check_transaction

    selection = args.profile or config.load(args.config).transaction.profile
    profile = load_profile(selection)
    path = pathlib.Path(args.file)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    findings = check_transaction(profile, data)
    for finding in findings:
        print(finding)
    if findings:
        print(f"{path.name}: {len(findings)} finding(s) against profile {profile.label}")
        return 1
    print(f"{path.name}: conforms to profile {profile.label}")
    return 0


def register(sub):
    parser = sub.add_parser("transaction", help="check ANSI/NIST-ITL transactions against the booking profile",
                            description="Check ANSI/NIST-ITL transactions against the booking profile.")
    parser.set_defaults(_parser=parser)
    group = parser.add_subparsers(dest="transaction_command", metavar="ACTION")
    check = group.add_parser("check", help="print field-level findings for one file "
                             "(exit 0 conformant, 1 findings, 65 not ANSI/NIST-ITL)",
                             description=__doc__.split("\n\n")[1])
    check.add_argument("file", metavar="FILE", help="ANSI/NIST-ITL transaction (traditional encoding)")
    check.add_argument("--profile", metavar="NAME",
                       help="shipped profile name or absolute path of an overlay "
                       "(default: [transaction] profile of the configuration)")
    check.set_defaults(func=cmd_check)
