"""The write tools' money and seat rules and upstream quirks, one behaviour per test."""

from __future__ import annotations

import json

from harness.airline.tools import call_tool

USER = "mei_hernandez_8984"  # gold member: gift card 98.0, two 250.0 certificates, two credit cards
GIFT = "gift_card_5309492"
CERT = "certificate_7502997"
CARD = "credit_card_6082923"
RES = "R9QDGB"  # economy, 3 passengers, 4 segments, insured, paid 1911 by CARD
FLIGHT, DATE = "HAT271", "2024-05-26"  # ORD->PHL available: economy 174 (3 seats), basic 83, business 338

PAX = [{"first_name": "Mei", "last_name": "Hernandez", "dob": "1981-01-11"}]


def call(state, name, **args):
    text, error = call_tool(state, name, args)
    return (json.loads(text) if text.startswith(("{", "[")) else text), error


def book(state, **over):
    args = dict(
        user_id=USER, origin="ORD", destination="PHL", flight_type="one_way", cabin="economy",
        flights=[{"flight_number": FLIGHT, "date": DATE}], passengers=PAX,
        payment_methods=[{"payment_id": CARD, "amount": 174}], total_baggages=0,
        nonfree_baggages=0, insurance="no",
    )  # fmt: skip
    args.update(over)
    return call(state, "book_reservation", **args)


def test_book_charges_price_decrements_seats_and_links_user(state):
    res, err = book(state)
    assert not err
    assert res["reservation_id"] == "HATHAT" and res["created_at"] == "2024-05-15T15:00:00"
    assert res["flights"] == [{"origin": "ORD", "destination": "PHL", "flight_number": FLIGHT, "date": DATE, "price": 174}]
    assert state.get("flights", FLIGHT)["dates"][DATE]["available_seats"]["economy"] == 2
    assert state.get("users", USER)["reservations"][-1] == "HATHAT"
    assert state.get("reservations", "HATHAT")["status"] is None
    # Base DB untouched: the overlay copied what it wrote.
    assert state.base.tables["flights"][FLIGHT]["dates"][DATE]["available_seats"]["economy"] == 3


def test_book_ids_run_hathat_hathau_hathav_then_fail(state):
    ids = [book(state)[0]["reservation_id"], book(state)[0]["reservation_id"]]
    assert ids == ["HATHAT", "HATHAU"]
    assert book(state, cabin="business", payment_methods=[{"payment_id": CARD, "amount": 338}])[0]["reservation_id"] == "HATHAV"
    text, err = book(state, cabin="business", payment_methods=[{"payment_id": CARD, "amount": 338}])
    assert err and text == "Error: Too many reservations"


def test_book_price_includes_insurance_and_bags(state):
    # 2 passengers x 174 + 30 x 2 insurance + 50 x 1 non-free bag = 458
    two = PAX + [{"first_name": "Kevin", "last_name": "Smith", "dob": "2001-04-12"}]
    text, err = book(state, passengers=two, insurance="yes", nonfree_baggages=1, total_baggages=2,
                     payment_methods=[{"payment_id": CARD, "amount": 457}])  # fmt: skip
    assert err and "total price is 458, but paid 457" in text
    res, err = book(state, passengers=two, insurance="yes", nonfree_baggages=1, total_baggages=2,
                     payment_methods=[{"payment_id": CARD, "amount": 458}])  # fmt: skip
    assert not err and res["payment_history"] == [{"payment_id": CARD, "amount": 458}]


def test_book_not_enough_seats(state):
    four = PAX * 4
    text, err = book(state, passengers=four, payment_methods=[{"payment_id": CARD, "amount": 696}])
    assert err and text == f"Error: Not enough seats on flight {FLIGHT}"
    assert state.diff(state.base.new_state()) == []


def test_book_unavailable_flight(state, domain):
    flight = domain.db.tables["flights"]["HAT001"]
    date = next(d for d, s in flight["dates"].items() if s["status"] == "landed")
    text, err = book(state, origin="PHL", destination="LGA", flights=[{"flight_number": "HAT001", "date": date}])
    assert err and text == f"Error: Flight HAT001 not available on date {date}"


def test_book_gift_card_debited_and_certificate_removed(state):
    # 174 = 98 from the gift card + 76 from a 250 certificate (the remainder is forfeited).
    res, err = book(state, payment_methods=[{"payment_id": GIFT, "amount": 98}, {"payment_id": CERT, "amount": 76}])
    assert not err
    methods = state.get("users", USER)["payment_methods"]
    assert methods[GIFT]["amount"] == 0.0 and isinstance(methods[GIFT]["amount"], float)
    assert CERT not in methods


def test_book_gift_card_must_cover_its_amount(state):
    text, err = book(state, payment_methods=[{"payment_id": GIFT, "amount": 174}])
    assert err and text == f"Error: Not enough balance in payment method {GIFT}"


def test_book_unknown_payment_method(state):
    text, err = book(state, payment_methods=[{"payment_id": "credit_card_0", "amount": 174}])
    assert err and text == "Error: Payment method credit_card_0 not found"


def test_book_new_record_takes_declared_types(state):
    # Upstream builds the reservation through pydantic: 174.0 -> 174 and "0" -> 0.
    res, err = book(state, payment_methods=[{"payment_id": CARD, "amount": 174.0}], total_baggages="0")
    assert not err
    assert res["payment_history"][0]["amount"] == 174 and isinstance(res["payment_history"][0]["amount"], int)
    assert res["total_baggages"] == 0 and isinstance(res["total_baggages"], int)


def test_book_quirk_certificate_listed_twice_fails_after_removing_it(state):
    # Both lines pass the balance check (each 87 <= 250); the second removal raises KeyError
    # after the first removed the certificate: an error *and* a changed DB, as upstream.
    text, err = book(state, payment_methods=[{"payment_id": CERT, "amount": 87}, {"payment_id": CERT, "amount": 87}])
    assert err and text == f"Error: '{CERT}'"
    assert CERT not in state.get("users", USER)["payment_methods"]
    assert not state.has("reservations", "HATHAT")


def test_cancel_appends_negative_payments_keeps_seats(state):
    res, err = call(state, "cancel_reservation", reservation_id=RES)
    assert not err and res["status"] == "cancelled"
    assert res["payment_history"] == [{"payment_id": CARD, "amount": 1911}, {"payment_id": CARD, "amount": -1911}]
    assert state.touched() == {("reservations", RES)}  # no seats released


def test_update_flights_keeps_old_price_for_unchanged_segments(state):
    old = state.get("reservations", RES)["flights"]
    same = [{"flight_number": f["flight_number"], "date": f["date"]} for f in old]
    res, err = call(state, "update_reservation_flights", reservation_id=RES, cabin="economy", flights=same, payment_id=CARD)
    assert not err and res["flights"] == old
    assert res["payment_history"] == [{"payment_id": CARD, "amount": 1911}]  # zero charge: no record


def test_update_flights_cabin_change_reprices_and_charges_difference(state, domain):
    old = state.get("reservations", RES)["flights"]
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in old]
    new_prices = [domain.db.tables["flights"][f["flight_number"]]["dates"][f["date"]]["prices"]["business"] for f in old]
    expected = (sum(new_prices) - sum(f["price"] for f in old)) * 3
    res, err = call(state, "update_reservation_flights", reservation_id=RES, cabin="business", flights=flights, payment_id=CARD)
    assert not err and res["cabin"] == "business"
    assert [f["price"] for f in res["flights"]] == new_prices
    assert res["payment_history"][-1] == {"payment_id": CARD, "amount": expected}
    # Seat counts are not changed by an update.
    assert not any(t == "flights" for t, _ in state.touched())


def test_update_flights_refuses_certificate_and_short_gift_card(state):
    old = state.get("reservations", RES)["flights"]
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in old]
    text, err = call(state, "update_reservation_flights", reservation_id=RES, cabin="business", flights=flights, payment_id=CERT)
    assert err and text == "Error: Certificate cannot be used to update reservation"
    text, err = call(state, "update_reservation_flights", reservation_id=RES, cabin="business", flights=flights, payment_id=GIFT)
    assert err and text == "Error: Gift card balance is not enough"
    assert state.diff(state.base.new_state()) == []


def test_update_flights_negative_charge_is_recorded(state):
    old = state.get("reservations", RES)["flights"]
    flights = [{"flight_number": f["flight_number"], "date": f["date"]} for f in old]
    res, err = call(state, "update_reservation_flights", reservation_id=RES, cabin="basic_economy", flights=flights, payment_id=CARD)
    assert not err and res["payment_history"][-1]["amount"] < 0


def test_update_baggages_charges_only_added_nonfree_bags(state):
    res, err = call(state, "update_reservation_baggages", reservation_id=RES, total_baggages=3, nonfree_baggages=1, payment_id=GIFT)
    assert not err and res["payment_history"][-1] == {"payment_id": GIFT, "amount": 50}
    assert state.get("users", USER)["payment_methods"][GIFT]["amount"] == 48.0
    res, err = call(state, "update_reservation_baggages", reservation_id=RES, total_baggages=0, nonfree_baggages=0, payment_id=CARD)
    assert not err and len(res["payment_history"]) == 2  # removing bags charges 0: no record


def test_update_baggages_quirk_float_is_stored_as_given(state):
    res, err = call(state, "update_reservation_baggages", reservation_id=RES, total_baggages=2.0, nonfree_baggages=0, payment_id=CARD)
    assert not err and res["total_baggages"] == 2.0
    plain = state.base.new_state()
    call(plain, "update_reservation_baggages", reservation_id=RES, total_baggages=2, nonfree_baggages=0, payment_id=CARD)
    assert state.diff(plain) == [("reservations", RES)]  # 2.0 and 2 differ, as in the official hash


def test_update_passengers_count_must_match(state):
    text, err = call(state, "update_reservation_passengers", reservation_id=RES, passengers=PAX)
    assert err and text == "Error: Number of passengers does not match"
    new = [{"first_name": "A", "last_name": "B", "dob": "2000-01-01"}] * 3
    res, err = call(state, "update_reservation_passengers", reservation_id=RES, passengers=new)
    assert not err and res["passengers"] == new


def test_send_certificate_ids_and_float_amount(state):
    for suffix in ("22", "23", "24"):
        text, err = call(state, "send_certificate", user_id=USER, amount=100)
        assert not err and text == f"Certificate certificate_32213{suffix} added to user {USER} with amount 100."
    cert = state.get("users", USER)["payment_methods"]["certificate_3221322"]
    assert cert == {"source": "certificate", "id": "certificate_3221322", "amount": 100.0}
    text, err = call(state, "send_certificate", user_id=USER, amount=100)
    assert err and text == "Error: Too many certificates"


def test_calculate_rounds_and_refuses_letters(state):
    assert call(state, "calculate", expression="(174 + 30) * 2 / 3") == ("136.0", False)
    assert call(state, "calculate", expression="10 / 3") == ("3.33", False)
    text, err = call(state, "calculate", expression="__import__('os')")
    assert err and text == "Error: Invalid characters in expression"
    text, err = call(state, "calculate", expression="9**9**9**9")
    assert err


def test_read_tools(state):
    assert call(state, "get_flight_status", flight_number=FLIGHT, date=DATE) == ("available", False)
    airports, _ = call(state, "list_all_airports")
    assert len(airports) == 20 and airports[0] == {"iata": "SFO", "city": "San Francisco"}
    flights, _ = call(state, "search_direct_flight", origin="ORD", destination="PHL", date=DATE)
    assert any(f["flight_number"] == FLIGHT and f["prices"]["economy"] == 174 for f in flights)
    assert call(state, "transfer_to_human_agents", summary="x") == ("Transfer successful", False)
    text, err = call(state, "get_user_details", user_id="nobody")
    assert err and text == "Error: User nobody not found"


def test_onestop_next_day_is_written_without_zero_padding(state, domain):
    """Upstream builds the second leg's date as f"2024-05-{day + 1}": from the 5th it looks for
    "2024-05-6". The DB's dates are all padded, so we plant records to make the quirk visible."""
    flights = domain.db.tables["flights"]
    f = next(x for x in flights.values() if "+1" in x["scheduled_arrival_time_est"])
    g = next(x for x in flights.values() if x["origin"] == f["destination"] and x["destination"] != f["origin"])
    available = {"status": "available", "available_seats": {"basic_economy": 9, "economy": 9, "business": 9},
                 "prices": {"basic_economy": 50, "economy": 100, "business": 200}}  # fmt: skip
    state.edit("flights", f["flight_number"])["dates"]["2024-05-05"] = dict(available)
    state.edit("flights", g["flight_number"])["dates"]["2024-05-06"] = dict(available)

    def connections():
        pairs, err = call(state, "search_onestop_flight", origin=f["origin"], destination=g["destination"], date="2024-05-05")
        assert not err
        return [(p[0]["flight_number"], p[1]["flight_number"], p[1]["date"]) for p in pairs]

    assert not any(c[:2] == (f["flight_number"], g["flight_number"]) for c in connections())
    state.edit("flights", g["flight_number"])["dates"]["2024-05-6"] = dict(available)
    assert (f["flight_number"], g["flight_number"], "2024-05-6") in connections()
