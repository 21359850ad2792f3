"""USB fingerprint readers driven by libfprint 2 (see device.py for the URL)."""
