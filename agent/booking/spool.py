"""The JMS spool folder: booking records dropped by the jail's system, taken one by one.

Layout under `[jms] spool_dir` (the JMS owns the top level, fpagent the sub-folders):

    NAME.json.tmp  -> NAME.json        the JMS writes, then renames (atomic)
    NAME.result.json                   fpagent's answer: accepted, rejected, queued (with the TCN)
    ready/NAME.json                    validated, waiting for `fpagent book --next`
    rejected/NAME.json + NAME.reason.txt   refused, one line per field
    done/NAME.json                     booked and queued

`accept_new` validates every new NAME.json (fpagent.booking.intake, the same
checks as `fpagent book --from`) and files it in ready/ or rejected/.
`take_next` hands the oldest ready record to `fpagent book --next`, and
`finish` files it in done/ once the booking is queued. Nothing is lost on a
crash: a record is only moved after its result file (and reason) is on disk,
fsynced, and every step can simply run again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Optional

from fpagent.booking import intake
from fpagent.booking.session import BookingError
from fpagent.errors import UserError
from fpagent.records.booking_record import BookingRecordError

READY, REJECTED, DONE = "ready", "rejected", "done"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_PER_SCAN = 100  # bounded work per service round


@dataclasses.dataclass(frozen=True)
class Filed:
    """What happened to one record: its name, status and result document."""

    name: str
    status: str  # "accepted" or "rejected"
    result: dict


def _fsync_dir(folder: pathlib.Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: pathlib.Path, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync the folder: the old file or the new one."""
    tmp = path.with_name(f".{path.name}.fpagent-tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _move(src: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(mode=0o750, exist_ok=True)
    target = folder / src.name
    os.replace(src, target)
    _fsync_dir(folder)
    _fsync_dir(src.parent)
    return target


def _result(spool: pathlib.Path, name: str, doc: dict) -> None:
    write_durably(spool / f"{name}.result.json", (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def _read_bounded(path: pathlib.Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(intake.MAX_RECORD_BYTES + 1)


def record_name(path: pathlib.Path) -> Optional[str]:
    """NAME of a `NAME.json` the JMS handed over, or None for anything else."""
    if not path.name.endswith(".json") or path.name.endswith(".result.json"):
        return None
    name = path.name[:-5]
    return name if _NAME.fullmatch(name) else None


def file_one(spool: pathlib.Path, path: pathlib.Path, cfg, profile) -> Filed:
    """Validate one NAME.json and file it in ready/ or rejected/, result first."""
    name = record_name(path)
    try:
        booking = intake.booking_from_config(_read_bounded(path), cfg, profile=profile)
    except (BookingRecordError, BookingError) as exc:
        findings = intake.findings_of(exc)
        doc = intake.result_document(name, "rejected", findings=findings)
        (spool / REJECTED).mkdir(mode=0o750, exist_ok=True)
        write_durably(spool / REJECTED / f"{name}.reason.txt", ("\n".join(findings) + "\n").encode())
        _result(spool, name, doc)
        _move(path, spool / REJECTED)
        return Filed(name, "rejected", doc)
    doc = intake.result_document(name, "accepted", booking_number=booking.info.booking_number)
    _result(spool, name, doc)
    _move(path, spool / READY)
    return Filed(name, "accepted", doc)


def accept_new(spool_dir, cfg, profile=None) -> list[Filed]:
    """File every new record of the spool, oldest first (at most MAX_PER_SCAN per call)."""
    spool = pathlib.Path(spool_dir)
    if profile is None:
        from fpagent.records.profile import load_profile
        profile = load_profile(cfg.transaction.profile)
    waiting = [p for p in spool.iterdir() if p.is_file() and record_name(p)]
    waiting.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [file_one(spool, p, cfg, profile) for p in waiting[:MAX_PER_SCAN]]


def take_next(spool_dir, cfg, *, operator: str = "", profile=None) -> tuple[str, intake.JmsBooking]:
    """The oldest validated record (checked again: the profile may have changed)."""
    spool = pathlib.Path(spool_dir)
    accept_new(spool, cfg, profile)
    folder = spool / READY
    ready = sorted((p for p in folder.glob("*.json") if record_name(p)),
                   key=lambda p: (p.stat().st_mtime_ns, p.name)) if folder.is_dir() else []
    if not ready:
        raise UserError(f"no booking record waiting in {spool / READY}")
    path = ready[0]
    return record_name(path), intake.booking_from_config(_read_bounded(path), cfg, operator=operator,
                                                         profile=profile)


def finish(spool_dir, name: str, *, booking_number: str, tcn: str, submission_id: str) -> None:
    """The booking of ready/NAME.json is queued: result with the TCN first, then done/."""
    spool = pathlib.Path(spool_dir)
    _result(spool, name, intake.result_document(name, "queued", booking_number=booking_number,
                                                tcn=tcn, submission_id=submission_id))
    source = spool / READY / f"{name}.json"
    if source.exists():
        _move(source, spool / DONE)
