"""The service's outbox part keeps personal data no longer than the retention says.

Real SQLite store; the part's step() is what the running service calls.
"""

import time

from fpagent import config as config_mod
from fpagent.service import parts as parts_mod
from fpagent.storage.store import Store


def test_outbox_part_purges_old_acknowledged_notifications_and_expired_replay_ids(tmp_path):
    cfg = config_mod.Config()
    cfg.paths.state_dir = str(tmp_path)
    cfg.store.retention_days = 1.0
    store = Store(tmp_path / "agent.sqlite3", cfg)
    try:
        long_ago = time.time() - 3 * 86400
        store.inbox.add("old-acked", "notification", {"result": "no-hit"}, now=long_ago)
        store.inbox.acknowledge("old-acked", "officer-1", now=long_ago)
        store.inbox.add("old-unread", "notification", {"result": "hit"}, now=long_ago)
        store.inbox.add("new-acked", "notification", {"result": "no-hit"})
        store.inbox.acknowledge("new-acked", "officer-1")
        store.seen.add("command", "stale-id", ttl_s=1.0, now=long_ago)
        store.seen.add("command", "live-id", ttl_s=3600.0)

        parts_mod.OutboxPart(cfg, store).step()

        assert store.inbox.get("old-acked") is None
        # an officer has not seen it yet: it stays, however old
        assert store.inbox.get("old-unread") is not None
        assert store.inbox.get("new-acked") is not None
        assert not store.seen.contains("command", "stale-id")
        assert store.seen.contains("command", "live-id")
        assert store.audit.verify()[0]
    finally:
        store.close()
