"""`fpagent release BOOKING --at TIME`: tell central a booked person is (to be) released.

The notice is signed with the device key and kept until central's signed
answer arrives (the running service publishes it); that answer closes the
booking's detainer task. Audited with who sent it and when.
"""

from __future__ import annotations

import getpass
import json
import time

from fpagent import config as config_mod


def _run(args) -> int:
    from fpagent.booking import release
    from fpagent.sealing import keys
    from fpagent.service.preflight import drop_to_state_owner
    from fpagent.storage.store import Store
    cfg = config_mod.load(args.config)
    drop_to_state_owner(cfg)
    signing_key = keys.load_device_keys(cfg).signing_key
    officer = args.by or getpass.getuser()
    with Store(cfg.paths.database(), cfg) as store:
        sent = release.send(store, cfg, args.booking, at=args.at, officer=officer,
                            signing_key=signing_key, now=time.time())
    if args.json:
        print(json.dumps(sent, sort_keys=True))
        return 0
    print(f"release notice {sent['release_id'][:12]} for booking TCN {sent['tcr']} "
          f"(released at {sent['released_at']}) signed by this appliance for {officer}; "
          f"the service sends it to central, whose answer closes the detainer task")
    if not sent["open_tasks"]:
        print("note: this booking has no open detainer task")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("release", help="send central a signed release notice for a booking "
                            "(closes its detainer task once central acknowledges it)",
                            description=__doc__)
    parser.add_argument("booking", help="the booking's TCN (or submission id)")
    parser.add_argument("--at", required=True,
                        help="when: 'now', 2026-12-01T09:30 (local) or 2026-12-01T09:30:00Z")
    parser.add_argument("--by", help="the officer sending it (default: the login name)")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=_run, _parser=parser)
