"""`fpagent central command ...` and `fpagent central commands`: fleet commands and their results.

    fpagent central command purge --tcn TCN [--tcn ...] | --older-than-days N   (+ the options below)
    fpagent central command config-change --set mqtt.answers_timeout_s=7200 [--set ...]
    fpagent central command key-rotation --public-key FILE --not-before T --not-after T
    fpagent central command watchlist-update [--add-synthetic P,P] [--add-subjects DIR]
        [--remove SUBJECT[/FINGER] ...]
    fpagent central command watchlist-replace (--synthetic P,P | --subjects DIR)
        each with --certs PKI --keys DIR --devices DIR --db FILE --ori ORI --device ID
        [--wait S]: sign, record and publish the command (a large watch list in
        chunks), then wait up to S seconds for the appliance's signed results
    fpagent central commands --db FILE [--json]   every command sent, with its results

A `central run` on the same --db stores results too (they come whenever the
appliance answers); the exit code is 1 when a result says "refused".
"""

from __future__ import annotations

import datetime
import json
import pathlib
import threading
import time
import tomllib

from fpagent.errors import UserError


def _fields(args) -> list[dict]:
    """The `command` fields to send for the chosen action (several for a chunked list)."""
    from fpagent.link import fleet_commands as fc
    from fpagent.link import messages

    if args.fleet_action == "purge":
        if bool(args.tcn) == (args.older_than_days is not None):
            raise UserError("purge: give --tcn (one or more) or --older-than-days")
        fields = [{"action": "purge", "args": {"tcns": args.tcn} if args.tcn
                   else {"older_than_days": args.older_than_days}}]
    elif args.fleet_action == "config-change":
        changes = {}
        for item in args.set:
            name, eq, text = item.partition("=")
            if not eq:
                raise UserError(f"--set {item!r}: write section.key=value")
            try:
                changes[name] = tomllib.loads(f"v = {text}")["v"]
            except tomllib.TOMLDecodeError:
                changes[name] = text  # a bare word: a string
        fields = [{"action": "config-change", "args": {"set": changes}}]
    elif args.fleet_action == "key-rotation":
        pem = pathlib.Path(args.public_key).read_text()
        fields = [{"action": "key-rotation", "args": {
            "public_key_pem": pem, "not_before": _when(args.not_before),
            "not_after": _when(args.not_after)}}]
    elif args.fleet_action == "watchlist-update":
        remove = []
        for r in args.remove:
            subject, _, finger = r.partition("/")
            remove.append({"subject_id": subject, **({"finger_position": int(finger)} if finger else {})})
        fields = [{"action": "watchlist.update",
                   "args": {"add": _entries(args.add_synthetic, args.add_subjects, args.seed),
                            "remove": remove}}]
    else:
        entries = _entries(args.synthetic, args.subjects, args.seed)
        if not entries:
            raise UserError("watchlist-replace: give --synthetic P,P or --subjects DIR")
        fields = fc.watchlist_chunks(entries, max_bytes=messages.MAX_MESSAGE_BYTES)
    for f in fields:  # refuse here what the appliance would refuse for its shape
        parse = {"purge": fc.parse_purge, "config-change": fc.parse_config_change,
                 "key-rotation": fc.parse_key_rotation, "watchlist.update": fc.parse_watchlist_update,
                 "watchlist.replace": fc.parse_watchlist_replace}[f["action"]]
        try:
            parse(f["args"])
        except fc.CommandArgsError as exc:
            raise UserError(str(exc)) from None
    return fields


def _when(text: str) -> str:
    """An RFC 3339 UTC time from 'now', '+2h', '+30d' or a time as the contract writes it."""
    from fpagent.link import messages
    if text == "now" or text.startswith("+"):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        try:
            offset = 0.0 if text == "now" else float(text[1:-1]) * units[text[-1]]
        except (KeyError, ValueError):
            raise UserError(f"{text!r}: give now, +Ns, +Nm, +Nh, +Nd or an RFC 3339 UTC time") from None
        return messages.now_rfc3339(time.time() + offset)
    return text


def _entries(synthetic, subjects, seed) -> list:
    from fpagent.central.screening import folder_entries, synthetic_watchlist
    from fpagent.link import messages
    out = []
    if synthetic:
        try:
            persons = [int(p) for p in synthetic.split(",") if p.strip()]
        except ValueError:
            raise UserError("--synthetic takes person numbers, e.g. 3,5") from None
        out += synthetic_watchlist(seed, persons)
    if subjects:
        folder = pathlib.Path(subjects)
        if not folder.is_dir():
            raise UserError(f"{folder}: not a folder of <subject>/<finger>.png")
        out += [messages.watchlist_entry(e.subject, f, t)
                for e in folder_entries(folder) for f, t in e.templates.items()]
    return out


def _issue(args) -> int:
    """Sign, record and publish; then collect the appliance's results for --wait seconds."""
    from fpagent.central import fleet
    from fpagent.central.store import CentralKeys, CentralStore
    from fpagent.link import client as client_mod
    from fpagent.link import messages

    fields = _fields(args)
    keys = CentralKeys.load(args.keys, args.devices)
    store = CentralStore(args.db)
    certs = pathlib.Path(args.certs)
    got: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg):
        try:
            body = fleet.verify_result(msg.topic, bytes(msg.payload), keys.devices)
        except fleet.ResultRefused:
            return
        with lock, store.transaction() as db:
            fleet.record_result(db, body)
            got[body["id"]] = body

    client = client_mod.make_client(
        f"central-cmd-{messages.new_id()[:8]}",
        tls={"ca_file": str(certs / "ca.crt"), "cert_file": str(certs / f"{args.cn}.crt"),
             "key_file": str(certs / f"{args.cn}.key")})
    client.on_message = on_message
    try:
        client_mod.connect(client, args.host, args.port, keepalive=60, clean_start=True)
    except OSError as exc:
        raise UserError(f"could not connect to {args.host}:{args.port}: {exc}") from None
    client.loop_start()
    sent = []
    try:
        if args.wait > 0:
            # subscribe before sending, so no result is missed
            client.subscribe(messages.topic(args.root, args.ori, args.device, "result"), qos=1)
            time.sleep(0.3)
        for f in fields:
            body, payload = fleet.sign_command(f, keys.signing, ori=args.ori, device=args.device)
            with store.transaction() as db:
                fleet.record_command(db, body)
            info = client.publish(messages.topic(args.root, args.ori, args.device, "command"),
                                  payload, qos=1)
            info.wait_for_publish(15)
            if not info.is_published():
                raise UserError("the broker did not confirm the command within 15 s")
            sent.append(body["id"])
            print(f"central: {body['action']} sent to {args.ori}/{args.device} (command {body['id']})",
                  flush=True)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            with lock:
                answered = {b["command_id"] for b in got.values()}
            if answered >= set(sent):
                break
            time.sleep(0.1)
    finally:
        client.loop_stop()
        client.disconnect()
    refused = False
    with lock:
        for cid in sent:
            results = [b for b in got.values() if b["command_id"] == cid]
            for b in results:
                refused |= b["outcome"] == "refused"
                print(f"  {cid[:8]}: {b['outcome']} ({b['reason']}) {b['detail']}")
            if not results and args.wait > 0:
                print(f"  {cid[:8]}: no result within {args.wait:.0f} s (a `central run` on this "
                      f"--db stores it when it comes)")
    store.close()
    return 1 if refused else 0


def _list(args) -> int:
    from fpagent.central import fleet
    from fpagent.central.store import CentralStore
    if not pathlib.Path(args.db).exists():
        raise UserError(f"{args.db} does not exist")
    store = CentralStore(args.db)
    try:
        with store.lock:
            rows = fleet.summary(store.conn)
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print("no fleet commands sent yet")

    def when(ts):
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")

    for r in rows:
        print(f"{when(r['issued_at'])}  {r['id'][:8]}  {r['ori']}/{r['device']}  {r['action']}  "
              f"{json.dumps(r['args'], sort_keys=True)[:80]}")
        for res in r["results"] or [{"outcome": "no result yet", "reason": "", "detail": "",
                                      "received_at": None}]:
            at = when(res["received_at"]) if res["received_at"] else ""
            print(f"    {res['outcome']} {res['reason']} {res['detail']} {at}".rstrip())
    return 0


def add_actions(cmds, add_broker_args) -> None:
    """Add `command ...` and `commands` to the `fpagent central` parser."""
    p = cmds.add_parser("command", help="send one appliance a signed fleet command and show "
                        "its result (purge, config-change, key-rotation, watch lists)")
    kinds = p.add_subparsers(dest="fleet_action", metavar="KIND", required=True)

    def kind(name, help_text):
        k = kinds.add_parser(name, help=help_text)
        add_broker_args(k)
        k.add_argument("--keys", required=True, help="folder with central-sign.key")
        k.add_argument("--devices", required=True, help="appliance public keys <ORI>/<device id>.pub")
        k.add_argument("--db", required=True, help="central's SQLite file (commands and results)")
        k.add_argument("--ori", required=True, help="the appliance's agency ORI")
        k.add_argument("--device", required=True, help="the appliance's device id")
        k.add_argument("--wait", type=float, default=15.0, metavar="S",
                       help="seconds to wait for the results (0: do not wait)")
        k.set_defaults(func=_issue)
        return k

    k = kind("purge", "delete acknowledged bookings by TCN or age")
    k.add_argument("--tcn", action="append", default=[], help="a booking's TCN (repeat)")
    k.add_argument("--older-than-days", type=float)
    k = kind("config-change", "change allow-listed keys of the appliance's configuration")
    k.add_argument("--set", action="append", default=[], required=True, metavar="SECTION.KEY=VALUE")
    k = kind("key-rotation", "central's next signing key, with an overlap window")
    k.add_argument("--public-key", required=True, help="the new key's .pub (PEM)")
    k.add_argument("--not-before", default="now", help="now, +Nh, +Nd or RFC 3339 UTC")
    k.add_argument("--not-after", required=True, help="end of the overlap: +Nd or RFC 3339 UTC")
    k = kind("watchlist-update", "add and remove watch-list entries")
    k.add_argument("--add-synthetic", metavar="P,P")
    k.add_argument("--add-subjects", metavar="DIR")
    k.add_argument("--remove", action="append", default=[], metavar="SUBJECT[/FINGER]")
    k.add_argument("--seed", type=int, default=0)
    k = kind("watchlist-replace", "replace the whole watch list (in chunks when large)")
    k.add_argument("--synthetic", metavar="P,P")
    k.add_argument("--subjects", metavar="DIR")
    k.add_argument("--seed", type=int, default=0)
    p = cmds.add_parser("commands", help="fleet commands sent and the appliances' results")
    p.add_argument("--db", required=True)
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=_list)
