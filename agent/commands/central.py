"""`fpagent central ...`: the reference central responder (a reference, NOT the real system).

    fpagent central keys DIR            create central's HPKE + signing keys (once)
    fpagent central run --port 8883 --certs PKI --keys DIR --devices DIR --db FILE \\
        [--gallery synthetic | --gallery DIR] [--group central]
    fpagent central counts --db FILE    submissions and notifications stored
    fpagent central report [--since DATE] [--json]  the program's figures for a period
    fpagent central audit-heads --db FILE [--json]   each appliance's audit head and
        tamper alarms (a chain that went backwards or forked); exit 1 when any
    fpagent central push-watchlist --certs PKI --keys DIR --ori ORI --device ID \\
        (--synthetic P,P | --subjects DIR)   replace one appliance's local watch list
    fpagent central command KIND ...    a signed fleet command (purge, config-change,
        key-rotation, watchlist-update, watchlist-replace) and its result
    fpagent central commands --db FILE  fleet commands sent, with the appliances' results

Run several `central run` with the same --group and --db: the MQTT 5 shared
subscription splits the submissions between them.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import signal
import threading

from fpagent.commands import central_fleet
from fpagent.commands.central_answers import add_answer_action
from fpagent.errors import UserError


def _keys(args) -> int:
    from fpagent.central.store import make_central_keys
    path = make_central_keys(args.dir)
    print(f"central keys in {path}: give central-hpke.pub and central-sign.pub to each appliance; "
          f"keep the .key files on the central system")
    return 0


def _galleries(spec: str, seed: int):
    from fpagent.central.people import KNOWN, SEED, demo_galleries
    from fpagent.central.screening import Galleries, folder_entries
    if spec == "none":
        return Galleries()
    if spec == "synthetic":
        return demo_galleries(seed or SEED, KNOWN,
                              progress=lambda text: print(f"central: {text}", flush=True))
    root = pathlib.Path(spec)
    if not root.is_dir():
        raise UserError(f"--gallery {spec}: give 'synthetic', 'none' or a folder with "
                        f"criminal/<subject>/<finger>.png and immigration/<subject>/... ")
    return Galleries(criminal=folder_entries(root / "criminal") if (root / "criminal").is_dir() else [],
                     immigration=folder_entries(root / "immigration")
                     if (root / "immigration").is_dir() else [])


def _run(args) -> int:
    from fpagent.central.responder import Central
    from fpagent.central.screening import TransactionScreen
    from fpagent.central.store import CentralKeys
    certs = pathlib.Path(args.certs)
    tls = {"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / f"{args.cn}.crt"),
           "key_file": str(certs / f"{args.cn}.key")}
    for f in tls.values():
        if not pathlib.Path(f).exists():
            raise UserError(f"{f} is missing; make development certificates with scripts/dev-ca")
    keys = CentralKeys.load(args.keys, args.devices)
    if not keys.devices:
        raise UserError(f"no device keys (<ORI>/<device id>.pub) in {args.devices}: central could "
                        f"not verify any submission")
    galleries = _galleries(args.gallery, args.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())

    def event(name, detail):
        if name == "submission":
            print(f"central: submission {detail['submission_id'][:8]} from {detail['device']}: "
                  f"{detail['result']} {detail.get('reason') or ''}", flush=True)

    central = Central(host=args.host, port=args.port, root=args.root, keys=keys,
                      db_path=args.db, screen=TransactionScreen(galleries), group=args.group,
                      tls=tls, immigration_delay_s=args.immigration_delay, on_event=event)
    central.start()
    if not central.wait_connected(15):
        central.stop()
        raise UserError(f"could not connect to {args.host}:{args.port} with {tls['cert_file']}")
    print(f"central: reference responder subscribed to $share/{args.group}/{args.root}/v1/+/+/"
          f"submission ({len(galleries.criminal)} criminal, {len(galleries.immigration)} "
          f"immigration gallery entries); Ctrl-C stops", flush=True)
    try:
        while not stop.wait(0.5):
            if central.error:
                raise UserError(f"central stopped: {central.error}")
    except KeyboardInterrupt:
        pass
    finally:
        central.stop()
    return 0


def _push_watchlist(args) -> int:
    """Sign and publish one watchlist.replace command to one appliance; wait for the PUBACK."""
    from fpagent.central.screening import folder_entries, synthetic_watchlist
    from fpagent.link import client as client_mod
    from fpagent.link import messages
    from fpagent.sealing import keys as keys_mod

    if args.synthetic:
        try:
            persons = [int(p) for p in args.synthetic.split(",") if p.strip()]
        except ValueError:
            raise UserError("--synthetic takes person numbers, e.g. 3,5") from None
        entries = synthetic_watchlist(args.seed, persons)
    else:
        folder = pathlib.Path(args.subjects)
        if not folder.is_dir():
            raise UserError(f"--subjects {folder}: not a folder of <subject>/<finger>.png")
        entries = [messages.watchlist_entry(e.subject, f, t)
                   for e in folder_entries(folder) for f, t in e.templates.items()]
    signing = keys_mod.load_signing_key(pathlib.Path(args.keys) / keys_mod.CENTRAL_SIGNING_KEY,
                                        "central signing key")
    body = messages.message("command", messages.watchlist_command(entries), ori=args.ori,
                            device=args.device)
    payload = messages.sign(body, signing)
    certs = pathlib.Path(args.certs)
    client = client_mod.make_client(
        f"central-push-{body['id'][:8]}",
        tls={"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / f"{args.cn}.crt"),
             "key_file": str(certs / f"{args.cn}.key")})
    try:
        client_mod.connect(client, args.host, args.port, keepalive=60, clean_start=True)
    except OSError as exc:
        raise UserError(f"could not connect to {args.host}:{args.port}: {exc}") from None
    client.loop_start()
    try:
        info = client.publish(messages.topic(args.root, args.ori, args.device, "command"),
                              payload, qos=1)
        info.wait_for_publish(15)
        if not info.is_published():
            raise UserError("the broker did not confirm the command within 15 s")
    finally:
        client.loop_stop()
        client.disconnect()
    print(f"central: watch list of {len(entries)} templates sent to {args.ori}/{args.device} "
          f"(command {body['id']})", flush=True)
    return 0


def _counts(args) -> int:
    from fpagent.central.store import CentralStore
    if not pathlib.Path(args.db).exists():
        raise UserError(f"{args.db} does not exist")
    store = CentralStore(args.db)
    try:
        print(json.dumps(store.counts(), sort_keys=True))
    finally:
        store.close()
    return 0


def _open_store(db):
    from fpagent.central.store import CentralStore
    if not pathlib.Path(db).exists():
        raise UserError(f"{db} does not exist")
    return CentralStore(db)


def _audit_heads(args) -> int:
    """Each appliance's newest audit head as central saw it, and its tamper alarms."""
    import datetime
    store = _open_store(args.db)
    try:
        rows = store.audit_heads()
    finally:
        store.close()

    def when(ts):
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%SZ")

    if args.json:
        print(json.dumps(rows, sort_keys=True))
    else:
        if not rows:
            print("no audit heads seen yet (appliances publish theirs in their status)")
        for r in rows:
            print(f"{r['ori']}/{r['device']}: {r['state']}  head {r['seq']}:{r['hash'][:16]}  "
                  f"last seen {when(r['last_seen'])}")
            for a in r["alarms"]:
                what = "WENT BACKWARDS" if a["fault"] == "backwards" else "FORKED"
                print(f"    {when(a['seen_at'])} chain {what}: head {a['seq']}:{a['hash'][:16]} "
                      f"after {a['known_seq']}:{a['known_hash'][:16]}")
    return 1 if any(r["alarms"] for r in rows) else 0


def _report(args) -> int:
    """The program's figures for a period, from central's SQLite file."""
    from fpagent.booking import figures
    since = figures.parse_since(args.since)
    store = _open_store(args.db)
    try:
        rows = store.report_rows(since)
    finally:
        store.close()
    print(figures.render(figures.figures(rows, since=since), "Central: all appliances", args.json))
    return 0


def _add_broker_args(p) -> None:
    """How central reaches the broker: the same options for every action."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8883)
    p.add_argument("--root", default="fpagent", help="topic root (default fpagent)")
    p.add_argument("--certs", required=True, help="folder with ca.crt and <cn>.crt/.key (scripts/dev-ca)")
    p.add_argument("--cn", default="central/worker-1",
                   help="client certificate name (default central/worker-1); the broker binds the "
                        "client id to it, so each running instance needs its own")


def register(sub) -> None:
    parser = sub.add_parser("central", help="reference central responder (for demos, tests, "
                            "integrators; not the real central system)", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(_parser=parser)
    cmds = parser.add_subparsers(dest="central_cmd", metavar="ACTION")
    p = cmds.add_parser("keys", help="create central's HPKE and signing keys in DIR")
    p.add_argument("dir")
    p.set_defaults(func=_keys)
    p = cmds.add_parser("run", help="answer submissions until stopped")
    _add_broker_args(p)
    p.add_argument("--keys", required=True, help="folder with central-hpke.key and central-sign.key")
    p.add_argument("--devices", required=True, help="folder of appliance public keys <ORI>/<device id>.pub")
    p.add_argument("--db", required=True, help="central's SQLite file (instances may share it)")
    p.add_argument("--group", default="central", help="shared-subscription group")
    p.add_argument("--gallery", default="synthetic",
                   help="'synthetic' (demo people), 'none', or a folder criminal/ immigration/")
    p.add_argument("--seed", type=int, default=0, help="synthetic gallery seed (default: the demo's)")
    p.add_argument("--immigration-delay", type=float, default=2.0, metavar="S",
                   help="seconds between the criminal-history and the immigration answer")
    p.set_defaults(func=_run)
    p = cmds.add_parser("push-watchlist", help="send one appliance a signed watch list "
                        "(replaces its local 'watchlist' gallery)")
    _add_broker_args(p)
    p.add_argument("--keys", required=True, help="folder with central-sign.key")
    p.add_argument("--ori", required=True, help="the appliance's agency ORI")
    p.add_argument("--device", required=True, help="the appliance's device id")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--synthetic", metavar="P,P", help="synthetic person numbers")
    what.add_argument("--subjects", metavar="DIR", help="folder of <subject>/<finger>.png")
    p.add_argument("--seed", type=int, default=0, help="synthetic seed")
    p.set_defaults(func=_push_watchlist)
    central_fleet.add_actions(cmds, _add_broker_args)
    p = cmds.add_parser("counts", help="what central has stored")
    p.add_argument("--db", required=True)
    p.set_defaults(func=_counts)
    p = cmds.add_parser("report", help="the program's figures: submissions, matches, "
                        "determinations by level, rejects, median time to each answer")
    p.add_argument("--db", required=True)
    p.add_argument("--since", metavar="DATE", help="from this date or time (UTC; default: all)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=_report)
    p = cmds.add_parser("audit-heads", help="appliances' audit heads and tamper alarms "
                        "(exit 1 when any chain went backwards or forked)")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=_audit_heads)
    add_answer_action(cmds)
