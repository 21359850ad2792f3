"""The identities and the appliance configuration both link benchmarks run with.

One agency's appliance (certificate CN "XX0000000/booking-01", as the broker's
ACL wants it) and central's first worker, made afresh under a work folder.
"""

from __future__ import annotations

import pathlib

ORI, DEVICE = "XX0000000", "booking-01"


def make_identities(work: pathlib.Path, extra_clients: tuple[str, ...] = ()):
    """A development PKI, central's keys and the device's, the device registered with
    central: (pki folder, central HPKE keys, central signing key, device signing key)."""
    from fpagent.central.registry import register_device_key
    from fpagent.devtools.ca import make_dev_pki
    from fpagent.sealing import keys

    pki = make_dev_pki(work / "pki", clients=(f"{ORI}/{DEVICE}", "central/worker-1", *extra_clients))
    hk, csk = keys.create_central_keys(work / "central-keys", suites=("x25519",))
    dsk = keys.create_device_keys(work / "device-keys")
    register_device_key(work / "devices", ORI, DEVICE, dsk.public_key())
    return pki, hk, csk, dsk


def central_tls(pki: pathlib.Path, worker: str = "central/worker-1") -> dict:
    return {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / f"{worker}.crt"),
            "key_file": str(pki / f"{worker}.key")}


def appliance_config(work: pathlib.Path, pki: pathlib.Path, port: int):
    """The appliance's configuration: TLS to the local broker, its own state folder."""
    from fpagent import config as config_mod

    return config_mod.from_dict({
        "paths": {"state_dir": str(work / "appliance")},
        "store": {"min_free_mb": 10.0},
        "mqtt": {"port": port, "tls": True, "ca_file": str(pki / "ca.crt"),
                 "cert_file": str(pki / ORI / f"{DEVICE}.crt"),
                 "key_file": str(pki / ORI / f"{DEVICE}.key"), "inflight": 16,
                 "ack_timeout_s": 30.0},
    })
