"""A hold -> confirm -> cancel flow with a client generated from booking-shard/openapi.json
by openapi-python-client (run by tests/generated_client.rs against a real shard).

usage: python generated_client.py CLIENT_PARENT_DIR BASE_URL SHOW TOKEN OTHER_TOKEN
"""
import sys

sys.path.insert(0, sys.argv[1])

from boxoffice_client import AuthenticatedClient, Client  # noqa: E402
from boxoffice_client.api.bookings import cancel_booking, get_booking  # noqa: E402
from boxoffice_client.api.holds import confirm_hold, create_hold, get_hold  # noqa: E402
from boxoffice_client.api.show import get_seat_map, get_show  # noqa: E402
from boxoffice_client.models import (  # noqa: E402
    BestHold,
    BestRequest,
    BookingView,
    ConfirmRequest,
    ErrorBody,
    ErrorCode,
    HoldStatus,
    HoldView,
    SeatMap,
    SeatsHold,
    ShowSummary,
)

base, show, token, other_token = sys.argv[2:6]
anonymous = Client(base_url=base, raise_on_unexpected_status=True)
me = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
other = AuthenticatedClient(base_url=base, token=other_token, raise_on_unexpected_status=True)

summary = get_show.sync(show, client=anonymous)
assert isinstance(summary, ShowSummary), summary
assert summary.name == show, summary

# Hold two seats (typed request body, idempotency header), then read it back.
hold = create_hold.sync(
    show, client=me, body=SeatsHold(seats=["main:A:1", "main:A:2"]), idempotency_key="generated-1"
)
assert isinstance(hold, HoldView), hold
assert hold.status == HoldStatus.HELD and hold.seats == ["main:A:1", "main:A:2"], hold
again = create_hold.sync_detailed(
    show, client=me, body=SeatsHold(seats=["main:A:1", "main:A:2"]), idempotency_key="generated-1"
)
assert again.status_code == 200 and again.parsed.id == hold.id, again

# The seats are taken for anyone else: a typed error with the stable code.
taken = create_hold.sync_detailed(show, client=other, body=SeatsHold(seats=["main:A:2"]))
assert taken.status_code == 409 and isinstance(taken.parsed, ErrorBody), taken
assert taken.parsed.error.code == ErrorCode.SEATS_UNAVAILABLE, taken.parsed
assert taken.parsed.error.seats == ["main:A:2"], taken.parsed

# Confirm: a booking with its ticket; the hold now points to it.
booking = confirm_hold.sync(
    show, hold.id, client=me, body=ConfirmRequest(payment_reference="generated-pay")
)
assert isinstance(booking, BookingView), booking
assert booking.status == "confirmed" and booking.hold_id == hold.id, booking
assert sorted(booking.seats) == ["main:A:1", "main:A:2"], booking
assert isinstance(booking.ticket, str) and booking.ticket, booking
gone = get_hold.sync_detailed(show, hold.id, client=me)
assert gone.status_code == 410 and isinstance(gone.parsed, ErrorBody), gone
assert gone.parsed.error.code == ErrorCode.HOLD_CONFIRMED, gone.parsed
assert gone.parsed.error.booking == booking.reference, gone.parsed
found = get_booking.sync(show, gone.parsed.error.booking, client=me)
assert isinstance(found, BookingView) and found.id == booking.id, found

seat_map = get_seat_map.sync(show, client=anonymous)
assert isinstance(seat_map, SeatMap), seat_map
assert seat_map.sections[0].rows[0].seats == "SS", seat_map

# Cancel: the seats go back on sale; best available can take them again.
cancelled = cancel_booking.sync(show, booking.reference, client=me)
assert isinstance(cancelled, BookingView) and cancelled.status == "cancelled", cancelled
best = create_hold.sync(show, client=other, body=BestHold(best=BestRequest(quantity=2)))
assert isinstance(best, HoldView) and best.seats == ["main:A:1", "main:A:2"], best

print("generated client: hold -> confirm -> cancel passed")
