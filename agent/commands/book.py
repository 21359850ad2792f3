"""`fpagent book`: take a ten-print booking and queue it for the central system.

Guided (default): asks for what is missing, says which finger is next, shows
progress while the sensor works and the advice when a print is poor, and
asks before submitting. Non-interactive (`--yes`): everything comes from the
command line, nothing is asked; a print the duplicate-finger check keeps
refusing is kept and flagged for review, never confirmed; for scripts and tests. Either way the booking reaches the outbox only once it is
complete (one transaction); Ctrl-C cancels and keeps nothing.

    fpagent book --booking-number 2026-0042 --operator jdoe --name "DOE,JOHN" \\
        --dob 1980-01-02 --yes --sensor 'synthetic://?seed=1&person=7' --skip 5:XX --json
"""

from __future__ import annotations

import json
import sys
import time

from fpagent.errors import UserError

# descriptive fields -> command-line option help
_FIELD_HELP = {
    "name": "name as LAST,FIRST MIDDLE (2.018 NAM)",
    "dob": "date of birth YYYY-MM-DD (2.022 DOB)",
    "sex": "M, F, X or U (2.024 SEX)",
    "pob": "place of birth code (2.020 POB)",
    "race": "race code (2.025 RAC)",
    "height": "height (2.027 HGT)",
    "weight": "weight (2.029 WGT)",
    "eyes": "eye colour code (2.031 EYE)",
    "hair": "hair colour code (2.032 HAI)",
}

_FIELD_QUESTION = {
    "name": "Name, as LAST,FIRST MIDDLE",
    "dob": "Date of birth (YYYY-MM-DD)",
    "sex": "Sex (M, F, X or U)",
    "pob": "Place of birth (state or country code)",
    "race": "Race code",
    "height": "Height",
    "weight": "Weight",
    "eyes": "Eye colour code",
    "hair": "Hair colour code",
}


def register(sub):
    p = sub.add_parser(
        "book", help="take a ten-print booking and queue it for central",
        description="Capture the ten fingers (right thumb to left little), check each "
        "print, and queue the booking as one sealed ANSI/NIST-ITL transaction.",
    )
    p.add_argument("--booking-number", metavar="N", help="the jail's booking number")
    p.add_argument("--operator", metavar="ID", help="who takes the prints (officer id)")
    p.add_argument("--ori", metavar="ORI", help="agency ORI (default: [device] ori)")
    for key, text in _FIELD_HELP.items():
        p.add_argument(f"--{key}", metavar="TEXT", help=text)
    p.add_argument("--arrest-date", metavar="YYYY-MM-DD", help="date of arrest (default: today)")
    p.add_argument("--sensor", metavar="URL", help="sensor URL (default: [sensor] url)")
    p.add_argument("--skip", metavar="FGP:CODE,...", default="",
                   help="fingers that cannot be printed, e.g. 5:XX,6:UP (XX amputated, UP unable to print)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds to wait for each finger")
    p.add_argument("--yes", action="store_true",
                   help="non-interactive: ask nothing, submit when complete")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=run)


def parse_skip(text: str) -> dict[int, str]:
    """'5:XX,6:UP' -> {5: 'XX', 6: 'UP'}; a clear error otherwise."""
    out: dict[int, str] = {}
    for part in filter(None, (s.strip() for s in (text or "").split(","))):
        pos, _, code = part.partition(":")
        code = code.strip().upper()
        try:
            position = int(pos)
        except ValueError:
            position = 0
        if position not in range(1, 11) or code not in ("XX", "UP"):
            raise UserError(f"--skip {part!r}: write FINGER:CODE with FINGER 1-10 and CODE XX "
                            f"(amputated) or UP (unable to print), e.g. 5:XX")
        if position in out:
            raise UserError(f"--skip names finger {position} twice")
        out[position] = code
    return out


class TerminalUI:
    """Prompts and progress on stderr (stdout stays clean for --json)."""

    def __init__(self, interactive: bool):
        self.interactive = interactive
        self._last_progress = 0.0
        self._partial = False  # a "\r" progress line is on screen

    def _say(self, text: str) -> None:
        if self._partial:
            end = "\r\x1b[K" if sys.stderr.isatty() else "\n"
            print(end, end="", file=sys.stderr)
            self._partial = False
        print(text, file=sys.stderr, flush=True)

    def prompt(self, text: str, position: int) -> None:
        self._say(f"-> {text}")

    def progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == "upload" and total and (now - self._last_progress > 0.5 or done >= total):
            self._last_progress = now
            print(f"   reading image {100 * done // total:3d}%", end="\r", file=sys.stderr, flush=True)
            self._partial = True
        elif stage == "waiting" and now - self._last_progress > 2.0:
            self._last_progress = now
            self._say("   waiting for the finger...")

    def outcome(self, outcome) -> None:
        self._say(f"   {outcome.message}")
        if outcome.advice:
            self._say(f"   advice: {outcome.advice}")

    def notice(self, text: str) -> None:
        self._say(f"   {text}")

    def confirm(self, question: str) -> bool:
        if not self.interactive:
            return False
        return _ask_yes_no(question)

    def candidates(self, position: int, found: list) -> None:
        listed = ", ".join(f"{gid} ({score:.2f})" for gid, score in found)
        self._say(f"   LOCAL GALLERY CANDIDATES for this finger: {listed}")


def _ask(question: str) -> str:
    print(question, end=" ", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise UserError("no answer (end of input); booking not started")
    return line.strip()


def _ask_yes_no(question: str) -> bool:
    return _ask(f"{question} [y/N]").lower() in ("y", "yes")


def run(args) -> int:
    from fpagent.booking import local_screening, runner, submit
    from fpagent.booking import session as B
    from fpagent import config as config_mod

    cfg = config_mod.load(args.config)
    interactive = not args.yes
    skip = parse_skip(args.skip)

    booking_number = args.booking_number
    operator = args.operator
    descriptive = {}
    for key in cfg.booking.descriptive_fields:
        value = getattr(args, key, None)
        if value:
            descriptive[key] = value
    extra = [k for k in _FIELD_HELP if getattr(args, k, None) and k not in cfg.booking.descriptive_fields]
    if extra:
        raise UserError(f"--{extra[0]} is not collected here: booking.descriptive_fields = "
                        f"{cfg.booking.descriptive_fields}")
    if interactive:
        booking_number = booking_number or _ask("Booking number:")
        operator = operator or _ask("Operator id:")
        for key in cfg.booking.descriptive_fields:
            if key not in descriptive and key in _FIELD_HELP:
                answer = _ask(f"{_FIELD_QUESTION[key]} (empty to leave out):")
                if answer:
                    descriptive[key] = answer
        if not args.skip:
            skip = parse_skip(_ask("Fingers that cannot be printed, as FINGER:XX (amputated) or "
                                   "FINGER:UP (e.g. 5:XX,6:UP; empty for none):"))
    if not booking_number or not operator:
        raise UserError("--booking-number and --operator are required with --yes")

    arrest_date = None
    if args.arrest_date:
        import datetime as dt
        try:
            arrest_date = dt.date.fromisoformat(args.arrest_date)
        except ValueError:
            raise UserError(f"--arrest-date {args.arrest_date!r}: use YYYY-MM-DD") from None

    info = B.BookingInfo(booking_number, (args.ori or cfg.device.ori).upper(), operator,
                         descriptive, arrest_date)
    # the booking data, the keys and the store are checked BEFORE any print is taken
    from fpagent.sealing import keys as keys_mod
    from fpagent.storage import store as store_mod

    device_keys = keys_mod.load_device_keys(cfg)
    store = store_mod.open_store(cfg)
    try:
        session = B.new_session(cfg, info)
        for position, code in sorted(skip.items()):
            session.handle(B.MarkMissing(code, position))
        ui = TerminalUI(interactive)
        url = args.sensor or cfg.sensor.url
        print(f"Booking {booking_number}: preparing the print checks...", file=sys.stderr, flush=True)
        from fpagent.biometrics import extraction
        extraction.warm_up()
        screen = local_screening.local_screen(cfg)
        from fpagent import hal

        with hal.open_sensor(url) as sensor:
            runner.run_booking(session, sensor, ui=ui,
                               timeout=args.timeout or cfg.sensor.capture_timeout_s, screen=screen)
        summary = session.summary()
        if interactive:
            print(f"Fingers printed: {summary['printed']}; amputated: {summary['amputated'] or '-'}; "
                  f"unable to print: {summary['unable_to_print'] or '-'}; "
                  f"below the quality gate: {summary['below_gate'] or '-'}", file=sys.stderr)
            if not _ask_yes_no("Submit this booking?"):
                session.handle(B.Cancel("not submitted by the officer"))
                print("Booking cancelled; nothing was kept.", file=sys.stderr)
                return 1
        from fpagent.errors import StorageFull

        while True:
            print("Sealing and queueing...", file=sys.stderr, flush=True)
            try:
                sub = submit.submit(session, cfg, store, device_keys)
                break
            except StorageFull as exc:
                # the prints are still in memory: let the officer free space and retry
                if not interactive:
                    raise
                print(f"fpagent: {exc}", file=sys.stderr)
                if not _ask_yes_no("The prints are still held here. Try again?"):
                    session.handle(B.Cancel("storage full"))
                    raise
    finally:
        store.close()
    result = {
        "submission_id": sub.submission_id, "tcn": sub.tcn, "booking_number": booking_number,
        "printed": summary["printed"], "amputated": summary["amputated"],
        "unable_to_print": summary["unable_to_print"], "below_gate": summary["below_gate"],
        "suspected_duplicates": [d["position"] for d in summary["suspected_duplicates"]],
        "candidates": {str(p): len(c) for p, c in session.screening.items()},
        "transaction_bytes": sub.transaction_bytes, "envelope_bytes": sub.envelope_bytes,
    }
    print(f"Booking {booking_number} queued: submission {sub.submission_id}, TCN {sub.tcn}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0
