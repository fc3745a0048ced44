-- The Idempotency-Key of the request that checked a booking in: a retry of that same
-- request gets the first answer; any other second check-in is refused.
ALTER TABLE bookings ADD COLUMN check_in_key TEXT;
