//! The PostgreSQL store against a real server: the group commit of confirms, and what
//! each confirm of a group is answered when one of them is refused, and the outbox
//! rows' gapless sequence numbers.

use booking_shard::engine::{AuditRow, BookingState};
use booking_shard::store::{GeneralTickets, NewBooking, Store, StoreError};
use boxoffice_e2e::PostgresServer;
use futures::future::join_all;

const EPOCH: i64 = 7;

async fn store() -> Store {
    let pg = PostgresServer::shared().await.expect("postgres");
    let url = pg.create_database().await.expect("database");
    let store = Store::connect(&url, "tests/store", 8)
        .await
        .expect("connect");
    assert!(store.raise_epoch(EPOCH, "test").await.expect("epoch"));
    store
        .ensure_areas(&[("pit".to_string(), 10)])
        .await
        .expect("areas");
    store
}

fn seats(hold: &str, seats: &[&str]) -> NewBooking {
    NewBooking {
        audit: AuditRow {
            actor: format!("user-{hold}"),
            role: "user".into(),
            from: BookingState::Held,
            to: BookingState::Confirmed,
            action: "confirm".into(),
            reason: String::new(),
        },
        user: format!("user-{hold}"),
        hold_id: hold.to_string(),
        payment_reference: format!("pay-{hold}"),
        amount_minor: 1050 * seats.len() as i64,
        currency: "EUR".into(),
        seats: seats.iter().map(|s| s.to_string()).collect(),
        general: Vec::new(),
    }
}

fn tickets(hold: &str, quantity: i64) -> NewBooking {
    NewBooking {
        general: vec![GeneralTickets {
            area: "pit".into(),
            quantity,
        }],
        ..seats(hold, &[])
    }
}

/// Confirms all at once: on this (current-thread) runtime every one is queued before
/// the group commit runs, so they form one group.
async fn confirm_all(
    store: &Store,
    epoch: i64,
    news: &[NewBooking],
) -> Vec<Result<(booking_shard::store::Booking, bool), StoreError>> {
    join_all(news.iter().map(|n| store.confirm(epoch, n))).await
}

/// One number from the database.
async fn number(store: &Store, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Transactions that wrote the show's bookings (PostgreSQL's xmin of each row).
async fn transactions(store: &Store) -> i64 {
    number(store, "SELECT count(DISTINCT xmin::text) FROM bookings").await
}

/// The show's event sequence numbers, in order.
async fn sequence_numbers(store: &Store) -> Vec<i64> {
    sqlx::query_scalar("SELECT seq FROM booking_events ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .expect("sequence numbers")
}

#[tokio::test]
async fn confirms_queued_together_share_one_transaction() {
    let store = store().await;
    let news: Vec<NewBooking> = (0..20)
        .map(|i| {
            let a = format!("A:{}", 2 * i + 1);
            let b = format!("A:{}", 2 * i + 2);
            seats(&format!("h{i}"), &[&b, &a])
        })
        .chain([tickets("g1", 3), tickets("g2", 4)])
        .collect();
    let answers = confirm_all(&store, EPOCH, &news).await;
    let mut references = std::collections::HashSet::new();
    for (new, answer) in news.iter().zip(&answers) {
        let (booking, created) = answer.as_ref().expect("confirmed");
        assert!(created);
        assert_eq!(booking.hold_id, new.hold_id);
        assert_eq!(booking.user, new.user);
        let mut want = new.seats.clone();
        want.sort();
        assert_eq!(booking.seats, want);
        assert_eq!(booking.general, new.general);
        assert!(references.insert(booking.reference.clone()));
        // What the confirm answered is what was stored.
        let stored = store
            .booking(&booking.reference)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(&stored, booking);
    }
    assert_eq!(transactions(&store).await, 1, "one group, one transaction");
    let events = number(&store, "SELECT count(*) FROM booking_events").await;
    assert_eq!(events, 22);
    // Each booking's event in the same transaction, numbered 1..=22 without a gap.
    let outboxed = number(
        &store,
        "SELECT count(*) FROM booking_events e JOIN bookings b \
         ON e.booking_id = b.id AND e.xmin = b.xmin",
    )
    .await;
    assert_eq!(outboxed, 22);
    assert_eq!(sequence_numbers(&store).await, (1..=22).collect::<Vec<_>>());
    // Each booking's audit row, in the same transaction as the booking.
    let audited = number(
        &store,
        "SELECT count(*) FROM booking_audit a JOIN bookings b \
         ON a.hold_id = b.hold_id AND a.xmin = b.xmin WHERE a.to_state = 'confirmed'",
    )
    .await;
    assert_eq!(audited, 22);
    let sold = number(&store, "SELECT sold FROM general_sold WHERE area = 'pit'").await;
    assert_eq!(sold, 7);
}

#[tokio::test]
async fn a_refused_confirm_does_not_take_its_group_down() {
    let store = store().await;
    let first = confirm_all(&store, EPOCH, &[seats("first", &["B:1"])]).await;
    let (booked, _) = first.into_iter().next().unwrap().expect("first");

    // A seat sold already, a retry of the booked hold, GA beyond capacity, and
    // ordinary confirms, in one group.
    let news = vec![
        seats("ok-1", &["C:1"]),
        seats("stale", &["C:2", "B:1"]),
        seats("first", &["B:1"]),
        tickets("pit-1", 6),
        tickets("pit-2", 6),
        seats("ok-2", &["C:3"]),
    ];
    let answers = confirm_all(&store, EPOCH, &news).await;
    assert!(answers[0].as_ref().is_ok_and(|(_, created)| *created));
    match &answers[1] {
        Err(StoreError::SeatsTaken(seats)) => assert_eq!(seats, &vec!["B:1".to_string()]),
        other => panic!("a sold seat must be refused: {other:?}"),
    }
    let (again, created) = answers[2].as_ref().expect("retry answered");
    assert!(!created);
    assert_eq!(again, &booked);
    assert!(answers[3].as_ref().is_ok_and(|(_, created)| *created));
    match &answers[4] {
        Err(StoreError::OverCapacity(area)) => assert_eq!(area, "pit"),
        other => panic!("12 tickets in a 10-place area must be refused: {other:?}"),
    }
    assert!(answers[5].as_ref().is_ok_and(|(_, created)| *created));

    let seats_sold: Vec<String> = sqlx::query_scalar(
        "SELECT seat FROM booking_seats WHERE status = 'confirmed' ORDER BY seat",
    )
    .fetch_all(store.pool())
    .await
    .expect("seats");
    assert_eq!(seats_sold, ["B:1", "C:1", "C:3"]);
    let sold = number(&store, "SELECT sold FROM general_sold WHERE area = 'pit'").await;
    assert_eq!(sold, 6);
    let bookings = number(&store, "SELECT count(*) FROM bookings").await;
    assert_eq!(bookings, 4);
    // The refused ones left no audit row; each booking has exactly one.
    let audited = number(&store, "SELECT count(*) FROM booking_audit").await;
    assert_eq!(audited, 4);
    // The refused ones gave their event numbers back: the show's events are 1..=4.
    assert_eq!(sequence_numbers(&store).await, vec![1, 2, 3, 4]);
    assert_eq!(store.last_seq().await.expect("last"), 4);
}

#[tokio::test]
async fn a_deposed_leaders_group_is_fenced_whole() {
    let store = store().await;
    assert!(store.raise_epoch(EPOCH + 1, "newer").await.expect("raise"));
    let news = vec![seats("a", &["D:1"]), seats("b", &["D:2"]), tickets("c", 1)];
    for answer in confirm_all(&store, EPOCH, &news).await {
        assert!(
            matches!(answer, Err(StoreError::Fenced)),
            "a write with an old epoch must be fenced: {answer:?}"
        );
    }
    let bookings = number(&store, "SELECT count(*) FROM bookings").await;
    assert_eq!(bookings, 0);
    let audited = number(&store, "SELECT count(*) FROM booking_audit").await;
    assert_eq!(audited, 0, "a fenced write leaves no audit row");
    assert_eq!(
        store.last_seq().await.expect("last"),
        0,
        "nor an event number"
    );
}
