"""`fpagent demo`: the whole loop on one machine, on embedded defaults.

Everything it needs it makes in a temporary folder and removes at the end:
a development CA and certificates, central's and the appliance's keys, a
local mosquitto on a free loopback port (TLS listener, client certificates,
the ACL of systemd/mosquitto), the reference central responder with galleries
of synthetic people some of whom are "already known", and the agent's MQTT
link. Then it books a handful of arrestees through the emulated ZFM sensor
(the real driver over a pty, synthetic fingerprints; a folder of real images
with --images), and prints what came back: acks, criminal-history hits and
no-hits, immigration determinations with their levels. Then, unless
--no-follow-ups, what comes after the first answers (fpagent.commands.demo_followups):
a booking whose prints central rejects for fingers 3 and 7 and their reprint,
a determination that changes to a detainer, the release notice that closes
it, and the program's figures as `fpagent central report` prints them.
Ctrl-C or an error stops everything it started.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import pathlib

from fpagent import config as config_mod
from fpagent.commands import demo_followups
from fpagent.errors import UserError

# files the emulated sensor serves from an --images folder (Pillow reads them; WSQ via its plugin)
IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg", ".pgm", ".wsq"}
WHO = {1: "known: criminal record", 2: "known: criminal record + immigration removable L1",
       3: "known: immigration record, U.S. citizen", 4: "not known anywhere",
       5: "known: immigration record under review", **demo_followups.WHO}


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


def _demo_ui():
    """A BookingUI that prints one mark per finger and confirms overrides (demo only)."""
    from fpagent.booking.runner import BookingUI

    class DemoUI(BookingUI):
        def outcome(self, outcome):
            if outcome.position:
                result = getattr(outcome.result, "value", str(outcome.result))
                sys.stdout.write({"accepted": "+", "accepted_below_gate": "~"}.get(result, "-"))
                sys.stdout.flush()

        def confirm(self, question):
            return True  # the emulated officer confirms (a real UI asks a person)

    return DemoUI()


def _results_lines(store, sids: dict) -> list[str]:
    from fpagent.booking import answers as view
    out = []
    by_sid: dict = {}
    for item in store.inbox.list(kind="notification", limit=10000):
        by_sid.setdefault(item["body"]["submission_id"], []).append(item)
    for sid, (label, person) in sids.items():
        row = store.outbox.get(sid)
        ack = row.ack or {}
        out.append("")
        who = (f"synthetic person {person}: {WHO.get(person, '')}" if person
               else "real images: see which finger group was known")
        out.append(f"booking {label}  TCN {row.tcn}  ({who})")
        if row.state == "acknowledged":
            out.append(f"  ack               accepted by central, central TCN {ack.get('central_tcn')}")
        elif row.state == "rejected":
            out.append(f"  ack               REJECTED: {row.reason}")
        else:
            out.append(f"  ack               none yet (state {row.state})")
        items = sorted(by_sid.get(sid, []), key=lambda m: m["body"]["check"])
        for item in items:
            body = item["body"]
            banner = view.banner(body)
            if banner:
                out += ["  " + line for line in banner]
            out.append(f"  {body['check']:<18}{view.headline(body)}")
            if body.get("record"):
                rec = body["record"]
                out.append("                    record: " + ", ".join(
                    f"{k}={rec[k]}" for k in sorted(rec) if k not in ("score",)))
            if body.get("instructions"):
                out.append(f"                    {body['instructions']}")
    return out


_DEMO_NAMES = ("DOE,JOHN", "ROE,JANE", "POE,RICHARD", "MOE,MARY")


def demo_booking_data(i: int) -> dict:
    """Made-up descriptive and arrest data a national-profile booking needs."""
    return {"descriptive": {"name": _DEMO_NAMES[i % len(_DEMO_NAMES)], "dob": "1980-01-02",
                            "sex": "FM"[i % 2 == 0], "pob": "GA", "race": "W", "height": "510",
                            "weight": "170", "eyes": "BRO", "hair": "BLK"},
            "retention": "Y", "charges": (("", "THEFT BY TAKING"),)}


# timeout_s bounds each wait for central: seconds on x86-64, minutes on a slow board or under qemu
def run_demo(bookings: int = 4, images: str | None = None, keep: bool = False,
             timeout_s: float = 600.0, follow_ups: bool = True) -> int:
    from fpagent import hal
    from fpagent.booking import runner, submit
    from fpagent.booking import session as booking_mod
    from fpagent.sealing import keys as keys_mod
    from fpagent.central.people import KNOWN, SEED, demo_galleries
    from fpagent.central.responder import Central
    from fpagent.central.screening import Galleries, TransactionScreen
    from fpagent.central.store import CentralKeys
    from fpagent.devtools.broker import LocalBroker, find_mosquitto
    from fpagent.central.registry import register_device_key
    from fpagent.devtools.ca import central_cn, device_cn, make_dev_pki
    from fpagent.link.connection import build_link
    from fpagent.storage.store import Store

    follow_ups = follow_ups and not images  # the follow-ups' people are synthetic
    people = demo_followups.main_people(bookings)
    if find_mosquitto() is None:
        raise UserError("the demo needs mosquitto: run scripts/dev-setup (or apt-get install mosquitto)")
    t_start = time.monotonic()
    work = pathlib.Path(tempfile.mkdtemp(prefix="fpagent-demo-"))
    started = []  # (name, stop callable), stopped in reverse order
    try:
        cfg = config_mod.from_dict({
            "device": {"allow_placeholder": True},  # a demo, not an agency: XX0000000 is fine
            "paths": {"state_dir": str(work / "appliance")},
            "store": {"min_free_mb": 10.0},
            "sensor": {"url": "emulated://?source=synthetic"},
            "mqtt": {"tls": True, "keepalive_s": 10, "ack_timeout_s": 10.0,
                     "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
        }, source="<demo defaults>")
        device = cfg.device.device_id
        say(f"working in {work} (removed at the end)")
        identity = device_cn(cfg.device.ori, device)
        pki = make_dev_pki(work / "pki", clients=(identity, central_cn(1)))
        say("made a development CA, a broker certificate and client certificates")
        central_keys_dir = work / "central" / "keys"
        keys_mod.create_central_keys(central_keys_dir)
        app_keys = cfg.paths.keys()
        keys_mod.create_device_keys(app_keys)
        for name in (keys_mod.CENTRAL_HPKE_PUBLIC, keys_mod.CENTRAL_VERIFY_KEY):
            shutil.copy(central_keys_dir / name, app_keys / name)
        devices_dir = work / "central" / "devices"
        register_device_key(devices_dir, cfg.device.ori, device,
                            keys_mod.load_verify_key(app_keys / keys_mod.DEVICE_VERIFY_KEY))
        say("made central's HPKE + signing keys and the appliance's signing key")

        broker = LocalBroker(work / "broker", pki).start()
        started.append(("broker", broker.stop))
        cfg.mqtt.port = broker.port
        cfg.mqtt.ca_file = str(pki / "ca.crt")
        cfg.mqtt.cert_file = str(pki / f"{identity}.crt")
        cfg.mqtt.key_file = str(pki / f"{identity}.key")
        say(f"started mosquitto on 127.0.0.1:{broker.port} (TLS, client certificates, ACL)")

        say("warming up the extractor and matcher (compiled once, then cached)")
        from fpagent.biometrics import extraction
        from fpagent.biometrics import matcher
        extraction.warm_up()
        matcher.warm_up()

        galleries = Galleries()
        gallery_ready = threading.Event()

        def enroll():
            try:
                known = {p: KNOWN[p] for p in KNOWN
                         if p in people or (follow_ups and p in demo_followups.FOLLOW_UP_PEOPLE)}
                if images:
                    built = _folder_galleries(images, known)
                else:
                    built = demo_galleries(SEED, known)
                galleries.criminal[:] = built.criminal
                galleries.immigration[:] = built.immigration
                galleries.rejects[:] = built.rejects
            finally:
                gallery_ready.set()

        if images:
            say(f"sensor: the emulated ZFM module serves the images of {images} in name order "
                f"(duplicate-finger check off); 'known' people are finger groups of that folder")
        say("central: enrolling the 'already known' people in its galleries (in the background)")
        threading.Thread(target=enroll, daemon=True, name="demo-enroll").start()

        screen = TransactionScreen(galleries)

        def gated_screen(opened):
            gallery_ready.wait()
            return screen(opened)

        central = Central(host="127.0.0.1", port=broker.port, root=cfg.mqtt.root,
                          keys=CentralKeys.load(central_keys_dir, devices_dir),
                          db_path=work / "central" / "central.sqlite3", screen=gated_screen,
                          tls={"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / f"{central_cn(1)}.crt"),
                               "key_file": str(pki / f"{central_cn(1)}.key")},
                          client_id="central-demo", immigration_delay_s=2.0)
        central.start()
        started.append(("central", central.stop))
        if not central.wait_connected(15):
            raise UserError("the reference central responder could not connect to the local broker")
        say("central: reference responder subscribed ($share/central/fpagent/v1/+/+/submission)")

        store = Store(cfg.paths.database(), cfg)  # one per process, shared with the link
        started.append(("store", store.close))
        came_back = []
        link = build_link(cfg, store=store, on_notification=lambda body: came_back.append(body))
        link.start()
        started.append(("link", link.stop))
        if not link.wait_connected(15):
            raise UserError(f"the agent's link could not connect: {link.health()['last_error']}")
        say(f"agent: link up as {cfg.device.ori}/{device} (TLS, persistent session)")

        device_keys = keys_mod.load_device_keys(cfg)
        sids = {}
        shared_sensor = None

        def book(person: int, label: str, fingers=None, tcr: str = "") -> str:
            """One booking through the emulated sensor, sealed and queued; its submission id."""
            nonlocal shared_sensor
            if images:
                if shared_sensor is None:
                    shared_sensor = hal.open_sensor(f"emulated://?source={images}")
                    started.append(("sensor", shared_sensor.close))
                sensor = shared_sensor
            else:
                sensor = hal.open_sensor(
                    f"emulated://?source=synthetic&seed={SEED}&person={person}&baud=115200")
            info = booking_mod.BookingInfo(booking_number=label, ori=cfg.device.ori,
                                           operator_id="demo-officer",
                                           **demo_booking_data(person - 1))
            # with --images the emulator cycles the folder (FVC sets hold 8 impressions of
            # each finger in a row): the duplicate-finger check would refuse most of them
            session = booking_mod.new_session(cfg, info, sequence_check=not images,
                                              **({"fingers": fingers} if fingers else {}))
            sys.stdout.write(f"demo: booking {label} ("
                             + (f"images of {images}" if images else f"synthetic person {person}")
                             + (f", reprint of TCN {tcr}" if tcr else "") + ") fingers ")
            sys.stdout.flush()
            t0 = time.monotonic()
            try:
                runner.run_booking(session, sensor, ui=_demo_ui(), timeout=10)
            finally:
                if sensor is not shared_sensor:
                    sensor.close()
            sid = submit.submit(session, cfg, store, device_keys, tcr=tcr).submission_id
            link.poke()
            print(f" sealed and queued in {time.monotonic() - t0:.1f} s", flush=True)
            return sid

        for i, person in enumerate(people):
            label = f"DEMO-{i + 1:04d}"
            sids[book(person, label)] = (label, 0 if images else person)
        later = None
        if follow_ups:
            later = demo_followups.FollowUps(cfg=cfg, store=store, link=link, central=central,
                                             device_keys=device_keys, book=book,
                                             timeout_s=timeout_s)
            later.book_people()

        say("waiting for central's answers (ack, criminal history, then immigration)")
        deadline = time.monotonic() + timeout_s
        want = 2 * len(sids)
        while time.monotonic() < deadline:
            done = store.outbox.counts()
            have = sum(1 for b in came_back if b.get("submission_id") in sids)
            if done["acknowledged"] + done["rejected"] >= len(sids) and have >= want:
                break
            time.sleep(0.1)
        else:
            say("timed out waiting for some answers; showing what came back")

        print("\n" + "=" * 72)
        print("What came back from central (reference responder, synthetic people)")
        print("=" * 72)
        for line in _results_lines(store, sids):
            print(line)
        if later is not None:
            print("\n" + "=" * 72)
            print("After the first answers: a reprint, a determination that changes, a release")
            print("=" * 72)
            later.run()
            demo_followups.print_report(central)
        h = link.health()
        print()
        more = (f" (+ {len(later.sids)} follow-up bookings and 1 reprint)" if later else "")
        say(f"{len(sids)} bookings{more}, {h['counters'].get('acks_accepted', 0)} accepted acks, "
            f"{h['counters'].get('notifications', 0)} notifications, "
            f"{h['counters'].get('rejected', 0)} messages refused; "
            f"whole loop in {time.monotonic() - t_start:.0f} s")
        say("an immigration-record match is not a finding of removability: act only on the "
            "determination")
        return 0
    finally:
        for name, stop in reversed(started):
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"demo: stopping {name} failed: {exc}", file=sys.stderr)
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        say("stopped everything it started")


def _folder_galleries(folder: str, known: dict):
    """With --images: known person k is the k-th finger group of the folder (files named
    like FVC's `<finger>_<impression>.png`), enrolled from that group's LAST impression;
    a booking whose index fingers the emulator serves from that group gets a real hit
    across impressions (which booking that is depends on the quality re-captures)."""
    import collections
    import urllib.parse

    from fpagent import hal
    from fpagent.central.screening import SCREEN_FINGERS, Galleries, GalleryEntry, extract_template

    files = sorted(p for p in pathlib.Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"no images in {folder}")
    groups = collections.OrderedDict()
    for path in files:
        groups.setdefault(path.stem.split("_")[0], []).append(path)
    galleries = Galleries()
    for (person, what), (group, paths) in zip(sorted(known.items()), groups.items()):
        # the enrolled print is what the emulated module makes of that file, as in a booking
        source = urllib.parse.quote(str(paths[-1]), safe="/")
        with hal.open_sensor(f"emulated://?source={source}") as sensor:
            template = extract_template(sensor.capture(timeout=10).pixels)
        templates = {f: template for f in SCREEN_FINGERS}
        for gallery in ("criminal", "immigration"):
            if gallery in what:
                getattr(galleries, gallery).append(
                    GalleryEntry(f"finger-group-{group}", what[gallery], templates))
    return galleries


def _run(args) -> int:
    if args.bookings < 1 or args.bookings > 50:
        raise UserError("--bookings must be between 1 and 50")
    if args.images and not pathlib.Path(args.images).is_dir():
        raise UserError(f"--images {args.images}: not a folder of fingerprint images")
    return run_demo(bookings=args.bookings, images=args.images, keep=args.keep,
                    follow_ups=args.follow_ups)


def register(sub) -> None:
    parser = sub.add_parser("demo", help="run the whole booking loop on this machine "
                            "(local broker, reference central, emulated sensor)",
                            description=__doc__)
    parser.add_argument("--bookings", type=int, default=4, metavar="N",
                        help="how many arrestees to book (default 4: a criminal hit, a "
                             "level-1 immigration hit, a U.S. citizen, an unknown person; "
                             "the follow-ups book two more people and one reprint)")
    parser.add_argument("--images", metavar="DIR",
                        help="a folder of real fingerprint images for the emulated sensor")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--no-follow-ups", dest="follow_ups", action="store_false",
                        help="skip what comes after the first answers (a reprint, a "
                             "determination that changes to a detainer, a release notice, "
                             "the program's figures): two bookings and a reprint fewer")
    parser.set_defaults(func=_run)
