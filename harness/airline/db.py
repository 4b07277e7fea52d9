"""The airline database: parsed once per process, shared read-only; each episode a cheap overlay.

`AirlineDB` holds the three tables (flights, users, reservations) as plain dicts, normalized the
way upstream's pydantic models dump them (a reservation without `status` gets `None`; payment
amounts ints, gift-card and certificate amounts floats; keys in the models' field order, which
is the key order of the JSON the agent reads). It is never mutated after load.

`AirlineState` is one episode's world: a copy-on-write overlay holding only the records the
episode wrote (a record is deep-copied the first time a tool edits it). Creating a state costs
nothing, and two states derived from the same base compare by their touched records only.

Equality means what the official evaluator means: it compares sha256 of
`json.dumps(model_dump(), sort_keys=True, default=str)` over the whole DB, so 2 and 2.0 differ,
as do True and 1. Comparing the same canonical JSON of each touched record is equivalent, because
untouched records are identical in both states; `full_hash` computes the official hash itself.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

TABLES = ("flights", "users", "reservations")
_MISSING = object()


def canonical(obj: Any) -> str:
    """The official evaluator's serialization (sorted keys, str() for anything exotic)."""
    return json.dumps(obj, sort_keys=True, default=str)


# Field order of upstream's models (data_model.py), i.e. the key order of their model_dump().
_FLIGHT_KEYS = ("flight_number", "origin", "destination", "scheduled_departure_time_est",
                "scheduled_arrival_time_est", "dates")  # fmt: skip
_RESERVATION_FLIGHT_KEYS = ("flight_number", "origin", "destination", "date", "price")
_USER_KEYS = ("user_id", "name", "address", "email", "dob", "payment_methods", "saved_passengers",
              "membership", "reservations")  # fmt: skip
_ADDRESS_KEYS = ("address1", "address2", "city", "country", "state", "zip")
_RESERVATION_KEYS = ("reservation_id", "user_id", "origin", "destination", "flight_type", "cabin",
                     "flights", "passengers", "payment_history", "created_at", "total_baggages",
                     "nonfree_baggages", "insurance", "status")  # fmt: skip


def _ordered(record: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The record with `keys` first, in that order (any other key after them, as found)."""
    if list(record)[: len(keys)] == list(keys):
        return record
    out = {k: record[k] for k in keys if k in record}
    out.update((k, v) for k, v in record.items() if k not in out)
    return out


def _normalize(db: dict[str, Any]) -> None:
    """Fill optional fields, fix numeric types and order keys as upstream's models would on load."""
    flights = db["flights"]
    for number, flight in flights.items():
        flights[number] = _ordered(flight, _FLIGHT_KEYS)
    users = db["users"]
    for user_id, user in users.items():
        user["address"].setdefault("address2", None)
        user["address"] = _ordered(user["address"], _ADDRESS_KEYS)
        for method in user["payment_methods"].values():
            if method.get("source") in ("gift_card", "certificate"):
                method["amount"] = float(method["amount"])
        users[user_id] = _ordered(user, _USER_KEYS)
    reservations = db["reservations"]
    for res_id, res in reservations.items():
        res.setdefault("status", None)
        for p in res["payment_history"]:
            p["amount"] = int(p["amount"])
        res["flights"] = [_ordered(f, _RESERVATION_FLIGHT_KEYS) for f in res["flights"]]
        for f in res["flights"]:
            f["price"] = int(f["price"])
        reservations[res_id] = _ordered(res, _RESERVATION_KEYS)


class AirlineDB:
    """The untouched database, shared read-only by every episode in the process."""

    def __init__(self, tables: dict[str, dict[str, Any]]):
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise ValueError(f"airline db.json lacks table(s): {', '.join(missing)}")
        _normalize(tables)
        self.tables = tables
        self._record_canon: dict[tuple[str, str], str] = {}
        self._hash: str | None = None

    @classmethod
    def from_file(cls, path: Path) -> AirlineDB:
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def record_canonical(self, table: str, key: str) -> str:
        """Canonical JSON of a base record (cached: base records never change)."""
        k = (table, key)
        if k not in self._record_canon:
            self._record_canon[k] = canonical(self.tables[table].get(key))
        return self._record_canon[k]

    def full_hash(self) -> str:
        if self._hash is None:
            self._hash = hashlib.sha256(canonical(self.tables).encode()).hexdigest()
        return self._hash

    def new_state(self) -> AirlineState:
        return AirlineState(self)


class AirlineState:
    """One episode's database: the shared base plus the records this episode wrote.

    Tools read with `get` (never mutate what it returns) and write through `edit` (copy on
    first write) or `add` (a new record).
    """

    __slots__ = ("base", "changed")

    def __init__(self, base: AirlineDB):
        self.base = base
        self.changed: dict[str, dict[str, Any]] = {t: {} for t in TABLES}

    def get(self, table: str, key: Any) -> Any:
        """The current record, or None. Raises TypeError for an unhashable key (a bad call)."""
        changed = self.changed[table]
        if key in changed:
            return changed[key]
        return self.base.tables[table].get(key)

    def has(self, table: str, key: Any) -> bool:
        return key in self.changed[table] or key in self.base.tables[table]

    def edit(self, table: str, key: str) -> Any:
        """The record, made private to this state on first write."""
        changed = self.changed[table]
        if key not in changed:
            changed[key] = copy.deepcopy(self.base.tables[table][key])
        return changed[key]

    def add(self, table: str, key: str, record: dict[str, Any]) -> None:
        self.changed[table][key] = record

    def table_keys(self, table: str):
        """Keys in base order, then keys this state added."""
        base = self.base.tables[table]
        yield from base
        for key in self.changed[table]:
            if key not in base:
                yield key

    def record_canonical(self, table: str, key: str) -> str:
        changed = self.changed[table]
        if key in changed:
            return canonical(changed[key])
        return self.base.record_canonical(table, key)

    def touched(self) -> set[tuple[str, str]]:
        return {(t, k) for t in TABLES for k in self.changed[t]}

    def diff(self, other: AirlineState) -> list[tuple[str, str]]:
        """Records whose canonical JSON differs between two states of the same base."""
        assert self.base is other.base, "states of different databases cannot be compared"
        keys = self.touched() | other.touched()
        return sorted(k for k in keys if self.record_canonical(*k) != other.record_canonical(*k))

    def equals(self, other: AirlineState) -> bool:
        return not self.diff(other)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The whole database as dicts (shallow per table; for hashing and export only)."""
        out = {}
        for t in TABLES:
            table = dict(self.base.tables[t])
            table.update(self.changed[t])
            out[t] = table
        return out

    def full_hash(self) -> str:
        """The official full-DB hash: sha256 of the canonical JSON of the whole database."""
        if not any(self.changed.values()):
            return self.base.full_hash()
        return hashlib.sha256(canonical(self.snapshot()).encode()).hexdigest()


_LOCK = threading.Lock()
_CACHE: dict[Path, AirlineDB] = {}


def load_db(path: Path) -> AirlineDB:
    """Parse db.json once per process (per resolved path); later calls return the same DB."""
    path = Path(path).resolve()
    with _LOCK:
        db = _CACHE.get(path)
        if db is None:
            db = _CACHE[path] = AirlineDB.from_file(path)
        return db
