//! Confirming holds into bookings, cancelling and checking in (PostgreSQL, fenced).

use super::*;

impl Shard {
    /// Confirms a hold into a booking. Confirming the same hold again returns the
    /// first booking (`false`: not newly created).
    pub async fn confirm(
        &self,
        user: &str,
        hold_id: &str,
        payment_reference: &str,
    ) -> Result<(Booking, bool)> {
        let l = self.leadership()?;
        let planned = {
            let mut book = self.book(&l);
            match book.entry(hold_id) {
                None if book.expired_for(hold_id, user) => return Err(ShardError::Expired),
                None => None,
                Some((_, entry)) => {
                    if entry.record.user != user {
                        return Err(ShardError::NotFound);
                    }
                    match entry.state {
                        HoldState::Live => {}
                        HoldState::Ending => return Err(ShardError::Expired),
                        _ => return Err(ShardError::Conflict("the hold is busy; retry".into())),
                    }
                    if entry.deadline() <= Instant::now() {
                        return Err(ShardError::Expired);
                    }
                    let (amount, currency) = self.price_of(&book, &entry.holding);
                    let (record, holding) = (entry.record.clone(), entry.holding.clone());
                    if let Some(e) = book.entry_mut(hold_id) {
                        e.state = HoldState::Confirming;
                    }
                    Some((record, holding, amount, currency))
                }
            }
        };
        let Some((record, holding, amount_minor, currency)) = planned else {
            // Not a live hold: already confirmed (by this or an earlier leader)?
            return match self.store.booking_for_hold(hold_id).await {
                Ok(Some(b)) if b.user == user => Ok((b, false)),
                Ok(_) => Err(ShardError::NotFound),
                Err(e) => Err(self.store_error(&l, e)),
            };
        };
        let restore = |state: HoldState| {
            if let Some(e) = self.book(&l).entry_mut(hold_id) {
                e.state = state;
            }
        };

        match self.coord.check_hold(l.epoch, hold_id).await {
            Ok(()) => {}
            Err(CoordError::HoldGone) => {
                restore(HoldState::Live);
                return Err(ShardError::Expired);
            }
            Err(CoordError::Fenced) => {
                self.step_down(&l, "fenced by etcd on confirm");
                return Err(ShardError::NotLeader(None));
            }
            Err(e) => {
                restore(HoldState::Live);
                warn!(error = %e, "checking a hold in etcd failed");
                return Err(ShardError::Unknown);
            }
        }

        let new = NewBooking {
            user: user.to_string(),
            hold_id: hold_id.to_string(),
            payment_reference: payment_reference.to_string(),
            amount_minor,
            currency,
            seats: record.seats.clone(),
            general: record
                .area
                .clone()
                .map(|area| GeneralTickets {
                    area,
                    quantity: record.quantity as i64,
                })
                .into_iter()
                .collect(),
        };
        self.fault_pause().await;
        let written = tokio::time::timeout(DB_TIMEOUT, self.store.confirm(l.epoch, &new))
            .await
            .unwrap_or(Err(StoreError::Timeout));
        match written {
            Ok((booking, created)) => {
                bump(&self.stats.confirms);
                let ev = {
                    let mut book = self.book(&l);
                    book.remove(hold_id, true);
                    self.event(
                        &book,
                        "sold",
                        &holding,
                        Some(hold_id),
                        Some(&booking.reference),
                    )
                };
                self.publish(ev);
                if let Err(e) = self.coord.delete_holds(l.epoch, &[&record]).await {
                    // The booking is durable; the locks expire with their lease.
                    warn!(error = %e, "clearing a confirmed hold's locks failed");
                }
                Ok((booking, created))
            }
            Err(e) if e.outcome_unknown() => {
                // The booking may have been committed: this leader must not put the
                // seats back on sale on its own word. Step down; the next leader loads
                // the truth from PostgreSQL (a booked hold is sold, else still held).
                warn!(error = %e, hold = hold_id, "a confirm's outcome is unknown");
                self.step_down(&l, "a confirm's outcome in PostgreSQL is unknown");
                Err(ShardError::Unknown)
            }
            Err(e) => {
                restore(HoldState::Live);
                Err(self.store_error(&l, e))
            }
        }
    }

    pub(super) fn store_error(&self, l: &Leadership, e: StoreError) -> ShardError {
        match e {
            StoreError::Fenced => {
                self.step_down(l, "fenced by PostgreSQL");
                ShardError::NotLeader(None)
            }
            StoreError::SeatsTaken(seats) => {
                error!(?seats, "PostgreSQL refused a double sale; memory was stale");
                self.step_down(l, "PostgreSQL has sales memory did not know");
                ShardError::SeatsUnavailable(seats)
            }
            StoreError::OverCapacity(area) => {
                self.step_down(l, "PostgreSQL refused to oversell an area");
                ShardError::SoldOut { area, available: 0 }
            }
            StoreError::NotFound => ShardError::NotFound,
            StoreError::Conflict(m) => ShardError::Conflict(m),
            StoreError::Db(e) => {
                warn!(error = %e, "database error");
                ShardError::Unknown
            }
            StoreError::Unavailable(e) => {
                warn!(error = %e, "database error");
                ShardError::Unknown
            }
            StoreError::Timeout => {
                warn!("PostgreSQL did not answer in time");
                ShardError::Unknown
            }
        }
    }

    /// Cancels a booking; its seats return to sale.
    pub async fn cancel(&self, user: &str, staff: bool, reference: &str) -> Result<Booking> {
        let l = self.leadership()?;
        let existing = self
            .store
            .booking(reference)
            .await
            .map_err(|e| self.store_error(&l, e))?
            .ok_or(ShardError::NotFound)?;
        if !staff && existing.user != user {
            return Err(ShardError::NotFound);
        }
        let (booking, changed) = self
            .store
            .cancel(l.epoch, reference)
            .await
            .map_err(|e| self.store_error(&l, e))?;
        if changed {
            let ev = {
                let mut book = self.book(&l);
                let holding = self.holding_of_booking(&book.inventory, &booking);
                book.inventory.unsell(&holding);
                if let Some(n) = book.per_user.get_mut(&booking.user) {
                    *n = n.saturating_sub(holding.quantity());
                }
                self.event(&book, "returned", &holding, None, Some(&booking.reference))
            };
            self.publish(ev);
        }
        Ok(booking)
    }

    pub(super) fn holding_of_booking(&self, inv: &Inventory, b: &Booking) -> Holding {
        if let Some(g) = b.general.first()
            && let Some(area) = inv.area_index(&g.area)
        {
            return Holding::General {
                area,
                quantity: g.quantity as u64,
            };
        }
        Holding::Seats(
            b.seats
                .iter()
                .filter_map(|s| s.parse::<SeatId>().ok().and_then(|id| inv.seat_index(&id)))
                .collect::<Vec<SeatIndex>>(),
        )
    }

    /// Checks a booking in (staff).
    pub async fn check_in(
        &self,
        reference: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Booking> {
        let l = self.leadership()?;
        self.store
            .check_in(l.epoch, reference, idempotency_key)
            .await
            .map_err(|e| self.store_error(&l, e))
    }
}
