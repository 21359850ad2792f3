"""Technician commands behind scripts/: udev-rules, identity, provision, rotate-keys,
diag-bundle, factory-reset. The logic lives in agent/appliance.py."""

from __future__ import annotations

import json
import pathlib
import sys

from fpagent.service import maintenance as appliance
from fpagent import config
from fpagent.errors import UserError


def register(sub):
    p = sub.add_parser("udev-rules", help="print the udev rules that name the sensor /dev/fpsensor",
                       description="Generate systemd/udev/99-fpsensor.rules from the drivers' USB id tables.")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_udev_rules)

    p = sub.add_parser("identity", help="show (or with --ensure create) the device identity",
                       description="The device signing key, TLS key and certificate request. "
                       "--ensure creates what is missing and never overwrites (fpagent-identity.service).")
    p.add_argument("--ensure", action="store_true", help="create what is missing")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_identity)

    p = sub.add_parser("provision", help="set device id, ORI, central keys and broker; create the identity",
                       description="Provision this appliance: writes the device id, ORI and broker into "
                       "the configuration file, pins central's public keys, creates the device keys "
                       "and a certificate request (CN = ORI/device id) for the agency's CA.")
    p.add_argument("--device-id", help="this appliance's name (the certificate CN), e.g. booking-01")
    p.add_argument("--ori", help="the agency's 9-character ORI")
    p.add_argument("--destination", metavar="ORI",
                   help="the destination agency (1.007 DAI): the state bureau's 9-character ORI; "
                   "required once --ori is set")
    p.add_argument("--agency-name", help="the agency's name (certificate O)")
    p.add_argument("--central-hpke", metavar="FILE", help="central's HPKE public key set (central-hpke.pub)")
    p.add_argument("--central-verify", metavar="FILE", help="central's Ed25519 public key (central-sign.pub), pinned")
    p.add_argument("--broker", metavar="HOST:PORT", help="the MQTT broker of the central system")
    p.add_argument("--ca", metavar="FILE", help="the CA certificate of the broker (turns TLS on)")
    p.add_argument("--cert", metavar="FILE", help="this appliance's signed TLS certificate")
    p.add_argument("--sensor", metavar="URL", help="sensor URL (default zfm:///dev/fpsensor)")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_provision)

    p = sub.add_parser("rotate-keys", help="replace the device keys (old ones kept under keys/retired)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_rotate)

    p = sub.add_parser("diag-bundle", help="write a support tarball (no fingerprints, no keys)",
                       description="Versions, configuration (secrets redacted), status, journal "
                       "excerpt, queue counts and a sensor test. Never images, templates, keys or bookings.")
    p.add_argument("-o", "--output", metavar="FILE", help="tarball path (default: ./fpagent-diag-<id>.tar.gz)")
    p.add_argument("--no-sensor-test", action="store_true", help="do not open the sensor")
    p.add_argument("--journal-lines", type=int, default=500, metavar="N")
    p.add_argument("--journal-file", metavar="FILE",
                   help="use this journal excerpt (collected by scripts/diag-bundle as root)")
    p.set_defaults(func=cmd_diag)

    p = sub.add_parser("factory-reset", help="wipe queued bookings, inbox, galleries and keys",
                       description="Deletes the agent's data in the state directory (queue, inbox, "
                       "galleries, keys). The configuration file stays. Stop the service first.")
    p.add_argument("--yes", action="store_true", help="do not ask for the typed confirmation")
    p.set_defaults(func=cmd_reset)


def _config_path(args) -> pathlib.Path:
    import os

    if args.config:
        return pathlib.Path(args.config)
    if os.environ.get("FPAGENT_CONFIG"):
        return pathlib.Path(os.environ["FPAGENT_CONFIG"])
    return config.SYSTEM_CONFIG


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    for key, value in result.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key.replace('_', ' ')}: {value}")


def cmd_udev_rules(args) -> int:
    text = appliance.udev_rules()
    if args.output:
        pathlib.Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_identity(args) -> int:
    cfg = config.load(args.config)
    if args.ensure:
        result = appliance.ensure_identity(cfg)
    else:
        from fpagent.sealing import keys

        path = cfg.key_path(cfg.envelope.device_signing_key, keys.DEVICE_SIGNING_KEY)
        if not path.exists():
            raise UserError(f"no device identity yet ({path} missing); run scripts/provision")
        result = {"device_id": cfg.device.device_id, "ori": cfg.device.ori,
                  "device_key_id": keys.key_id(keys.load_signing_key(path, "device signing key"))}
    _print(result, args.json)
    return 0


def cmd_provision(args) -> int:
    req = appliance.ProvisionRequest(
        config_path=_config_path(args), device_id=args.device_id, ori=args.ori,
        destination=args.destination, agency_name=args.agency_name,
        central_hpke_public=pathlib.Path(args.central_hpke) if args.central_hpke else None,
        central_verify_key=pathlib.Path(args.central_verify) if args.central_verify else None,
        broker=args.broker, ca_file=pathlib.Path(args.ca) if args.ca else None,
        cert_file=pathlib.Path(args.cert) if args.cert else None, sensor_url=args.sensor)
    for name in ("central_hpke_public", "central_verify_key", "ca_file", "cert_file"):
        path = getattr(req, name)
        if path is not None and not path.is_file():
            raise UserError(f"{path} does not exist or is not a file")
    result = appliance.provision(req)
    _print(result, args.json)
    if not args.json:
        print(f"next: send {result['certificate_request']} to the agency's CA, then run "
              "scripts/provision --cert SIGNED.crt --ca CA.crt; register the device key id with central")
    return 0


def _confirm(prompt: str, word: str) -> bool:
    if not sys.stdin.isatty():
        raise UserError("confirmation needed but there is no terminal; pass --yes")
    print(prompt, file=sys.stderr)
    try:
        answer = input(f"type {word!r} to continue: ")
    except EOFError:
        return False
    return answer.strip() == word


def cmd_rotate(args) -> int:
    cfg = config.load(args.config)
    if not args.yes and not _confirm(
            "This replaces the device signing key and TLS key. Central must be told the new key id, "
            "and the new certificate request signed, before the link works again.", "rotate"):
        print("nothing changed", file=sys.stderr)
        return 1
    result = appliance.rotate_keys(cfg)
    _print(result, args.json)
    return 0


def cmd_diag(args) -> int:
    cfg = config.load(args.config)
    output = pathlib.Path(args.output or f"fpagent-diag-{cfg.device.device_id}.tar.gz")
    journal = None
    if args.journal_file:
        try:
            journal = pathlib.Path(args.journal_file).read_text(errors="replace")
        except OSError as exc:
            raise UserError(f"cannot read the journal excerpt {args.journal_file}: {exc.strerror}") from None
    names = appliance.diag_bundle(cfg, output, journal_lines=args.journal_lines,
                                  sensor_test=not args.no_sensor_test, journal_text=journal)
    print(f"wrote {output} ({len(names)} files; no fingerprints, keys or bookings)")
    return 0


def cmd_reset(args) -> int:
    cfg = config.load(args.config)
    if not args.yes and not _confirm(
            f"FACTORY RESET of {cfg.device.device_id}: deletes every queued booking that central "
            f"has not acknowledged, the inbox, the galleries and the device keys under "
            f"{cfg.paths.state_dir}. This cannot be undone.", "erase everything"):
        print("nothing deleted", file=sys.stderr)
        return 1
    result = appliance.factory_reset(cfg)
    for path in result["removed"]:
        print(f"removed {path}")
    for path in result["left"]:
        print(f"left in place (not the agent's): {path}")
    print("done; run scripts/provision to set the appliance up again")
    return 0
