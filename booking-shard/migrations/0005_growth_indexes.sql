-- Indexes for a database that keeps every show's bookings for weeks: each query the
-- shard runs reads one show's rows through an index, never a scan of every show's
-- (booking-shard/tests/growth.rs checks it with pg_stat_user_tables).

-- A leader's load reads the show's confirmed general-admission tickets; the primary
-- key (booking_id, area) cannot find them by show.
CREATE INDEX booking_general_show_confirmed
    ON booking_general (show) WHERE status = 'confirmed';

-- "My bookings", newest first and paged by (created_at, reference): the page is read
-- from the index in order instead of sorting every booking the user ever made.
CREATE INDEX bookings_show_user_newest
    ON bookings (show, user_id, created_at DESC, reference DESC);
DROP INDEX bookings_show_user;
