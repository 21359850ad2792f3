"""Watch-list changes beyond one whole list in one message: chunks and updates.

A list larger than one message comes as chunks (`list_id`, `chunk` of
`chunks`, and the `digest` of the whole, fpagent.screening.watchlist_changes.
watchlist_digest). Each chunk is kept sealed under the local data key in
<state_dir>/watchlist-chunks until the others arrive; the list is applied only
when every chunk is there and the digest of their entries, in chunk order,
matches; otherwise nothing changes, so an incomplete replace never leaves a
half list. Chunks of a list not completed within CHUNK_TTL_S are deleted.

An update adds entries (replacing the same subject and finger) and removes
entries (one finger, or all of a subject's) in the applied list. Like a
replace, one issued before the last applied change is refused.

Everything that changes a file runs in the step the link calls inside the
transaction that records the command, so two chunks or two updates in one
batch see each other's effect. Audit entries hold counts, never templates.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time

from fpagent.screening.galleries import WATCHLIST, GalleryStore, GalleryStoreError
from fpagent.screening.watchlist import (
    AUDIT_ACTOR, WatchlistCommands, WatchlistError, build_watchlist,
    prepare_watchlist, superseded)

CHUNK_TTL_S = 3600.0  # chunks of a list that is not complete by then are dropped
CHUNK_DIR = "watchlist-chunks"


def watchlist_digest(entries) -> str:
    """SHA-256 (hex) of a whole list: its entries in order as canonical JSON
    (sorted keys, no spaces, ASCII), the same bytes on both sides."""
    text = json.dumps(list(entries), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _refused(reason: str, detail: str) -> dict:
    return {"outcome": "refused", "reason": reason, "detail": detail[:200]}


class WatchlistChanges:
    """Chunked replaces and updates, beside `commands` (the whole-list handler)."""

    def __init__(self, commands: WatchlistCommands, chunk_dir, *, ttl_s: float = CHUNK_TTL_S):
        self.commands = commands
        self.chunks = GalleryStore(chunk_dir, commands.galleries.key_path)
        self.ttl_s = ttl_s

    @classmethod
    def from_config(cls, cfg, commands: WatchlistCommands | None = None) -> "WatchlistChanges":
        return cls(commands or WatchlistCommands.from_config(cfg),
                   pathlib.Path(cfg.paths.state_dir) / CHUNK_DIR)

    # ---------------------------------------------------------------- chunks

    @staticmethod
    def _stem(list_id: str) -> str:
        return "l" + hashlib.sha256(list_id.encode()).hexdigest()[:24]

    def expire(self, now: float | None = None) -> int:
        """Delete chunks older than the time to live; how many went."""
        now = time.time() if now is None else now
        gone = 0
        for path in self._files("l*"):
            try:
                if path.stat().st_mtime < now - self.ttl_s:
                    path.unlink()
                    gone += 1
            except FileNotFoundError:
                pass
        return gone

    def _files(self, stem: str) -> list[pathlib.Path]:
        if not self.chunks.directory.exists():
            return []
        return sorted(self.chunks.directory.glob(f"{stem}.*.gallery"))

    def _held(self, list_id: str) -> dict[int, dict]:
        out = {}
        for path in self._files(self._stem(list_id)):
            name = path.name[:-len(".gallery")]
            try:
                doc = json.loads(self.chunks.load(name))
            except (GalleryStoreError, ValueError):
                continue  # altered or unreadable: as if it never came (the list stays incomplete)
            if doc.get("list_id") == list_id:
                out[int(doc["chunk"])] = doc
        return out

    def _drop(self, list_id: str) -> None:
        for path in self._files(self._stem(list_id)):
            path.unlink(missing_ok=True)

    def chunk_step(self, msg, *, entries: list, list_id: str, chunk: int, chunks: int,
                   digest: str):
        """The step for one chunk (its templates are checked now, outside the transaction)."""
        try:
            build_watchlist(entries)
        except WatchlistError as exc:
            detail = f"chunk {chunk}: {exc}"
            return lambda store: self._refuse(store, msg, list_id, "bad-template", detail)
        doc = {"list_id": list_id, "chunk": chunk, "chunks": chunks, "digest": digest,
               "issued_at": msg.issued_at, "entries": entries}
        return lambda store: self._take_chunk(store, msg, doc)

    def _refuse(self, store, msg, list_id: str, why: str, detail: str) -> dict:
        self._drop(list_id)
        return self.commands.refuse(store, msg, why, detail)

    def _take_chunk(self, store, msg, doc: dict) -> dict:
        self.expire()
        list_id, chunks, digest = doc["list_id"], doc["chunks"], doc["digest"]
        held = self._held(list_id)
        if any(h["chunks"] != chunks or h["digest"] != digest for h in held.values()):
            return self._refuse(store, msg, list_id, "bad-args",
                                "chunk count or digest differs from earlier chunks of this list")
        held[doc["chunk"]] = doc
        if len(held) < chunks:
            name = f"{self._stem(list_id)}.{doc['chunk']:04d}"
            try:
                self.chunks.save(name, json.dumps(doc).encode())
            except Exception as exc:  # noqa: BLE001 - disk full...
                return self.commands.refuse(store, msg, "not-saved", f"{type(exc).__name__}")
            store.audit.append(AUDIT_ACTOR, "watchlist-chunk-held", {
                "message_id": msg.id, "list_id": list_id, "chunk": doc["chunk"],
                "chunks": chunks, "held": len(held)})
            return {"outcome": "held", "reason": "chunk-held",
                    "detail": f"chunk {doc['chunk'] + 1} of {chunks} ({len(held)} held)"}
        entries = [e for i in range(chunks) for e in held[i]["entries"]]
        if watchlist_digest(entries) != digest:
            return self._refuse(store, msg, list_id, "digest-mismatch",
                                f"the {chunks} chunks do not match the list's digest")
        prepared = prepare_watchlist(entries, self.commands.galleries)
        result = self.commands.apply(msg, prepared, store,
                                     issued_at=max(h["issued_at"] for h in held.values()))
        self._drop(list_id)
        if result["outcome"] == "applied":
            result["detail"] += f" from {chunks} chunks (list {list_id[:32]})"
        return result

    # ---------------------------------------------------------------- updates

    def update_step(self, msg, *, add: list, remove):
        """The step for an update: templates checked now, the list changed in the transaction."""
        try:
            build_watchlist(add)
        except WatchlistError as exc:
            detail = str(exc)
            return lambda store: self.commands.refuse(store, msg, "bad-template", detail)
        return lambda store: self._update(store, msg, add, tuple(remove))

    def _update(self, store, msg, add: list, remove: tuple) -> dict:
        from fpagent.screening.prefilter import Gallery

        if superseded(store, msg.issued_at):
            return self.commands.refuse(store, msg, "superseded",
                                         "a newer watch-list change is already applied")
        try:
            gallery = (Gallery.from_bytes(self.commands.galleries.load(WATCHLIST))
                       if WATCHLIST in self.commands.galleries.names() else Gallery())
        except Exception as exc:  # noqa: BLE001 - unreadable local list: refuse, a replace mends it
            return self.commands.refuse(store, msg, "not-saved",
                                         f"the applied watch list cannot be read ({type(exc).__name__})")
        removed = 0
        for subject, finger in remove:
            for gid in gallery.ids():
                s, _, f = gid.rpartition("/")
                if s == subject and (finger is None or f == str(finger)):
                    gallery.remove(gid)
                    removed += 1
        try:
            build_watchlist(add, gallery)
            sealed = self.commands.galleries.seal(WATCHLIST, gallery.to_bytes())
            self.commands.galleries.write_sealed(WATCHLIST, sealed)
        except WatchlistError as exc:
            return self.commands.refuse(store, msg, "bad-template", str(exc))
        except Exception as exc:  # noqa: BLE001 - disk full...
            return self.commands.refuse(store, msg, "not-saved", f"{type(exc).__name__}: {exc}")
        self.commands.counters["watchlist_updated"] += 1
        store.audit.append(AUDIT_ACTOR, "watchlist-updated", {
            "message_id": msg.id, "issued_at": msg.body.get("issued_at"), "added": len(add),
            "removed": removed, "entries": len(gallery)})
        return {"outcome": "applied", "reason": "done",
                "detail": f"{len(add)} added, {removed} removed, {len(gallery)} in the list"}
