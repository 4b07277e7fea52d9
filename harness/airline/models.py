"""Pydantic models for the records the write tools build anew.

Upstream builds new reservations, payments, passengers and flight entries as pydantic models, so
their fields take the declared types under pydantic's lax coercion (100.0 -> 100, "2" -> 2,
2.5 -> error). Using pydantic here reproduces that exactly, error text included (the class
names are upstream's). Field order is upstream's: it is the key order of the JSON the agent reads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

CabinClass = Literal["business", "economy", "basic_economy"]
FlightType = Literal["round_trip", "one_way"]
Insurance = Literal["yes", "no"]


class FlightInfo(BaseModel):
    flight_number: str
    date: str


class Passenger(BaseModel):
    first_name: str
    last_name: str
    dob: str


class Payment(BaseModel):
    payment_id: str
    amount: int


class ReservationFlight(BaseModel):
    flight_number: str
    origin: str
    destination: str
    date: str
    price: int


class Reservation(BaseModel):
    reservation_id: str
    user_id: str
    origin: str
    destination: str
    flight_type: FlightType
    cabin: CabinClass
    flights: list[ReservationFlight]
    passengers: list[Passenger]
    payment_history: list[Payment]
    created_at: str
    total_baggages: int
    nonfree_baggages: int
    insurance: Insurance
    status: Literal["cancelled"] | None = None


class Certificate(BaseModel):
    source: Literal["certificate"]
    id: str
    amount: float
