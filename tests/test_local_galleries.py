"""The local "recent" gallery: every queued booking's templates, encrypted at rest,
bounded, screened against by the next booking. Real parts throughout: synthetic
prints from the generator, real extraction and matcher, real keys, a real SQLite
store and real AES-GCM gallery files."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from fpagent import hal
from fpagent.booking import local_screening, runner, submit
from fpagent.booking import session as B
from fpagent import config as config_mod
from fpagent.records import fmr
from fpagent.sealing import keys
from fpagent.biometrics import matcher
from fpagent.screening.galleries import RECENT, GalleryStore
from fpagent.screening.prefilter import Gallery
from fpagent.storage.store import Store

SEED = 23
FINGERS = (2, 7)  # two fingers per booking keep the tests quick; the code does not care


@pytest.fixture(scope="module")
def warm():
    from fpagent.biometrics import extraction
    extraction.warm_up()
    matcher.warm_up()


def make_env(tmp_path, recent_size=2000):
    keys_dir = tmp_path / "keys"
    keys.create_device_keys(keys_dir)
    keys.create_central_keys(keys_dir)
    cfg = config_mod.from_dict({
        "device": {"ori": "CA0190000", "device_id": "booking-test"},
        "paths": {"state_dir": str(tmp_path / "state"), "keys_dir": str(keys_dir)},
        "booking": {"destination": "CA0000001", "recent_gallery_size": recent_size},
    })
    return dataclasses.make_dataclass("Env", ["cfg", "keys"])(cfg, keys.load_device_keys(cfg))


def book(env, person, impression=0, number="BK-1", fingers=FINGERS):
    """One booking of synthetic `person` (captures start at `impression`), queued.
    Returns (tcn, session screening)."""
    session = B.BookingSession(B.BookingInfo(number, "CA0190000", "officer-3"), fingers=fingers,
                               compare=matcher.compare, match_threshold=matcher.MATCH_THRESHOLD)
    screen = local_screening.local_screen(env.cfg)
    url = f"synthetic://?seed={SEED}&person={person}&impression={impression}"
    with hal.open_sensor(url) as sensor:
        runner.run_booking(session, sensor, timeout=5.0, screen=screen)
    assert session.phase is B.Phase.READY
    with Store(env.cfg.paths.database(), env.cfg) as store:
        sub = submit.submit(session, env.cfg, store, env.keys)
        assert store.outbox.get(sub.submission_id) is not None
    return sub.tcn, session.screening


def recent(env) -> Gallery:
    return Gallery.from_bytes(GalleryStore.from_config(env.cfg).load(RECENT))


def test_booking_lands_in_recent_and_the_next_booking_of_that_person_finds_it(tmp_path, warm):
    env = make_env(tmp_path)
    tcn1, screening1 = book(env, person=4, impression=0, number="BK-1")
    assert screening1 == {}  # nothing local yet
    g = recent(env)
    assert sorted(g.ids()) == [f"{tcn1}/{p}" for p in FINGERS]
    # encrypted at rest: neither the ISO records nor the gallery format are readable
    blob = (GalleryStore.from_config(env.cfg).directory / "recent.gallery").read_bytes()
    assert b"FPGALRY2" not in blob and b"FMR\x00" not in blob and tcn1.encode() not in blob
    for gid in g.ids():
        assert fmr.encode_iso(fmr.decode(g._records[g._index[gid]])[0])[:40] not in blob

    # the same person again, later impressions: the earlier booking is a local candidate
    tcn2, screening2 = book(env, person=4, impression=3, number="BK-2")
    assert tcn2 != tcn1
    for p in FINGERS:
        ids = [c[0] for c in screening2.get(p, [])]
        assert f"recent:{tcn1}/{p}" in ids, (p, screening2)
    # someone else: no candidate from person 4
    tcn3, screening3 = book(env, person=9, impression=0, number="BK-3", fingers=(2,))
    assert not any(c[0].startswith(f"recent:{tcn1}") or c[0].startswith(f"recent:{tcn2}")
                   for found in screening3.values() for c in found), screening3
    assert {i.rsplit("/", 1)[0] for i in recent(env).ids()} == {tcn1, tcn2, tcn3}


def test_recent_gallery_keeps_only_the_newest_bookings(tmp_path, warm):
    env = make_env(tmp_path, recent_size=2)
    tcns = [book(env, person=5 + n, number=f"BK-{n}", fingers=(1,))[0] for n in range(3)]
    held = sorted(recent(env).ids())
    assert held == [f"{t}/1" for t in tcns[1:]]  # the oldest booking was dropped
    # and one more: still two, the newest two
    tcns.append(book(env, person=8, number="BK-3", fingers=(1,))[0])
    assert sorted(recent(env).ids()) == [f"{t}/1" for t in tcns[2:]]


def test_size_zero_keeps_no_recent_gallery(tmp_path, warm):
    env = make_env(tmp_path, recent_size=0)
    book(env, person=4, fingers=(1,))
    assert RECENT not in GalleryStore.from_config(env.cfg).names()


def test_gallery_failure_never_fails_or_loses_the_booking(tmp_path, warm, caplog):
    env = make_env(tmp_path)
    # the gallery folder cannot be created: a plain file sits where it should be
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "galleries").write_bytes(b"not a folder")
    with caplog.at_level(logging.WARNING, logger="fpagent.booking.submit"):
        tcn, _ = book(env, person=4, fingers=(1,))
    assert any("recent" in r.getMessage() and tcn in r.getMessage() for r in caplog.records)
    with Store(env.cfg.paths.database(), env.cfg) as store:
        rows = store.outbox.list()
        assert [r.tcn for r in rows] == [tcn] and rows[0].state == "pending"
        assert len(store.audit.list(action="booking.completed")) == 1


@pytest.mark.parametrize("bad", [
    {},  # no entries
    {"entries": "x"},
    {"entries": [{"subject_id": "S1", "finger_position": 11, "template_iso_b64": "AAAA"}]},
    {"entries": [{"subject_id": "a/b", "finger_position": 2, "template_iso_b64": "AAAA"}]},
    {"entries": [{"subject_id": "S1", "finger_position": 2}]},
    {"entries": [{"subject_id": "S1", "finger_position": 2, "template_iso_b64": "A" * 9000}]},
])
def test_watchlist_command_of_the_wrong_shape_is_malformed(bad):
    from fpagent.link import messages
    with pytest.raises(messages.MessageError) as err:
        messages.validate_body("command", {"action": "watchlist.replace", "args": bad})
    assert err.value.reason == "malformed"


def test_build_watchlist_is_all_or_nothing(warm):
    import base64

    from fpagent.link import messages
    from fpagent.screening.watchlist import WatchlistError, build_watchlist
    from fpagent.drivers.synthetic.generator import finger_image
    from fpagent.biometrics.extraction import extract

    t = extract(finger_image(3, 2, 0, seed=SEED)).template
    good = messages.watchlist_entry("S3", 2, t)
    assert build_watchlist([good]).ids() == ["S3/2"]
    with pytest.raises(WatchlistError, match="same subject and finger"):
        build_watchlist([good, good])
    ansi = {**good, "template_iso_b64": base64.b64encode(fmr.encode_ansi(t)).decode()}
    with pytest.raises(WatchlistError, match="entry 1"):
        build_watchlist([good, ansi])  # an ANSI 378 record is not what the contract says
