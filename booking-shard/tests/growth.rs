//! PostgreSQL over weeks of selling: one database keeps every show's bookings, so each
//! query the shard runs must find its show's rows through an index, not by scanning
//! every show's. A real server holds past shows and a live show sold out to the size of
//! a venue; the shard's store then does what a leader and its users do (load the book,
//! confirm, read, page, cancel, check in, pay, read the trail), and PostgreSQL's own
//! counters (`pg_stat_user_tables`) must show no sequential scan of a growing table.

use booking_shard::engine::{AuditRow, BookingState};
use std::time::Duration;

use booking_shard::store::{GeneralTickets, NewBooking, Page, Store, Who};
use boxoffice_e2e::PostgresServer;
use sqlx::{Connection, PgConnection, Row};

const EPOCH: i64 = 3;
const LIVE: &str = "tests/growth";
/// Bookings of two seats for each show: 40,000 is a sold-out 80,000-seat stadium.
const BOOKINGS_PER_SHOW: i64 = 40_000;
const PAST_SHOWS: i64 = 4;

/// Tables that grow with every booking; small fixed-size ones (shows, show_leaders,
/// general_sold) may be scanned.
const GROWING: &[&str] = &[
    "bookings",
    "booking_seats",
    "booking_general",
    "booking_audit",
    "booking_events",
    "payment_intents",
    "payment_events",
];

/// Fills `show` with sold-out bookings the way the shard writes them: two seats each,
/// every tenth booking also with standing tickets, an audit row, an outbox row, a
/// payment intent and a provider event per booking.
async fn fill(db: &mut PgConnection, show: &str) {
    let statements = [
        "INSERT INTO shows (show) VALUES ($1) ON CONFLICT DO NOTHING",
        "INSERT INTO general_sold (show, area, capacity, sold) VALUES ($1, 'standing', 1000000, 0) \
         ON CONFLICT DO NOTHING",
        "INSERT INTO bookings (id, reference, show, user_id, status, hold_id, payment_reference, \
             amount_minor, currency, epoch, created_at) \
         SELECT $1 || '-b' || i, md5($1 || i), $1, 'user-' || (i % 5000), 'confirmed', \
             $1 || '-h' || i, 'pay', 2100, 'EUR', 1, now() - (i || ' s')::interval \
         FROM generate_series(1, $2::bigint) i",
        "INSERT INTO booking_seats (booking_id, show, seat, status) \
         SELECT $1 || '-b' || i, $1, 'main:' || i || ':' || n, 'confirmed' \
         FROM generate_series(1, $2::bigint) i, generate_series(1, 2) n",
        "INSERT INTO booking_general (booking_id, show, area, quantity, status) \
         SELECT $1 || '-b' || i, $1, 'standing', 2, 'confirmed' \
         FROM generate_series(10, $2::bigint, 10) i",
        "INSERT INTO booking_audit (show, hold_id, actor, role, from_state, to_state, action, epoch) \
         SELECT $1, $1 || '-h' || i, 'user-' || (i % 5000), 'user', 'held', 'confirmed', 'confirm', 1 \
         FROM generate_series(1, $2::bigint) i",
        "INSERT INTO booking_events (show, booking_id, kind, payload, epoch, seq) \
         SELECT $1, $1 || '-b' || i, 'confirmed', '{}'::jsonb, 1, i FROM generate_series(1, $2::bigint) i",
        "INSERT INTO event_sequences (show, last) VALUES ($1, $2) \
         ON CONFLICT (show) DO UPDATE SET last = EXCLUDED.last",
        "INSERT INTO payment_intents (id, show, hold_id, user_id, amount_minor, currency, seats, \
             quantity, expires_at, epoch) \
         SELECT $1 || '-pi' || i, $1, $1 || '-h' || i, 'user-' || (i % 5000), 2100, 'EUR', \
             ARRAY['main:' || i || ':1'], 1, now(), 1 FROM generate_series(1, $2::bigint) i",
        "INSERT INTO payment_events (show, provider, event_id, intent_id, kind, status, answer) \
         SELECT $1, 'sim', 'evt-' || i, $1 || '-pi' || i, 'payment.succeeded', 200, '{}'::jsonb \
         FROM generate_series(1, $2::bigint) i",
    ];
    for sql in statements {
        let q = sqlx::query(sql).bind(show);
        let q = if sql.contains("$2") {
            q.bind(BOOKINGS_PER_SHOW)
        } else {
            q
        };
        q.execute(&mut *db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Sequential scans of each growing table since the counters were reset.
async fn seq_scans(url: &str) -> Vec<(String, i64, i64)> {
    let mut db = PgConnection::connect(url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT relname::text, seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_user_tables \
         WHERE relname = ANY($1) ORDER BY relname",
    )
    .bind(GROWING)
    .fetch_all(&mut db)
    .await
    .expect("pg_stat_user_tables");
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// A new leader loads the book: it reads every row of its show once per term, so the
/// planner may rightly scan when the show is a large part of the table; what matters
/// is that the answer is the show's own.
async fn load(url: &str) {
    let store = Store::connect(url, LIVE, 1).await.expect("store");
    assert!(store.raise_epoch(EPOCH, "test").await.expect("epoch"));
    let sold = store.load_sold().await.expect("load");
    assert_eq!(
        sold.seats.len() as i64,
        2 * BOOKINGS_PER_SHOW,
        "the book loads"
    );
    assert_eq!(
        sold.general.get("standing"),
        Some(&(BOOKINGS_PER_SHOW / 10 * 2))
    );
    assert_eq!(sold.confirmed_holds.len() as i64, BOOKINGS_PER_SHOW);
    store.pool().close().await;
}

/// What the leader does for its users' requests, through the shard's store: each must
/// find its rows through an index however many bookings the database keeps.
async fn sell(url: &str) {
    let store = Store::connect(url, LIVE, 4).await.expect("store");

    let who = Who {
        actor: "user-7",
        role: "user",
    };
    let new = |hold: &str, seats: Vec<String>, general: Vec<GeneralTickets>| NewBooking {
        audit: AuditRow {
            actor: "user-7".into(),
            role: "user".into(),
            from: BookingState::Held,
            to: BookingState::Confirmed,
            action: "confirm".into(),
            reason: String::new(),
        },
        user: "user-7".into(),
        hold_id: hold.into(),
        payment_reference: "pay".into(),
        amount_minor: 2100,
        currency: "EUR".into(),
        seats,
        general,
    };
    let (booking, created) = store
        .confirm(
            EPOCH,
            &new("new-hold", vec!["extra:A:1".into()], Vec::new()),
        )
        .await
        .expect("confirm");
    assert!(created);
    let (_, created) = store
        .confirm(
            EPOCH,
            &new(
                "new-ga",
                Vec::new(),
                vec![GeneralTickets {
                    area: "standing".into(),
                    quantity: 2,
                }],
            ),
        )
        .await
        .expect("confirm GA");
    assert!(created);
    // A seat sold long ago is refused by the seat check, not by a scan.
    let taken = store
        .confirm(
            EPOCH,
            &new("late-hold", vec!["main:5:1".into()], Vec::new()),
        )
        .await;
    assert!(taken.is_err(), "a sold seat cannot be confirmed again");

    assert!(
        store
            .booking(&booking.reference)
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .booking_for_hold("new-hold")
            .await
            .expect("read")
            .is_some()
    );
    let (page, next) = store.bookings_of("user-7", None, 3).await.expect("page");
    assert_eq!(page.len(), 3);
    let next = next.expect("user-7 has more than one page");
    let (more, _) = store
        .bookings_of("user-7", Some(&next), 3)
        .await
        .expect("page 2");
    assert_eq!(more.len(), 3);
    let old = format!("{LIVE}-h7");
    let old_booking = store
        .booking_for_hold(&old)
        .await
        .expect("read")
        .expect("an old booking");
    store
        .check_in(EPOCH, &old_booking.reference, Some("door-1"), who)
        .await
        .expect("check in");
    store
        .cancel(EPOCH, &booking.reference, who)
        .await
        .expect("cancel");
    assert!(!store.history(&old).await.expect("history").is_empty());
    assert!(store.trail_state(&old).await.expect("trail").is_some());
    assert!(
        store
            .intent(&format!("{LIVE}-pi9"))
            .await
            .expect("intent")
            .is_some()
    );
    assert!(
        store
            .payment_event("sim", "evt-9")
            .await
            .expect("event")
            .is_some()
    );
    // The relay and the feed: a sink's cursor, the events after it, retention.
    let sink = "webhook:growth";
    let cursor = store.cursor(sink).await.expect("cursor");
    assert_eq!(cursor, 0);
    store
        .advance_cursor(EPOCH, sink, BOOKINGS_PER_SHOW - 5)
        .await
        .expect("advance");
    let Page::Events(events) = store
        .events_after(BOOKINGS_PER_SHOW - 5, 100)
        .await
        .expect("feed")
    else {
        panic!("nothing was pruned");
    };
    assert!(
        events.len() >= 5,
        "the last events and the new ones: {events:?}"
    );
    assert!(store.last_seq().await.expect("last") > BOOKINGS_PER_SHOW);
    let pruned = store
        .prune_events(EPOCH, &[sink.to_string()], Duration::from_secs(86_400))
        .await
        .expect("prune");
    assert_eq!(pruned, 0, "nothing is older than a day");
    // Stats reach the shared counters when a backend ends: close the store's
    // connections before reading them.
    store.pool().close().await;
}

async fn database() -> String {
    let pg = PostgresServer::shared().await.expect("postgres");
    let url = pg.create_database().await.expect("database");
    // Migrations first, then every show's bookings.
    Store::connect(&url, LIVE, 1).await.expect("migrate");
    let mut db = PgConnection::connect(&url).await.expect("connect");
    for past in 0..PAST_SHOWS {
        fill(&mut db, &format!("past/show-{past}")).await;
    }
    fill(&mut db, LIVE).await;
    sqlx::query("ANALYZE")
        .execute(&mut db)
        .await
        .expect("analyze");
    url
}

/// Bytes per booking of each table (with its indexes), for docs/reliability.md.
async fn print_sizes(url: &str) {
    let mut db = PgConnection::connect(url).await.expect("connect");
    let bookings: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings")
        .fetch_one(&mut db)
        .await
        .expect("count");
    let rows = sqlx::query(
        "SELECT relname::text, pg_total_relation_size(relid) FROM pg_stat_user_tables \
         WHERE relname = ANY($1) ORDER BY relname",
    )
    .bind(GROWING)
    .fetch_all(&mut db)
    .await
    .expect("sizes");
    for r in rows {
        let bytes: i64 = r.get(1);
        println!(
            "growth: {} {} bytes per booking",
            r.get::<String, _>(0),
            bytes / bookings.max(1)
        );
    }
}

async fn reset_counters(url: &str) {
    let mut db = PgConnection::connect(url).await.expect("connect");
    sqlx::query("SELECT pg_stat_reset()")
        .execute(&mut db)
        .await
        .expect("reset");
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_reads_one_shows_rows_through_an_index() {
    let url = database().await;
    print_sizes(&url).await;
    load(&url).await;
    reset_counters(&url).await;
    sell(&url).await;
    let scans = seq_scans(&url).await;
    println!("growth: {scans:?}");
    assert_eq!(scans.len(), GROWING.len(), "every growing table is counted");
    for (table, seq, idx) in &scans {
        assert_eq!(*seq, 0, "{table} was scanned sequentially: {scans:?}");
        assert!(*idx > 0, "{table} was not read: {scans:?}");
    }

    // Negative control: without the index that pages a user's bookings the same work
    // scans every show's bookings, and the check above sees it.
    let mut db = PgConnection::connect(&url).await.expect("connect");
    sqlx::query("DROP INDEX bookings_show_user_newest")
        .execute(&mut db)
        .await
        .expect("drop index");
    db.close().await.expect("close");
    // The same database again: clear what the first round wrote so it can repeat.
    let mut db = PgConnection::connect(&url).await.expect("connect");
    for sql in [
        "DELETE FROM booking_audit WHERE hold_id IN ('new-hold', 'new-ga')",
        "DELETE FROM event_cursors",
        "DELETE FROM booking_events WHERE booking_id IN \
             (SELECT id FROM bookings WHERE hold_id IN ('new-hold', 'new-ga'))",
        "DELETE FROM booking_seats WHERE booking_id IN \
             (SELECT id FROM bookings WHERE hold_id IN ('new-hold', 'new-ga'))",
        "DELETE FROM booking_general WHERE booking_id IN \
             (SELECT id FROM bookings WHERE hold_id IN ('new-hold', 'new-ga'))",
        "DELETE FROM bookings WHERE hold_id IN ('new-hold', 'new-ga')",
        "UPDATE bookings SET checked_in_at = NULL, check_in_key = NULL",
    ] {
        sqlx::query(sql).execute(&mut db).await.expect(sql);
    }
    db.close().await.expect("close");
    reset_counters(&url).await;
    sell(&url).await;
    let scans = seq_scans(&url).await;
    println!("growth without the index: {scans:?}");
    let bookings = scans
        .iter()
        .find(|(t, _, _)| t == "bookings")
        .expect("counted");
    assert!(
        bookings.1 > 0,
        "the check must see a missing index: {scans:?}"
    );
}
