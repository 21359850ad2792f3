"""One way to set up a paho MQTT client for this project: MQTT v5, TLS, TCP_NODELAY.

The appliance's link, the reference central, the `central push-watchlist`
command and the link benchmark all talk to the same broker the same way;
their differences (client id, manual acks, in-flight window, a will) are
arguments here, so a TLS or socket setting is changed in one place.
"""

from __future__ import annotations

import dataclasses
import socket
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.client import CallbackAPIVersion


@dataclasses.dataclass(frozen=True)
class Will:
    """The message the broker publishes for us when the connection dies without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def tls_files(mqtt_config) -> dict | None:
    """The TLS files of an `[mqtt]` configuration section, or None when TLS is off."""
    if not mqtt_config.tls:
        return None
    return {"ca_file": mqtt_config.ca_file, "cert_file": mqtt_config.cert_file,
            "key_file": mqtt_config.key_file}


def make_client(client_id: str, *, tls: dict | None, manual_ack: bool = False,
                max_inflight: int = 20, will: Will | None = None) -> mqtt.Client:
    """A paho 2.x MQTT v5 client, not yet connected (see `connect`).

    `tls`: {"ca_file", "cert_file", "key_file"} (a client certificate and the CA
    that signed the broker's), or None for plain TCP. `max_inflight`: QoS 1
    publishes awaiting their PUBACK; paho queues the rest (unbounded), and the
    durable copy is always the sender's own store, never paho's queue.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if tls is not None:
        client.tls_set(ca_certs=tls.get("ca_file") or None, certfile=tls.get("cert_file") or None,
                       keyfile=tls.get("key_file") or None, cert_reqs=ssl.CERT_REQUIRED,
                       tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.max_inflight_messages_set(max(1, max_inflight))
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    return client


def connect(client: mqtt.Client, host: str, port: int, *, keepalive: int, clean_start: bool,
            properties=None) -> None:
    """Open the connection (CONNECT sent, CONNACK still to come) and switch Nagle off."""
    client.connect(host, port, keepalive=keepalive, clean_start=clean_start, properties=properties)
    set_nodelay(client)


def reconnect(client: mqtt.Client) -> None:
    """Open the connection again with the arguments of the first `connect`."""
    client.reconnect()
    set_nodelay(client)


def set_nodelay(client: mqtt.Client) -> None:
    """Small request/answer messages: don't let Nagle hold them (~40 ms per hop on loopback)."""
    try:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass
