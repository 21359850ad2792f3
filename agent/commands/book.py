"""`fpagent book`: take a ten-print booking and queue it for the central system.

Guided (default): asks for what is missing, says which finger is next, shows
progress while the sensor works and the advice when a print is poor, and
asks before submitting. Non-interactive (`--yes`): everything comes from the
command line, nothing is asked; a print the duplicate-finger check keeps
refusing is kept and flagged for review, never confirmed; for scripts and tests. Either way the booking reaches the outbox only once it is
complete (one transaction); Ctrl-C cancels and keeps nothing.

    fpagent book --booking-number 2026-0042 --operator jdoe --name "DOE,JOHN" \\
        --dob 1980-01-02 --sex M --pob GA --race W --height 511 --weight 180 \\
        --eyes BRO --hair BLK --retain Y --charge "THEFT BY TAKING" \\
        --yes --sensor 'synthetic://?seed=1&person=7' --skip 5:XX --json
    fpagent book --from record.json --yes     # a booking record from the jail's system
    fpagent book --next --yes                 # the oldest record from the [jms] spool folder
    fpagent book --reprint TCN ...            # only the fingers central rejected; TCR = TCN
    fpagent book --tenprint --sensor 'tenprint://?seed=1' ...   # rolled fingers and slaps

The booking data is checked against the selected booking profile before the
first finger: guided, the officer is asked again for each field that fails;
with --yes the booking is refused with one line per field.
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
    "sex": "M, F, or X when unknown (2.024 SEX)",
    "pob": "place of birth code (2.020 POB)",
    "race": "race code (2.025 RAC)",
    "height": "height as feet and two-digit inches, e.g. 511 (2.027 HGT)",
    "weight": "weight in pounds, e.g. 180 (2.029 WGT)",
    "eyes": "eye colour code (2.031 EYE)",
    "hair": "hair colour code (2.032 HAI)",
}

_FIELD_QUESTION = {
    "name": "Name, as LAST,FIRST MIDDLE",
    "dob": "Date of birth (YYYY-MM-DD)",
    "sex": "Sex (M, F, or X when unknown)",
    "pob": "Place of birth (state or country code)",
    "race": "Race code (A, B, I, U, W)",
    "height": "Height as feet and inches (e.g. 511)",
    "weight": "Weight in pounds",
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
    p.add_argument("--retain", metavar="Y|N", help="retain the prints in the bureau's file (2.005 RET)")
    p.add_argument("--charge", metavar="TEXT", action="append", default=[],
                   help="an arrest offense as the bureau should read it (2.047 ASL); repeat for each charge")
    p.add_argument("--controlling-agency", metavar="ORI",
                   help="controlling agency ORI (2.073 CRI; default: the booking agency's ORI)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--from", dest="from_file", metavar="FILE",
                        help="take the booking data from a JMS booking record (JSON, docs/booking-record.schema.json)")
    source.add_argument("--next", action="store_true",
                        help="take the oldest booking record waiting in the [jms] spool folder")
    p.add_argument("--reprint", metavar="TCN",
                   help="central rejected this booking's prints: take only the fingers it "
                        "named and submit them as a reprint of TCN")
    p.add_argument("--tenprint", action="store_true",
                   help="a bureau-grade ten-print on a ten-print scanner: ten rolled fingers, both "
                        "four-finger slaps and the two thumbs, with the sequence check (default: "
                        "ten flat fingers, the flats-only booking a single-finger module can do)")
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


_ARREST_QUESTION = {
    "RET": "Retain the prints in the bureau's file? (Y or N)",
    "ASL": "Arrest offense(s), as the bureau should read them (several: separate with ';')",
    "CRI": "Controlling agency ORI",
    "DOA": "Date of arrest (YYYY-MM-DD)",
}
_MAX_ROUNDS = 3  # guided: how often a field that fails the profile is asked again


def _date(text: str, option: str):
    import datetime as dt
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: use YYYY-MM-DD") from None


def _typed_info(args, cfg, interactive: bool, profile):
    """BookingInfo from the command line and, guided, the officer's answers;
    every field the profile refuses is asked again (guided) or refused (--yes)."""
    from fpagent.booking import session as B
    from fpagent.records.transaction_format import DESCRIPTIVE_FIELDS

    allowed = cfg.booking.descriptive_fields
    extra = [k for k in _FIELD_HELP if getattr(args, k, None) and k not in allowed]
    if extra:
        raise UserError(f"--{extra[0]} is not collected here: booking.descriptive_fields = {allowed}")
    data = {
        "booking_number": args.booking_number, "operator": args.operator,
        "descriptive": {k: getattr(args, k) for k in allowed if getattr(args, k, None)},
        "RET": args.retain or "", "ASL": list(args.charge), "CRI": args.controlling_agency or "",
        "DOA": _date(args.arrest_date, "--arrest-date") if args.arrest_date else None,
    }
    if interactive:
        data["booking_number"] = data["booking_number"] or _ask("Booking number:")
        data["operator"] = data["operator"] or _ask("Operator id:")
        for key in allowed:
            if key not in data["descriptive"] and key in _FIELD_HELP:
                answer = _ask(f"{_FIELD_QUESTION[key]} (empty to leave out):")
                if answer:
                    data["descriptive"][key] = answer
        if not data["RET"]:
            data["RET"] = _ask(_ARREST_QUESTION["RET"] + ":")
        if not data["ASL"]:
            data["ASL"] = [c for c in _ask(_ARREST_QUESTION["ASL"] + ":").split(";") if c.strip()]
    if not data["booking_number"] or not data["operator"]:
        raise UserError("--booking-number and --operator are required with --yes")
    by_mnemonic = {mnemonic: key for key, (_tag, mnemonic) in DESCRIPTIVE_FIELDS.items()}

    def info():
        return B.BookingInfo(data["booking_number"], (args.ori or cfg.device.ori).upper(), data["operator"],
                             dict(data["descriptive"]), data["DOA"], retention=data["RET"].upper(),
                             charges=tuple(("", c.strip()) for c in data["ASL"]),
                             controlling_agency=data["CRI"])
    for _round in range(_MAX_ROUNDS):
        try:
            info().check(allowed, profile)
            return info()
        except B.BookingRefused as exc:
            if not interactive:
                raise
            print(str(exc), file=sys.stderr)
            asked = set()
            for finding in exc.findings:
                mnemonic = finding.mnemonic.split(" ")[0]
                if mnemonic in asked:
                    continue
                asked.add(mnemonic)
                if mnemonic in by_mnemonic and by_mnemonic[mnemonic] in allowed:
                    key = by_mnemonic[mnemonic]
                    data["descriptive"][key] = _ask(f"{finding.number} {_FIELD_QUESTION[key]}:")
                elif mnemonic == "ASL":
                    data["ASL"] = [c for c in _ask(_ARREST_QUESTION["ASL"] + ":").split(";") if c.strip()]
                elif mnemonic == "DOA":
                    data["DOA"] = _date(_ask(_ARREST_QUESTION["DOA"] + ":"), "date of arrest")
                elif mnemonic in _ARREST_QUESTION:
                    data[mnemonic] = _ask(f"{_ARREST_QUESTION[mnemonic]}:")
                else:
                    raise  # a field this terminal cannot ask for (e.g. of an overlay): refused
    info().check(allowed, profile)
    return info()


def _jms_info(args, cfg, profile):
    """(spool record name or None, JmsBooking) for --from FILE or --next."""
    from fpagent.booking import intake, spool

    typed = [k for k in ("booking_number", "arrest_date", "retain", "controlling_agency", "ori", *_FIELD_HELP)
             if getattr(args, k, None)] + (["charge"] if args.charge else [])
    if typed:
        raise UserError(f"--{typed[0].replace('_', '-')}: with --from or --next the booking data "
                        f"comes from the jail's record only")
    if args.from_file:
        try:
            with open(args.from_file, "rb") as fh:
                data = fh.read(intake.MAX_RECORD_BYTES + 1)
        except OSError as exc:
            raise UserError(f"cannot read {args.from_file}: {exc.strerror or exc}") from None
        return None, intake.booking_from_config(data, cfg, operator=args.operator or "", profile=profile)
    if not cfg.jms.spool_dir:
        raise UserError("--next needs [jms] spool_dir in the configuration")
    return spool.take_next(cfg.jms.spool_dir, cfg, operator=args.operator or "", profile=profile)


def _already_queued(store, booking_number: str):
    """The TCN and submission of a booking already queued with this number, if any."""
    for entry in store.audit.list(action="booking.completed", limit=100000):
        if entry.detail.get("booking_number") == booking_number:
            return entry.detail.get("tcn", ""), entry.detail.get("submission_id", "")
    return None


def run(args) -> int:
    from fpagent.booking import local_screening, runner, submit
    from fpagent.booking import session as B
    from fpagent import config as config_mod
    from fpagent.records.profile import load_profile

    cfg = config_mod.load(args.config)
    if args.tenprint and args.reprint:
        raise UserError("--tenprint and --reprint: a reprint takes only the fingers central named, "
                        "flat; book the whole ten-print again instead")
    profile = load_profile(cfg.transaction.profile)
    interactive = not args.yes
    skip = parse_skip(args.skip)
    spooled = None
    if args.from_file or args.next:
        spooled, jms = _jms_info(args, cfg, profile)
        info = jms.info
        print(jms.announcement(), file=sys.stderr, flush=True)  # the officer checks who this is
        if interactive and not args.skip:
            skip = parse_skip(_ask("Fingers that cannot be printed, as FINGER:XX (amputated) or "
                                   "FINGER:UP (e.g. 5:XX,6:UP; empty for none):"))
    else:
        info = _typed_info(args, cfg, interactive, profile)
        if interactive and not args.skip:
            skip = parse_skip(_ask("Fingers that cannot be printed, as FINGER:XX (amputated) or "
                                   "FINGER:UP (e.g. 5:XX,6:UP; empty for none):"))
    booking_number = info.booking_number

    # the booking data, the keys and the store are checked BEFORE any print is taken
    from fpagent.sealing import keys as keys_mod
    from fpagent.storage import store as store_mod

    device_keys = keys_mod.load_device_keys(cfg)
    store = store_mod.open_store(cfg)
    try:
        if spooled is not None:
            queued = _already_queued(store, booking_number)
            if queued:  # queued before a crash, result not yet written: finish, never book twice
                from fpagent.booking import spool
                spool.finish(cfg.jms.spool_dir, spooled, booking_number=booking_number,
                             tcn=queued[0], submission_id=queued[1])
                raise UserError(f"booking {booking_number} is already queued (TCN {queued[0]}); "
                                f"its record is filed as done")
        fingers, tcr = B.FINGERS, ""
        if args.reprint:
            from fpagent.booking import reprint
            request = reprint.request_for(store.inbox.list(kind="notification", limit=100000),
                                          args.reprint)
            fingers, tcr = reprint.fingers_to_take(request), args.reprint
            print(f"Reprint of TCN {tcr}: fingers {', '.join(map(str, fingers))}",
                  file=sys.stderr, flush=True)
        session = B.new_session(cfg, info, fingers=fingers)
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
            if args.tenprint:
                from fpagent.booking import tenprint
                tenprint.run_tenprint(session, sensor, ui=ui, screen=screen,
                                      timeout=args.timeout or cfg.sensor.capture_timeout_s)
            else:
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
                sub = submit.submit(session, cfg, store, device_keys, tcr=tcr)
                break
            except StorageFull as exc:
                # the prints are still in memory: let the officer free space and retry
                if not interactive:
                    raise
                print(f"fpagent: {exc}", file=sys.stderr)
                if not _ask_yes_no("The prints are still held here. Try again?"):
                    session.handle(B.Cancel("storage full"))
                    raise
        if spooled is not None:
            from fpagent.booking import spool
            spool.finish(cfg.jms.spool_dir, spooled, booking_number=booking_number,
                         tcn=sub.tcn, submission_id=sub.submission_id)
    finally:
        store.close()
    result = {
        "submission_id": sub.submission_id, "tcn": sub.tcn, "booking_number": booking_number,
        "printed": summary["printed"], "amputated": summary["amputated"],
        "unable_to_print": summary["unable_to_print"], "below_gate": summary["below_gate"],
        "suspected_duplicates": [d["position"] for d in summary["suspected_duplicates"]],
        "candidates": {str(p): len(c) for p, c in session.screening.items()},
        "transaction_bytes": sub.transaction_bytes, "envelope_bytes": sub.envelope_bytes,
        "reprint_of": tcr or None, "slaps": summary["slaps"],
    }
    print(f"Booking {booking_number} queued: submission {sub.submission_id}, TCN {sub.tcn}")
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0
