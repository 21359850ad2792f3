"""Completing a booking: build the transaction, seal it, queue it, remember it.

`complete_booking` turns a READY session into one outbox row: build the
ANSI/NIST transaction, seal it to central, and enqueue it together with its
audit entry in ONE store transaction. Until that commit nothing of the
booking is on disk, so a cancel or a crash leaves no half booking. Then the
booking's templates join the local "recent" gallery (a screening cache that
never fails the booking).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import time
from typing import Optional

from fpagent.booking.session import BookingError, BookingSession, Phase
from fpagent.records import transaction as tx
from fpagent.records.tcn import make_tcn

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Submission:
    """What `submit` reports about one queued booking: ids, sizes and timings, no personal data."""

    submission_id: str
    tcn: str
    sequence: int
    transaction_bytes: int
    envelope_bytes: int
    build_s: float
    seal_s: float


def complete_booking(session: BookingSession, cfg, store, keys, *,
                     now: Optional[_dt.datetime] = None) -> str:
    """Build, seal and enqueue a READY booking; return its submission id.

    The outbox row and its audit entry are written in one store transaction,
    after all the CPU work: a crash before that commit leaves nothing, after
    it the booking is there exactly once. `keys` is an fpagent.sealing.keys.DeviceKeys.
    """
    return submit(session, cfg, store, keys, now=now).submission_id


def submit(session: BookingSession, cfg, store, keys, *,
           now: Optional[_dt.datetime] = None, tcr: str = "") -> Submission:
    """complete_booking with the figures (TCN, sizes, timings) for the CLI and benches.

    `tcr`: the original booking's TCN when this is a reprint central asked for."""
    from fpagent.sealing import envelope

    if session.phase is not Phase.READY:
        raise BookingError(f"booking is {session.phase.value}, not ready to submit")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    sequence = store.next_sequence()
    tcn = make_tcn(session.info.ori, now, sequence, device=cfg.device.device_id)
    t0 = time.perf_counter()
    record = session.to_record(tcn=tcn, destination=cfg.booking.destination,
                               type_of_transaction=cfg.booking.type_of_transaction,
                               created_at=now, tcr=tcr)
    data = tx.build_transaction(record, compression=cfg.booking.compression,
                                wsq_bitrate=cfg.booking.wsq_bitrate,
                                descriptive_fields=cfg.booking.descriptive_fields)
    t1 = time.perf_counter()
    submission_id = envelope.make_submission_id()
    sealed = envelope.seal(
        data, device_id=cfg.device.device_id, ori=session.info.ori, sequence=sequence,
        central_public_key=keys.central_public, device_signing_key=keys.signing_key,
        suite=cfg.envelope.suite, submission_id=submission_id,
    )
    t2 = time.perf_counter()
    summary = session.summary()
    meta = {
        "booking_number": session.info.booking_number,
        "seq": sequence,
        "suite": cfg.envelope.suite,
        "operator": session.info.operator_id,
        "fingers": summary["printed"],
        "missing": summary["amputated"] + summary["unable_to_print"],
        "below_gate": summary["below_gate"],
        "suspected_duplicates": [d["position"] for d in summary["suspected_duplicates"]],
        "bytes": len(data),
    }
    if tcr:
        meta["reprint_of"] = tcr
    with store.transaction():
        store.outbox.enqueue(submission_id, tcn, sealed, meta)
        store.audit.append(session.info.operator_id, "booking.completed", {
            "submission_id": submission_id, "tcn": tcn,
            "booking_number": session.info.booking_number,
            "printed": summary["printed"],
            "amputated": summary["amputated"], "unable_to_print": summary["unable_to_print"],
            "below_gate": summary["below_gate"],
            "sequence_overrides": summary["sequence_overrides"],
            # prints kept although they looked like another finger: for review
            "suspected_duplicates": summary["suspected_duplicates"],
            **({"reprint_of": tcr} if tcr else {}),
        })
    session.phase = Phase.COMPLETED
    _remember_recent(session, cfg, tcn)
    # the images and templates are now only inside the sealed envelope (and, as
    # templates, in the encrypted "recent" gallery)
    session.results.clear()
    session.slaps.clear()
    return Submission(submission_id, tcn, sequence, len(data), len(sealed), t1 - t0, t2 - t1)


def _remember_recent(session: BookingSession, cfg, tcn: str) -> None:
    """Add the booking just queued to the local "recent" gallery (booking.recent_gallery_size
    bookings, 0 = off). Never fails the booking: the outbox row is already committed."""
    limit = cfg.booking.recent_gallery_size
    templates = {c.position: c.template for c in session.captures()
                 if not c.missing and c.template is not None}
    if limit <= 0 or not templates:
        return
    try:
        from fpagent.screening import galleries as gallery_store
        gallery_store.add_recent_booking(gallery_store.GalleryStore.from_config(cfg), tcn,
                                         templates, limit)
    except Exception as exc:  # noqa: BLE001 - a cache for screening, never worth a booking
        log.warning("booking %s queued, but the local 'recent' gallery was not updated: %s",
                    tcn, exc)
