//! The checker: what must hold of a history and the final PostgreSQL, etcd and shard
//! state, whatever the nemesis did.
//!
//! Unknown outcomes are treated honestly: an operation that timed out may or may not
//! have happened, so it is never counted as a success and never used as evidence of a
//! violation. A violation is only reported when it is certain: a hold was granted
//! somewhere between its invoke and its acknowledgement and lives at least until the
//! first of its expiry (minus a margin), its release or confirm being asked for (or for
//! ever, once its booking exists), so two acknowledged holds on one seat certainly
//! overlapped when each was acknowledged before the other's certain end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::history::{HoldGrant, Op, OpKind, Outcome};

/// A booking row read from PostgreSQL after the run.
#[derive(Debug, Clone)]
pub struct DbBooking {
    pub reference: String,
    pub hold_id: String,
    pub status: String,
    pub seats: Vec<String>,
    pub general: Vec<(String, i64)>,
}

/// One general-admission area as the final leader reports it.
#[derive(Debug, Clone)]
pub struct AreaState {
    pub name: String,
    pub capacity: i64,
    pub held: i64,
    pub sold: i64,
}

/// The state after the run, once faults are healed and every hold has expired.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    pub bookings: Vec<DbBooking>,
    /// Reserved seats by state in the final leader's seat map.
    pub map_sold: BTreeSet<String>,
    pub map_held: BTreeSet<String>,
    pub map_seats: usize,
    /// The show's total/available/held/sold.
    pub total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    pub areas: Vec<AreaState>,
    /// Keys left under the show's `holds/` and `seats/` prefixes in etcd.
    pub etcd_holds: usize,
    pub etcd_seat_locks: usize,
    /// References of the bookings whose `confirmed` event reached the campaign's
    /// webhook endpoint with a valid signature (None: no event sink in this run).
    pub delivered_confirmed: Option<BTreeSet<String>>,
}

/// Checks the history and the final state; returns every violation found.
pub fn check(ops: &[Op], fin: &FinalState, margin_ms: i64) -> Vec<String> {
    let mut v = Vec::new();
    let confirmed: Vec<&DbBooking> = fin
        .bookings
        .iter()
        .filter(|b| b.status == "confirmed")
        .collect();
    let by_hold: HashMap<&str, &DbBooking> =
        confirmed.iter().map(|b| (b.hold_id.as_str(), *b)).collect();
    let by_reference: HashMap<&str, &DbBooking> = fin
        .bookings
        .iter()
        .map(|b| (b.reference.as_str(), b))
        .collect();

    // 1. No seat confirmed twice; GA never above capacity (PostgreSQL).
    let mut seat_owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for b in &confirmed {
        for s in &b.seats {
            seat_owners.entry(s).or_default().push(&b.reference);
        }
    }
    for (seat, owners) in &seat_owners {
        if owners.len() > 1 {
            v.push(format!(
                "seat {seat} confirmed in {} bookings: {owners:?}",
                owners.len()
            ));
        }
    }
    let mut ga_sold: BTreeMap<&str, i64> = BTreeMap::new();
    for b in &confirmed {
        for (area, q) in &b.general {
            *ga_sold.entry(area).or_default() += q;
        }
    }
    for a in &fin.areas {
        let sold = ga_sold.get(a.name.as_str()).copied().unwrap_or(0);
        if sold > a.capacity {
            v.push(format!(
                "area {} sold {sold} > capacity {}",
                a.name, a.capacity
            ));
        }
    }

    // 2. Every acknowledged booking is in PostgreSQL, as acknowledged.
    let grants: HashMap<&str, (&Op, &HoldGrant)> = ops
        .iter()
        .filter_map(|o| o.grant.as_ref().map(|g| (g.id.as_str(), (o, g))))
        .collect();
    let mut acked_ref_of_hold: HashMap<&str, &str> = HashMap::new();
    let mut confirm_invoked: HashSet<&str> = HashSet::new();
    for o in ops {
        let OpKind::Confirm { hold } = &o.kind else {
            continue;
        };
        confirm_invoked.insert(hold);
        if o.outcome != Outcome::Ok {
            continue;
        }
        let Some(reference) = o.reference.as_deref() else {
            v.push(format!("acknowledged confirm without a reference: {o}"));
            continue;
        };
        if let Some(prev) = acked_ref_of_hold.insert(hold, reference)
            && prev != reference
        {
            v.push(format!(
                "hold {hold} acknowledged as two bookings {prev} and {reference}"
            ));
        }
        if let Some(delivered) = &fin.delivered_confirmed
            && !delivered.contains(reference)
        {
            v.push(format!(
                "acknowledged booking {reference} has no delivered confirmed event: {o}"
            ));
        }
        match by_reference.get(reference) {
            None => v.push(format!("acknowledged booking {reference} lost: {o}")),
            Some(b) if b.status != "confirmed" => v.push(format!(
                "acknowledged booking {reference} is {} in PostgreSQL",
                b.status
            )),
            Some(b) if b.hold_id != *hold => v.push(format!(
                "booking {reference} belongs to hold {} not {hold}",
                b.hold_id
            )),
            Some(_) => {}
        }
    }

    // 3. Every booking comes from a hold a client confirmed, with that hold's seats.
    for b in &fin.bookings {
        if !confirm_invoked.contains(b.hold_id.as_str()) {
            v.push(format!(
                "booking {} for hold {} that no client confirmed",
                b.reference, b.hold_id
            ));
        }
        if let Some((_, g)) = grants.get(b.hold_id.as_str()) {
            let mut want = g.seats.clone();
            want.sort();
            let mut got = b.seats.clone();
            got.sort();
            if want != got {
                v.push(format!(
                    "booking {} has seats {got:?}, its hold had {want:?}",
                    b.reference
                ));
            }
        }
    }

    // 4. No hold granted on a seat another live hold had, or on a sold seat.
    let end_of_certain_life = |g: &HoldGrant, granted: &Op| -> i64 {
        if by_hold.contains_key(g.id.as_str()) {
            return i64::MAX; // held, then sold for good
        }
        let mut end = g.expires_at - margin_ms;
        for o in ops {
            match &o.kind {
                OpKind::Confirm { hold } | OpKind::Release { hold }
                    if *hold == g.id && o.invoke >= granted.invoke =>
                {
                    end = end.min(o.invoke);
                }
                _ => {}
            }
        }
        end
    };
    struct Life<'a> {
        op: &'a Op,
        grant: &'a HoldGrant,
        from: i64,
        until: i64,
    }
    let lives: Vec<Life> = ops
        .iter()
        .filter(|o| o.outcome == Outcome::Ok)
        .filter_map(|o| o.grant.as_ref().map(|g| (o, g)))
        .map(|(op, grant)| Life {
            op,
            grant,
            from: op.complete,
            until: end_of_certain_life(grant, op),
        })
        .collect();
    let mut by_seat: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in lives.iter().enumerate() {
        for s in &l.grant.seats {
            by_seat.entry(s).or_default().push(i);
        }
    }
    // When each seat was certainly sold: the acknowledgement of its booking's confirm.
    let mut sold_at: HashMap<&str, (i64, &str)> = HashMap::new();
    for o in ops {
        if let (OpKind::Confirm { hold }, Outcome::Ok) = (&o.kind, &o.outcome)
            && let Some(b) = by_hold.get(hold.as_str())
        {
            for s in &b.seats {
                let e = sold_at.entry(s).or_insert((o.complete, hold));
                if o.complete < e.0 {
                    *e = (o.complete, hold);
                }
            }
        }
    }
    for (seat, holders) in &by_seat {
        for &b in holders {
            let later = &lives[b];
            for &a in holders {
                let earlier = &lives[a];
                if a == b || earlier.grant.id == later.grant.id {
                    continue;
                }
                // Each hold was granted at some point before its acknowledgement and
                // lived at least until `until`: if both were acknowledged before the
                // other's certain end, they overlapped in every possible order.
                if a < b && earlier.from < later.until && later.from < earlier.until {
                    v.push(format!(
                        "seat {seat} held by holds {} and {} at once\n  {}\n  {}",
                        later.grant.id, earlier.grant.id, earlier.op, later.op
                    ));
                }
            }
            if let Some((t, hold)) = sold_at.get(seat)
                && *t <= later.op.invoke
                && *hold != later.grant.id
            {
                v.push(format!(
                    "seat {seat} granted to hold {} after hold {hold}'s booking was acknowledged at {t}\n  {}",
                    later.grant.id, later.op
                ));
            }
        }
    }

    // 5. General admission: the holds certainly live at any moment fit the capacity.
    for a in &fin.areas {
        let spans: Vec<(i64, i64, i64)> = lives
            .iter()
            .filter(|l| l.grant.area.as_deref() == Some(a.name.as_str()))
            .map(|l| (l.from, l.until, l.grant.quantity as i64))
            .collect();
        for &(t, _, _) in &spans {
            let live: i64 = spans
                .iter()
                .filter(|(from, until, _)| *from <= t && t < *until)
                .map(|(_, _, q)| q)
                .sum();
            if live > a.capacity {
                v.push(format!(
                    "area {}: {live} tickets certainly held or sold at {t} > capacity {}",
                    a.name, a.capacity
                ));
                break;
            }
        }
    }

    // 6. The final state: every seat available, held or sold exactly once, and it
    // agrees with PostgreSQL and etcd.
    if fin.available + fin.held + fin.sold != fin.total || fin.available < 0 {
        v.push(format!(
            "final counts: available {} + held {} + sold {} != total {}",
            fin.available, fin.held, fin.sold, fin.total
        ));
    }
    let pg_sold: BTreeSet<String> = confirmed
        .iter()
        .flat_map(|b| b.seats.iter().cloned())
        .collect();
    if fin.map_sold != pg_sold {
        let only_map: Vec<_> = fin.map_sold.difference(&pg_sold).collect();
        let only_pg: Vec<_> = pg_sold.difference(&fin.map_sold).collect();
        v.push(format!(
            "seat map and PostgreSQL disagree: sold only in the map {only_map:?}, only in PostgreSQL {only_pg:?}"
        ));
    }
    if !fin.map_held.is_empty() || fin.held != 0 {
        v.push(format!(
            "holds left after every hold expired: {} held, seats {:?}",
            fin.held, fin.map_held
        ));
    }
    for a in &fin.areas {
        let sold = ga_sold.get(a.name.as_str()).copied().unwrap_or(0);
        if a.sold != sold {
            v.push(format!(
                "area {}: the shard says {} sold, PostgreSQL {sold}",
                a.name, a.sold
            ));
        }
    }
    let ga_total: i64 = ga_sold.values().sum();
    if fin.sold != pg_sold.len() as i64 + ga_total {
        v.push(format!(
            "the shard says {} sold, PostgreSQL has {} seats and {ga_total} GA tickets",
            fin.sold,
            pg_sold.len()
        ));
    }
    if fin.etcd_holds != 0 || fin.etcd_seat_locks != 0 {
        v.push(format!(
            "etcd still has {} hold records and {} seat locks after every hold expired",
            fin.etcd_holds, fin.etcd_seat_locks
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(client: u32, invoke: i64, complete: i64, id: &str, seats: &[&str], until: i64) -> Op {
        Op {
            client,
            kind: OpKind::Hold {
                request: "{}".into(),
            },
            invoke,
            complete,
            outcome: Outcome::Ok,
            grant: Some(HoldGrant {
                id: id.into(),
                seats: seats.iter().map(|s| s.to_string()).collect(),
                area: None,
                quantity: seats.len() as u64,
                expires_at: until,
            }),
            reference: None,
            attempts: 1,
        }
    }

    fn confirm(client: u32, invoke: i64, complete: i64, hold: &str, outcome: Outcome) -> Op {
        let reference = (outcome == Outcome::Ok).then(|| format!("R-{hold}"));
        Op {
            client,
            kind: OpKind::Confirm { hold: hold.into() },
            invoke,
            complete,
            outcome,
            grant: None,
            reference,
            attempts: 1,
        }
    }

    fn booking(hold: &str, seats: &[&str]) -> DbBooking {
        DbBooking {
            reference: format!("R-{hold}"),
            hold_id: hold.into(),
            status: "confirmed".into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            general: vec![],
        }
    }

    fn final_state(bookings: Vec<DbBooking>) -> FinalState {
        let sold: BTreeSet<String> = bookings
            .iter()
            .flat_map(|b| b.seats.iter().cloned())
            .collect();
        FinalState {
            total: 10,
            sold: sold.len() as i64,
            available: 10 - sold.len() as i64,
            map_seats: 10,
            map_sold: sold,
            bookings,
            ..FinalState::default()
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            confirm(1, 20, 30, "h1", Outcome::Ok),
            // After h2 expired, A2 may go to h3.
            hold(2, 0, 10, "h2", &["A2"], 1000),
            hold(3, 1500, 1510, "h3", &["A2"], 5000),
            // An unknown confirm whose booking exists is fine.
            confirm(3, 1600, 3600, "h3", Outcome::Unknown("timeout".into())),
        ];
        let fin = final_state(vec![booking("h1", &["A1"]), booking("h3", &["A2"])]);
        assert_eq!(check(&ops, &fin, 100), Vec::<String>::new());
    }

    #[test]
    fn sees_a_double_sale_and_a_hold_on_a_sold_seat() {
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            confirm(1, 20, 30, "h1", Outcome::Ok),
            hold(2, 100, 110, "h2", &["A1"], 3000),
            confirm(2, 120, 130, "h2", Outcome::Unknown("timeout".into())),
        ];
        let mut fin = final_state(vec![booking("h1", &["A1"]), booking("h2", &["A1"])]);
        fin.sold = 1;
        fin.available = 9;
        let v = check(&ops, &fin, 100);
        assert!(
            v.iter().any(|m| m.contains("confirmed in 2 bookings")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|m| m.contains("granted to hold h2 after")),
            "{v:?}"
        );
    }

    #[test]
    fn sees_overlapping_live_holds_but_not_uncertain_ones() {
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            hold(2, 500, 510, "h2", &["A1"], 3500),
        ];
        let v = check(&ops, &final_state(vec![]), 100);
        assert!(
            v.iter()
                .any(|m| m.contains("held by holds h2 and h1 at once")),
            "{v:?}"
        );

        // Windows that overlap: whichever was granted first, both were live at 510.
        let ops = vec![
            hold(1, 0, 100, "h1", &["A1"], 3000),
            hold(2, 50, 510, "h2", &["A1"], 3500),
        ];
        assert!(!check(&ops, &final_state(vec![]), 100).is_empty());
        // h2 was acknowledged only after h1's certain end: h1 may have expired first.
        let ops = vec![
            hold(1, 0, 100, "h1", &["A1"], 1000),
            hold(2, 50, 1000, "h2", &["A1"], 3500),
        ];
        assert!(check(&ops, &final_state(vec![]), 100).is_empty());
        // h1 was released before h2 was asked for.
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            Op {
                kind: OpKind::Release { hold: "h1".into() },
                invoke: 200,
                complete: 210,
                grant: None,
                ..hold(1, 0, 0, "x", &[], 0)
            },
            hold(2, 300, 310, "h2", &["A1"], 3500),
        ];
        assert!(check(&ops, &final_state(vec![]), 100).is_empty());
    }

    #[test]
    fn sees_lost_and_phantom_bookings_and_a_wrong_final_state() {
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            confirm(1, 20, 30, "h1", Outcome::Ok),
        ];
        let v = check(&ops, &final_state(vec![]), 100);
        assert!(v.iter().any(|m| m.contains("lost")), "{v:?}");

        let mut fin = final_state(vec![booking("h9", &["A9"])]);
        fin.held = 1;
        fin.etcd_seat_locks = 1;
        let v = check(&[], &fin, 100);
        assert!(v.iter().any(|m| m.contains("no client confirmed")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("holds left")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("final counts")), "{v:?}");
        assert!(v.iter().any(|m| m.contains("etcd still has")), "{v:?}");
    }

    #[test]
    fn sees_an_acknowledged_booking_whose_event_never_arrived() {
        let ops = vec![
            hold(1, 0, 10, "h1", &["A1"], 3000),
            confirm(1, 20, 30, "h1", Outcome::Ok),
            hold(2, 0, 10, "h2", &["A2"], 3000),
            confirm(2, 20, 30, "h2", Outcome::Ok),
        ];
        let mut fin = final_state(vec![booking("h1", &["A1"]), booking("h2", &["A2"])]);
        fin.delivered_confirmed = Some(["R-h1".to_string(), "R-h2".to_string()].into());
        assert_eq!(check(&ops, &fin, 100), Vec::<String>::new());
        fin.delivered_confirmed = Some(["R-h1".to_string()].into());
        let v = check(&ops, &fin, 100);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("R-h2 has no delivered confirmed event"),
            "{v:?}"
        );
    }

    #[test]
    fn sees_general_admission_over_capacity() {
        let ga = |client, invoke, id: &str, q| Op {
            grant: Some(HoldGrant {
                id: id.into(),
                seats: vec![],
                area: Some("pit".into()),
                quantity: q,
                expires_at: 5000,
            }),
            ..hold(client, invoke, invoke + 10, id, &[], 0)
        };
        let mut fin = final_state(vec![]);
        fin.areas = vec![AreaState {
            name: "pit".into(),
            capacity: 5,
            held: 0,
            sold: 0,
        }];
        let ops = vec![ga(1, 0, "g1", 3), ga(2, 100, "g2", 2)];
        assert!(check(&ops, &fin, 100).is_empty());
        let ops = vec![ga(1, 0, "g1", 3), ga(2, 100, "g2", 3)];
        let v = check(&ops, &fin, 100);
        assert!(v.iter().any(|m| m.contains("capacity 5")), "{v:?}");
    }
}
