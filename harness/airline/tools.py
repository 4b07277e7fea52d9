"""The 14 τ³-airline agent tools over an `AirlineState`, with upstream's semantics and quirks.

Each tool mirrors the official tau2-bench airline toolkit (commit a2c024725189) step by step,
because the order of checks and writes decides the DB end state on bad calls: e.g. paying twice
with one certificate in `book_reservation` removes it and then fails, leaving the DB changed,
exactly as upstream does. Arguments arrive as parsed JSON and are used as given (no coercion),
except where upstream builds a new record through a pydantic model (see models.py).

What the agent reads is byte-identical to the official environment's tool message:
- the tools are methods of a class named `AirlineTools`, declared in upstream's order (the
  order of the tool list) with upstream's parameter names, so Python's own argument errors
  read the same ("AirlineTools.send_certificate() missing 1 required positional argument:
  'amount'");
- arguments are first bound to the official runner's signature
  `Environment.make_tool_call(self, tool_name, requestor="assistant", **kwargs)`, so an
  argument named `self`, `tool_name` or `requestor` fails there, with its wording;
- records are JSON in the key order upstream's models dump (db.py keeps the DB in that order),
  with `json.dumps` defaults; a failed call is `Error: <exception text>`.

`call_tool` is the one entry point: any bad call (unknown tool, arguments that are not an
object, missing or mistyped arguments, a failed check) returns `Error: <message>` flagged as an
error and never raises.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel

from harness.airline import calculator, models
from harness.airline.db import AirlineState

NOW = "2024-05-15T15:00:00"
NEW_RESERVATION_IDS = ("HATHAT", "HATHAU", "HATHAV")
NEW_CERTIFICATE_IDS = ("certificate_3221322", "certificate_3221323", "certificate_3221324")

AIRPORTS = (
    ("SFO", "San Francisco"), ("JFK", "New York"), ("LAX", "Los Angeles"), ("ORD", "Chicago"),
    ("DFW", "Dallas"), ("DEN", "Denver"), ("SEA", "Seattle"), ("ATL", "Atlanta"),
    ("MIA", "Miami"), ("BOS", "Boston"), ("PHX", "Phoenix"), ("IAH", "Houston"),
    ("LAS", "Las Vegas"), ("MCO", "Orlando"), ("EWR", "Newark"), ("CLT", "Charlotte"),
    ("MSP", "Minneapolis"), ("DTW", "Detroit"), ("PHL", "Philadelphia"), ("LGA", "LaGuardia"),
)  # fmt: skip


class ToolKind(StrEnum):
    READ = "read"
    WRITE = "write"
    GENERIC = "generic"


F = TypeVar("F", bound=Callable[..., Any])


def _tool(kind: ToolKind) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        fn.tool_kind = kind  # type: ignore[attr-defined]
        return fn

    return mark


# ---------------------------------------------------------------- lookups (raise ValueError)


def _user(db: AirlineState, user_id: Any) -> dict:
    user = db.get("users", user_id)
    if user is None:
        raise ValueError(f"User {user_id} not found")
    return user


def _reservation(db: AirlineState, reservation_id: Any) -> dict:
    res = db.get("reservations", reservation_id)
    if res is None:
        raise ValueError(f"Reservation {reservation_id} not found")
    return res


def _flight(db: AirlineState, flight_number: Any) -> dict:
    flight = db.get("flights", flight_number)
    if flight is None:
        raise ValueError(f"Flight {flight_number} not found")
    return flight


def _flight_date(db: AirlineState, flight_number: Any, date: Any) -> dict:
    flight = _flight(db, flight_number)
    if date not in flight["dates"]:
        raise ValueError(f"Flight {flight_number} not found on date {date}")
    return flight["dates"][date]


def _models(items: Any, model: type[BaseModel]) -> Any:
    """Upstream converts a list to models only when every item is a dict; otherwise it keeps
    the raw list (and fails later where an item is used)."""
    if all(isinstance(i, dict) for i in items):
        return [model(**i) for i in items]
    return items


def _direct_flights(
    db: AirlineState, date: Any, origin: Any = None, destination: Any = None, leave_after: Any = None
) -> list[dict]:
    results = []
    for number in db.table_keys("flights"):
        flight = db.get("flights", number)
        if origin is not None and flight["origin"] != origin:
            continue
        if destination is not None and flight["destination"] != destination:
            continue
        status = flight["dates"].get(date)
        if status is None or status["status"] != "available":
            continue
        if leave_after is not None and not flight["scheduled_departure_time_est"] >= leave_after:
            continue
        results.append(
            {
                "flight_number": flight["flight_number"],
                "origin": flight["origin"],
                "destination": flight["destination"],
                "status": "available",
                "scheduled_departure_time_est": flight["scheduled_departure_time_est"],
                "scheduled_arrival_time_est": flight["scheduled_arrival_time_est"],
                "date": None,
                "available_seats": dict(status["available_seats"]),
                "prices": dict(status["prices"]),
            }
        )
    return results


def _payment_for_update(db: AirlineState, user_id: str, payment_id: Any, total_price: Any) -> dict | None:
    """Check and take a payment for a change; returns the payment record or None when free."""
    user = db.get("users", user_id)
    if payment_id not in user["payment_methods"]:
        raise ValueError("Payment method not found")
    method = user["payment_methods"][payment_id]
    if method["source"] == "certificate":
        raise ValueError("Certificate cannot be used to update reservation")
    if method["source"] == "gift_card" and method["amount"] < total_price:
        raise ValueError("Gift card balance is not enough")
    if method["source"] == "gift_card":
        method = db.edit("users", user_id)["payment_methods"][payment_id]
        method["amount"] -= total_price
    if total_price != 0:
        return models.Payment(payment_id=payment_id, amount=total_price).model_dump()
    return None


class AirlineTools:
    """One episode's tools. Methods are declared in upstream's order: that is the order of the
    tool list the agent is shown, and the class name is part of Python's argument errors."""

    def __init__(self, db: AirlineState):
        self.db = db

    @_tool(ToolKind.WRITE)
    def book_reservation(
        self,
        user_id: str,
        origin: str,
        destination: str,
        flight_type: str,
        cabin: str,
        flights: list,
        passengers: list,
        payment_methods: list,
        total_baggages: int,
        nonfree_baggages: int,
        insurance: str,
    ) -> dict:
        db = self.db
        flights = _models(flights, models.FlightInfo)
        passengers = _models(passengers, models.Passenger)
        payment_methods = _models(payment_methods, models.Payment)
        user = _user(db, user_id)
        reservation_id = next((r for r in NEW_RESERVATION_IDS if not db.has("reservations", r)), None)
        if reservation_id is None:
            raise ValueError("Too many reservations")
        reservation = models.Reservation(
            reservation_id=reservation_id,
            user_id=user_id,
            origin=origin,
            destination=destination,
            flight_type=flight_type,
            cabin=cabin,
            flights=[],
            passengers=passengers,
            payment_history=payment_methods,
            created_at=NOW,
            total_baggages=total_baggages,
            nonfree_baggages=nonfree_baggages,
            insurance=insurance,
        )
        total_price = 0
        seat_updates: list[tuple[str, str]] = []
        for info in flights:
            flight = _flight(db, info.flight_number)
            status = _flight_date(db, info.flight_number, info.date)
            if status["status"] != "available":
                raise ValueError(f"Flight {info.flight_number} not available on date {info.date}")
            if status["available_seats"][cabin] < len(passengers):
                raise ValueError(f"Not enough seats on flight {info.flight_number}")
            price = status["prices"][cabin]
            reservation.flights.append(
                models.ReservationFlight(
                    flight_number=info.flight_number, origin=flight["origin"],
                    destination=flight["destination"], date=info.date, price=price,
                )
            )  # fmt: skip
            seat_updates.append((info.flight_number, info.date))
            total_price += price * len(passengers)
        if insurance == "yes":
            total_price += 30 * len(passengers)
        total_price += 50 * nonfree_baggages

        for payment in payment_methods:
            if payment.payment_id not in user["payment_methods"]:
                raise ValueError(f"Payment method {payment.payment_id} not found")
            method = user["payment_methods"][payment.payment_id]
            if method["source"] in ("gift_card", "certificate") and method["amount"] < payment.amount:
                raise ValueError(f"Not enough balance in payment method {payment.payment_id}")
        total_payment = sum(p.amount for p in payment_methods)
        if total_payment != total_price:
            raise ValueError(
                f"Payment amount does not add up, total price is {total_price}, but paid {total_payment}"
            )

        # All checks passed: take the money (a certificate listed twice fails here, after the
        # first removal, leaving the DB changed, as upstream does), then seats, then the record.
        user = db.edit("users", user_id)
        for payment in payment_methods:
            method = user["payment_methods"][payment.payment_id]
            if method["source"] == "gift_card":
                method["amount"] -= payment.amount
            elif method["source"] == "certificate":
                user["payment_methods"].pop(payment.payment_id)
        for number, date in seat_updates:
            db.edit("flights", number)["dates"][date]["available_seats"][cabin] -= len(passengers)
        record = reservation.model_dump()
        db.add("reservations", reservation_id, record)
        user["reservations"].append(reservation_id)
        return record

    @_tool(ToolKind.GENERIC)
    def calculate(self, expression: str) -> str:
        return calculator.calculate(expression)

    @_tool(ToolKind.WRITE)
    def cancel_reservation(self, reservation_id: str) -> dict:
        _reservation(self.db, reservation_id)
        res = self.db.edit("reservations", reservation_id)
        refunds = [
            models.Payment(payment_id=p["payment_id"], amount=-p["amount"]).model_dump()
            for p in res["payment_history"]
        ]
        res["payment_history"].extend(refunds)
        res["status"] = "cancelled"
        # Upstream does not release seats on cancellation.
        return res

    @_tool(ToolKind.READ)
    def get_reservation_details(self, reservation_id: str) -> dict:
        return _reservation(self.db, reservation_id)

    @_tool(ToolKind.READ)
    def get_user_details(self, user_id: str) -> dict:
        return _user(self.db, user_id)

    @_tool(ToolKind.READ)
    def list_all_airports(self) -> list[dict]:
        return [{"iata": code, "city": city} for code, city in AIRPORTS]

    @_tool(ToolKind.READ)
    def search_direct_flight(self, origin: str, destination: str, date: str) -> list[dict]:
        return _direct_flights(self.db, date=date, origin=origin, destination=destination)

    @_tool(ToolKind.READ)
    def search_onestop_flight(self, origin: str, destination: str, date: str) -> list[list[dict]]:
        results = []
        for leg1 in _direct_flights(self.db, date=date, origin=origin):
            leg1["date"] = date
            # Upstream quirk: the next day is written without zero padding ("2024-05-7").
            date2 = f"2024-05-{int(date[-2:]) + 1}" if "+1" in leg1["scheduled_arrival_time_est"] else date
            for leg2 in _direct_flights(
                self.db, date=date2, origin=leg1["destination"], destination=destination,
                leave_after=leg1["scheduled_arrival_time_est"],
            ):  # fmt: skip
                leg2["date"] = date2
                results.append([leg1, leg2])
        return results

    @_tool(ToolKind.WRITE)
    def send_certificate(self, user_id: str, amount: int) -> str:
        user = _user(self.db, user_id)
        for payment_id in NEW_CERTIFICATE_IDS:
            if payment_id not in user["payment_methods"]:
                cert = models.Certificate(id=payment_id, amount=amount, source="certificate").model_dump()
                self.db.edit("users", user_id)["payment_methods"][payment_id] = cert
                return f"Certificate {payment_id} added to user {user_id} with amount {amount}."
        raise ValueError("Too many certificates")

    @_tool(ToolKind.GENERIC)
    def transfer_to_human_agents(self, summary: str) -> str:
        return "Transfer successful"

    @_tool(ToolKind.WRITE)
    def update_reservation_baggages(
        self, reservation_id: str, total_baggages: int, nonfree_baggages: int, payment_id: str
    ) -> dict:
        db = self.db
        res = _reservation(db, reservation_id)
        _user(db, res["user_id"])
        total_price = 50 * max(0, nonfree_baggages - res["nonfree_baggages"])
        payment = _payment_for_update(db, res["user_id"], payment_id, total_price)
        res = db.edit("reservations", reservation_id)
        if payment is not None:
            res["payment_history"].append(payment)
        # Assigned as given: 2.0 stays 2.0 (and so changes the DB hash), as upstream.
        res["total_baggages"] = total_baggages
        res["nonfree_baggages"] = nonfree_baggages
        return res

    @_tool(ToolKind.WRITE)
    def update_reservation_flights(
        self, reservation_id: str, cabin: str, flights: list, payment_id: str
    ) -> dict:
        db = self.db
        flights = _models(flights, models.FlightInfo)
        res = _reservation(db, reservation_id)
        _user(db, res["user_id"])
        n_passengers = len(res["passengers"])
        total_price = 0
        new_flights = []
        for info in flights:
            kept = next(
                (
                    f for f in res["flights"]
                    if f["flight_number"] == info.flight_number and f["date"] == info.date and cabin == res["cabin"]
                ),
                None,
            )  # fmt: skip
            if kept is not None:
                total_price += kept["price"] * n_passengers
                new_flights.append(kept)
                continue
            flight = _flight(db, info.flight_number)
            status = _flight_date(db, info.flight_number, info.date)
            if status["status"] != "available":
                raise ValueError(f"Flight {info.flight_number} not available on date {info.date}")
            if status["available_seats"][cabin] < n_passengers:
                raise ValueError(f"Not enough seats on flight {info.flight_number}")
            entry = models.ReservationFlight(
                flight_number=info.flight_number, date=info.date, price=status["prices"][cabin],
                origin=flight["origin"], destination=flight["destination"],
            ).model_dump()  # fmt: skip
            total_price += entry["price"] * n_passengers
            new_flights.append(entry)
        total_price -= sum(f["price"] for f in res["flights"]) * n_passengers

        payment = _payment_for_update(db, res["user_id"], payment_id, total_price)
        res = db.edit("reservations", reservation_id)
        if payment is not None:
            res["payment_history"].append(payment)
        res["flights"] = [dict(f) for f in new_flights]
        res["cabin"] = cabin
        # Upstream changes no seat counts here.
        return res

    @_tool(ToolKind.WRITE)
    def update_reservation_passengers(self, reservation_id: str, passengers: list) -> dict:
        passengers = _models(passengers, models.Passenger)
        res = _reservation(self.db, reservation_id)
        if len(passengers) != len(res["passengers"]):
            raise ValueError("Number of passengers does not match")
        res = self.db.edit("reservations", reservation_id)
        # Stored as given when upstream could not build Passenger models from it: a string or
        # an object whose length matches the passenger count is stored as that string/object.
        if isinstance(passengers, list) and all(isinstance(p, BaseModel) for p in passengers):
            res["passengers"] = [p.model_dump() for p in passengers]
        else:
            res["passengers"] = copy.deepcopy(passengers)
        return res

    @_tool(ToolKind.READ)
    def get_flight_status(self, flight_number: str, date: str) -> str:
        return _flight_date(self.db, flight_number, date)["status"]


TOOLS: dict[str, ToolKind] = {
    name: fn.tool_kind for name, fn in vars(AirlineTools).items() if hasattr(fn, "tool_kind")
}
"""Tool name -> kind, in upstream's order (the order of the official tool list)."""
WRITE_TOOLS = frozenset(n for n, kind in TOOLS.items() if kind is ToolKind.WRITE)


class _OfficialRunner:
    """The official runner's entry point, kept for its signature only: upstream calls
    `make_tool_call(name, requestor=..., **arguments)`, so an argument named `self`,
    `tool_name` or `requestor` fails in that call, before any tool runs. Binding the same
    signature under the same names reproduces those errors word for word."""

    def make_tool_call(self, tool_name: str, requestor: str = "assistant", **kwargs: Any) -> dict[str, Any]:
        return kwargs


_OfficialRunner.make_tool_call.__qualname__ = "Environment.make_tool_call"
_OfficialRunner.make_tool_call.__module__ = "tau2.environment.environment"
_RUNNER = _OfficialRunner()


def to_text(result: Any) -> str:
    """Tool output as the agent sees it: a plain string as is, anything else as JSON with
    `json.dumps` defaults (", "/": " separators, ASCII escapes), as upstream serializes it."""
    if isinstance(result, str):
        return result
    return json.dumps(result, default=str)


def call_tool(db: AirlineState, name: str, arguments: Any) -> tuple[str, bool]:
    """Run one tool call; returns (text, is_error). Never raises."""
    if not isinstance(arguments, dict):
        # Upstream cannot get here (its runner fails on such a call); see README.
        return f"Error: arguments of {name} must be a JSON object, got {type(arguments).__name__}", True
    try:
        kwargs = _RUNNER.make_tool_call(name, requestor="assistant", **arguments)
        if not isinstance(name, str) or name not in TOOLS:
            raise ValueError(f"Tool '{name}' not found.")
        return to_text(getattr(AirlineTools(db), name)(**kwargs)), False
    except Exception as e:  # a bad call is the agent's error, reported back to it
        return f"Error: {e}", True
