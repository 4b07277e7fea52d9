"""The project's own descriptions of the 14 airline tools, used only when tools.json is absent.

Same names, parameters, types and required lists as the official environment emits; the prose
is ours. The run manifest records which set was used (`tool_descriptions`: official | project).
Either set is presented in upstream's order (`in_official_order`): the toolkit's declaration
order, which ends with get_flight_status.
"""

from __future__ import annotations

from typing import Any

from harness.airline.tools import TOOLS


def _s(desc: str) -> dict[str, Any]:
    return {"type": "string", "description": desc}


def _i(desc: str) -> dict[str, Any]:
    return {"type": "integer", "description": desc}


def _obj(desc: str, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "array",
        "description": desc,
        "items": {"type": "object", "properties": props, "required": list(props)},
    }


_FLIGHT = {"flight_number": _s("Flight number, e.g. 'HAT001'."), "date": _s("Flight date, YYYY-MM-DD.")}
_PASSENGER = {
    "first_name": _s("First name."),
    "last_name": _s("Last name."),
    "dob": _s("Date of birth, YYYY-MM-DD."),
}
_PAYMENT = {"payment_id": _s("Payment method id from the user's profile."), "amount": _i("Amount in dollars.")}
_CABIN = {"type": "string", "enum": ["business", "economy", "basic_economy"], "description": "Cabin class."}
_RES = _s("Reservation id, six characters, e.g. 'ZFA04Y'.")
_USER = _s("User id, e.g. 'sara_doe_496'.")
_AIRPORT = "Three-letter IATA airport code"

_TOOLS: list[tuple[str, str, dict[str, Any]]] = [
    ("book_reservation", "Create a new reservation for a user and charge the given payment methods.", {
        "user_id": _USER,
        "origin": _s(f"{_AIRPORT} where the trip starts."),
        "destination": _s(f"{_AIRPORT} where the trip ends."),
        "flight_type": {"type": "string", "enum": ["round_trip", "one_way"], "description": "Trip type."},
        "cabin": _CABIN,
        "flights": _obj("Every flight segment of the reservation.", _FLIGHT),
        "passengers": _obj("Every passenger travelling.", _PASSENGER),
        "payment_methods": _obj("Payments; their amounts must add up to the total price.", _PAYMENT),
        "total_baggages": _i("Number of checked bags in total."),
        "nonfree_baggages": _i("Number of checked bags that are paid for."),
        "insurance": {"type": "string", "enum": ["yes", "no"], "description": "Travel insurance."},
    }),
    ("calculate", "Evaluate an arithmetic expression of numbers, + - * /, parentheses and spaces.", {
        "expression": _s("The expression, e.g. '(120 + 35) * 2'."),
    }),
    ("cancel_reservation", "Cancel a whole reservation and refund its payments.", {"reservation_id": _RES}),
    ("get_reservation_details", "Look up a reservation.", {"reservation_id": _RES}),
    ("get_user_details", "Look up a user's profile, payment methods and reservations.", {"user_id": _USER}),
    ("list_all_airports", "List every airport served, with its city.", {}),
    ("search_direct_flight", "Find bookable direct flights between two airports on a date.", {
        "origin": _s(f"{_AIRPORT} of departure."),
        "destination": _s(f"{_AIRPORT} of arrival."),
        "date": _s("Departure date, YYYY-MM-DD."),
    }),
    ("search_onestop_flight", "Find bookable connections with one stop between two airports on a date.", {
        "origin": _s(f"{_AIRPORT} of departure."),
        "destination": _s(f"{_AIRPORT} of arrival."),
        "date": _s("Departure date, YYYY-MM-DD."),
    }),
    ("send_certificate", "Issue a travel certificate to a user. Use with care.", {
        "user_id": _USER, "amount": _i("Certificate value in dollars."),
    }),
    ("transfer_to_human_agents", "Hand the user over to a human agent, with a summary of the issue. "
     "Only when the user asks for one, or the policy and tools cannot solve the issue.", {
        "summary": _s("Summary of the user's issue."),
    }),
    ("update_reservation_baggages", "Change the checked-bag counts of a reservation.", {
        "reservation_id": _RES,
        "total_baggages": _i("New number of checked bags in total."),
        "nonfree_baggages": _i("New number of paid checked bags."),
        "payment_id": _s("Payment method id from the user's profile."),
    }),
    ("update_reservation_flights", "Replace the flights (and cabin) of a reservation. List every "
     "segment of the new itinerary, unchanged ones included.", {
        "reservation_id": _RES,
        "cabin": _CABIN,
        "flights": _obj("Every flight segment of the updated reservation.", _FLIGHT),
        "payment_id": _s("Payment method id from the user's profile."),
    }),
    ("update_reservation_passengers", "Replace the passenger details of a reservation (same count).", {
        "reservation_id": _RES,
        "passengers": _obj("Every passenger, in order.", _PASSENGER),
    }),
    ("get_flight_status", "Look up the status of one flight on one date.", {
        "flight_number": _s("Flight number."), "date": _s("Flight date, YYYY-MM-DD."),
    }),
]  # fmt: skip


def project_tool_schemas() -> list[dict[str, Any]]:
    """OpenAI function schemas for the 14 tools, in the project's own words."""
    out = []
    for name, desc, props in _TOOLS:
        params: dict[str, Any] = {"type": "object", "properties": props}
        if props:
            params["required"] = list(props)
        out.append({"type": "function", "function": {"name": name, "description": desc, "parameters": params}})
    return out


def in_official_order(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schemas in the order the official environment lists its tools (that of
    `tools.TOOLS`); a name it does not know goes last, in the given order."""
    rank = {name: i for i, name in enumerate(TOOLS)}
    return sorted(schemas, key=lambda s: rank.get(s.get("function", s).get("name"), len(rank)))
