"""The issuer's W3C Bitstring Status Lists: an index for each certificate at sealing, and the lists
published, signed, whenever what they say changes.

The chain stays the source of truth; a status list repeats its revocations in the form every
Verifiable Credentials verifier reads (chain.core.status_list). With ``status_base_url`` set:

- **Sealing** gives each certificate a ``credentialStatus`` entry in the current list before its
  credential is secured: a random free index (:func:`chain.core.status_list.draw_index`), so an
  index alone says nothing about when its credential was issued (the companion names its batch).
  A list takes certificates until half of its 131,072 entries are used (draws stay cheap; the
  other half is the herd), then the next list starts, at ``<status_base_url>/<n>``.
- **Publishing** writes, for each list, ``status/<n>.json`` (the ``BitstringStatusListCredential``,
  secured with an ``eddsa-jcs-2022`` proof by the issuer's key) and ``status/<n>.leaves.json`` (its
  ``finvault-status-leaves/1`` companion: the index, leaf and root of each anchored certificate, so
  that ``finvault reconcile`` can hold the list to the chain) under the receipts folder, for static
  hosting; the issuer API serves them too. Lists are published when a batch is anchored and when a
  revocation is recorded, the moment it is confirmed on-chain.

What the companion file reveals: which indexes are in use and the leaf and batch of each. Every
leaf and batch is in the batch manifests (public), every revocation is on-chain, and a holder's
credential names its index: nothing new.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chain.core.data_integrity import add_proof, did_key
from chain.core.encoding import iso_utc
from chain.core.signing import PrivateKey
from chain.core.status_list import LEAVES_FORMAT, LIST_SIZE, draw_index, list_credential, status_entry
from chain.service.files import private_dir, private_file, sync_files
from issuer.outputs import write_atomic
from issuer.store import Certificate, CertificateStatus, StatusList, Store, utcnow

STATUS_DIR = "status"
_PUBLISHING = threading.Lock()
#: Certificates a list takes before the next one starts: half its entries.
LIST_FILL = LIST_SIZE // 2


def touch_lists_of_batch(session: Session, root: str, now: datetime) -> None:
    """Records, in the caller's transaction, that the lists holding batch ``root``'s certificates
    must show a change (its anchoring, or a revocation): :meth:`StatusPublisher.publish_owed`
    republishes them should the publication after the commit not happen."""
    holding = select(Certificate.status_list_id).where(
        Certificate.batch_root == root, Certificate.status_list_id.is_not(None)
    )
    session.execute(update(StatusList).where(StatusList.id.in_(holding)).values(changed_at=now))


@dataclass
class Allocator:
    """Status list entries for the certificates one seal secures, drawn in the seal's transaction."""

    session: Session
    base_url: str
    random_bytes: Callable[[int], bytes] = os.urandom
    now: Callable[[], datetime] = utcnow
    _current: StatusList | None = None
    _taken: set[int] = field(default_factory=set)

    def _latest(self) -> None:
        """The newest list and its taken indexes, as the store has them."""
        # Locked (PostgreSQL; SQLite's write transaction is already exclusive): two seals, or a seal
        # and a VC-API issuance, never draw from the same taken-set snapshot.
        newest = select(StatusList).order_by(StatusList.id.desc()).limit(1).with_for_update()
        latest = self.session.scalar(newest)
        if latest is not None:
            taken = self.session.scalars(
                select(Certificate.status_index).where(Certificate.status_list_id == latest.id)
            )
            self._current, self._taken = latest, {i for i in taken if i is not None}

    def _new_list(self) -> None:
        created = StatusList(url="", created_at=self.now())
        self.session.add(created)
        self.session.flush()  # its id names it
        created.url = f"{self.base_url.rstrip('/')}/{created.id}"
        self._current, self._taken = created, set()

    def entry(self) -> tuple[int, int, dict[str, str]]:
        """``(list id, index, credentialStatus)`` for the next certificate."""
        if self._current is None:
            self._latest()
        if self._current is None or len(self._taken) >= LIST_FILL:
            self._new_list()
        current = self._current
        assert current is not None  # _new_list set it
        index = draw_index(self._taken.__contains__, self.random_bytes)
        self._taken.add(index)
        return current.id, index, status_entry(current.url, index)


@dataclass(frozen=True)
class StatusPublisher:
    """Publishes the issuer's lists, signed with its Ed25519 key (eddsa-jcs-2022)."""

    store: Store
    out_dir: Path
    key: PrivateKey
    #: The DID that issues (the credentials' ``issuer``): ``did:web:...`` or None for the key's did:key.
    controller: str | None = None
    now: Callable[[], datetime] = utcnow

    def __repr__(self) -> str:  # never shows the key
        return f"StatusPublisher(out_dir={self.out_dir})"

    def publish(self, list_ids: Iterable[int] | None = None) -> list[Path]:
        """Writes (and syncs) lists ``list_ids`` (default: every list); returns the paths written."""
        if not isinstance(self.key, Ed25519PrivateKey):
            raise TypeError("status lists are signed with eddsa-jcs-2022: an Ed25519 key")
        controller = self.controller or did_key(self.key.public_key())
        directory = private_dir(self.out_dir / STATUS_DIR)
        # One publisher at a time, in this process and across processes (the API's scheduler, a
        # `finvault revoke`): a snapshot read before a revocation never lands after one read since.
        with _PUBLISHING, open(private_file(directory / ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._publish(directory, self.key, controller, list_ids)

    def _publish(
        self, directory: Path, key: Ed25519PrivateKey, controller: str, list_ids: Iterable[int] | None
    ) -> list[Path]:
        written: list[Path] = []
        snapshot = self.now()  # a change committed from here on is owed to the next publication
        with self.store.reading() as session:
            query = select(StatusList).order_by(StatusList.id)
            if list_ids is not None:
                query = query.where(StatusList.id.in_(list(set(list_ids))))
            lists = list(session.scalars(query))
            entries = {
                item.id: session.execute(
                    select(
                        Certificate.status_index, Certificate.leaf, Certificate.batch_root, Certificate.status
                    )
                    .where(Certificate.status_list_id == item.id)
                    .order_by(Certificate.status_index)
                ).all()
                for item in lists
            }
        moment = iso_utc(self.now().replace(microsecond=0))
        for item in lists:
            rows = entries[item.id]
            revoked = [i for i, _, _, status in rows if i is not None and status is CertificateStatus.REVOKED]
            unsecured = list_credential(item.url, controller, revoked, moment)
            credential = add_proof(unsecured, key, controller=controller, created=moment)
            leaves: dict[str, Any] = {
                "format": LEAVES_FORMAT,
                "statusListCredential": item.url,
                "entries": [
                    {"statusListIndex": index, "leaf": leaf, "root": root}
                    for index, leaf, root, status in rows
                    if status in (CertificateStatus.ANCHORED, CertificateStatus.REVOKED)
                ],
            }
            path = directory / f"{item.id}.json"
            write_atomic(path, (json.dumps(credential, indent=2) + "\n").encode())
            companion = directory / f"{item.id}.leaves.json"
            write_atomic(companion, (json.dumps(leaves, indent=2) + "\n").encode())
            written += [path, companion]
        sync_files(written)
        if lists:
            with self.store.transaction() as session:
                for item in lists:
                    session.get_one(StatusList, item.id).published_at = snapshot
        return written

    def publish_owed(self) -> list[Path]:
        """Publishes every list whose newest change is not in its published file yet (never
        published, or changed since its last snapshot): what a crash between a commit and its
        publication left behind."""
        with self.store.reading() as session:
            owed = list(
                session.scalars(
                    select(StatusList.id).where(
                        StatusList.published_at.is_(None) | (StatusList.changed_at > StatusList.published_at)
                    )
                )
            )
        return self.publish(owed) if owed else []

    def publish_unpublished(self, list_ids: Iterable[int]) -> list[Path]:
        """Publishes those of ``list_ids`` never published yet (a new list, its entries all clear)."""
        with self.store.reading() as session:
            fresh = list(
                session.scalars(
                    select(StatusList.id).where(
                        StatusList.id.in_(list(list_ids)), StatusList.published_at.is_(None)
                    )
                )
            )
        return self.publish(fresh) if fresh else []

    def publish_for_batch(self, root: str) -> list[Path]:
        """Publishes the lists that hold a certificate of batch ``root``."""
        with self.store.reading() as session:
            ids = set(
                session.scalars(
                    select(Certificate.status_list_id).where(
                        Certificate.batch_root == root, Certificate.status_list_id.is_not(None)
                    )
                )
            )
        return self.publish([i for i in ids if i is not None]) if ids else []
