//! Unit tests of the inventory.

use super::*;
use boxoffice_crds::seating::{AreaLayout, RowLayout, SectionLayout};

fn layout() -> VenueLayout {
    VenueLayout {
        sections: vec![
            SectionLayout {
                name: "stalls".into(),
                category: "premium".into(),
                rows: vec![
                    RowLayout {
                        name: "A".into(),
                        seats: 5,
                    },
                    RowLayout {
                        name: "B".into(),
                        seats: 6,
                    },
                ],
            },
            SectionLayout {
                name: "circle".into(),
                category: "standard".into(),
                rows: vec![RowLayout {
                    name: "A".into(),
                    seats: 4,
                }],
            },
        ],
        areas: vec![AreaLayout {
            name: "standing".into(),
            category: "standard".into(),
            capacity: 10,
        }],
    }
}

fn invariant(inv: &Inventory) {
    let c = inv.counts();
    assert_eq!(c.available + c.held + c.sold, c.total, "{c:?}");
    for i in 0..inv.sections().len() {
        let c = inv.section_counts(i);
        assert_eq!(c.available + c.held + c.sold, c.total, "{c:?}");
    }
}

#[test]
fn seat_ids_map_to_indices_and_back() {
    let inv = Inventory::new(&layout());
    assert_eq!(inv.seat_count(), 15);
    for i in 0..15 {
        let id = inv.seat_id(i);
        assert_eq!(inv.seat_index(&id), Some(i), "{id}");
    }
    assert_eq!(inv.seat_id(5).to_string(), "stalls:B:1");
    assert_eq!(inv.seat_id(11).to_string(), "circle:A:1");
    assert_eq!(inv.seat_index(&SeatId::new("stalls", "A", 6)), None);
    assert_eq!(inv.seat_index(&SeatId::new("stalls", "C", 1)), None);
    assert_eq!(inv.seat_index(&SeatId::new("nowhere", "A", 1)), None);
}

#[test]
fn holds_conflict_and_release() {
    let mut inv = Inventory::new(&layout());
    inv.hold_seats(0, &[0, 1]).unwrap();
    assert_eq!(inv.hold_seats(1, &[1, 2]), Err(Unavailable::Seats(vec![1])));
    assert_eq!(
        inv.state(2),
        SeatState::Available,
        "failed hold changes nothing"
    );
    assert!(
        inv.hold_seats(1, &[2, 2]).is_err(),
        "a seat twice in one hold"
    );
    invariant(&inv);
    assert_eq!(inv.counts().held, 2);
    inv.release(0, &Holding::Seats(vec![0, 1]));
    assert_eq!(inv.counts().held, 0);
    inv.hold_seats(1, &[1, 2]).unwrap();
    // Releasing a stale slot does not free another hold's seats.
    inv.release(0, &Holding::Seats(vec![1]));
    assert_eq!(inv.state(1), SeatState::Held(1));
    inv.sell(&Holding::Seats(vec![1, 2]));
    assert_eq!(inv.counts().sold, 2);
    invariant(&inv);
    inv.unsell(&Holding::Seats(vec![1, 2]));
    assert_eq!(inv.counts().available, inv.counts().total);
}

#[test]
fn general_admission_never_exceeds_capacity() {
    let mut inv = Inventory::new(&layout());
    inv.hold_general(0, 6).unwrap();
    assert_eq!(
        inv.hold_general(0, 5),
        Err(Unavailable::General {
            area: "standing".into(),
            available: 4
        })
    );
    inv.hold_general(0, 4).unwrap();
    inv.sell(&Holding::General {
        area: 0,
        quantity: 4,
    });
    assert_eq!(inv.areas()[0].available(), 0);
    invariant(&inv);
}

#[test]
fn best_available_avoids_orphans() {
    let mut inv = Inventory::new(&layout());
    // Row A has 5 seats; taking 4 would leave one orphan, so row B is used.
    assert_eq!(
        inv.best_available(Some("stalls"), None, 4),
        Some(vec![5, 6, 7, 8])
    );
    // Taking 5 fills row A exactly.
    assert_eq!(
        inv.best_available(Some("stalls"), None, 5),
        Some(vec![0, 1, 2, 3, 4])
    );
    // By category.
    assert_eq!(
        inv.best_available(None, Some("standard"), 2),
        Some(vec![11, 12])
    );
    // Only orphaning placements left: used as a fallback.
    inv.hold_seats(0, &[5, 6, 7, 8, 9, 10]).unwrap();
    inv.hold_seats(1, &[11, 12, 13, 14]).unwrap();
    assert_eq!(
        inv.best_available(Some("stalls"), None, 4),
        Some(vec![0, 1, 2, 3])
    );
    assert_eq!(inv.best_available(Some("stalls"), None, 6), None);
    assert_eq!(inv.best_available(None, None, 0), None);
}

#[test]
fn memory_is_compact() {
    let layout = VenueLayout {
        sections: (0..50)
            .map(|i| SectionLayout {
                name: format!("s{i}"),
                category: "c".into(),
                rows: (1..=32)
                    .map(|r| RowLayout {
                        name: r.to_string(),
                        seats: 50,
                    })
                    .collect(),
            })
            .collect(),
        areas: vec![],
    };
    let inv = Inventory::new(&layout);
    assert_eq!(inv.seat_count(), 80_000);
    assert!(inv.approx_bytes() / inv.seat_count() < 100);
}
