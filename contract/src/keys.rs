//! The etcd key layout of one show, under `/boxoffice/<namespace>/<show>/`:
//!
//! | key | value | lease |
//! |---|---|---|
//! | `leader` | [`crate::LeaderInfo`] JSON; its create revision is the leader's epoch | the leader's |
//! | `holds/<hold-id>` | [`crate::HoldRecord`] JSON (its seats included) | the hold's |
//! | `seats/<seat-id>` | the earlier layout's seat lock (a hold id); a new leader deletes any it finds | the hold's |
//!
//! One key per hold: nothing per seat (docs/architecture.md, "One key per hold").
//!
//! Seat ids (`section:row:number`) and hold ids never need escaping: names are DNS
//! labels and hold ids hex.

/// The root of every show's keys.
pub const ROOT: &str = "/boxoffice/";

/// The keys of one show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowKeys {
    prefix: String,
}

impl ShowKeys {
    pub fn new(namespace: &str, show: &str) -> Self {
        Self {
            prefix: format!("{ROOT}{namespace}/{show}/"),
        }
    }

    /// The election key.
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// A seat's lock (the earlier layout's key per held seat).
    pub fn seat(&self, seat: &str) -> String {
        format!("{}seats/{seat}", self.prefix)
    }

    /// A hold's record.
    pub fn hold(&self, hold: &str) -> String {
        format!("{}holds/{hold}", self.prefix)
    }

    pub fn holds_prefix(&self) -> String {
        format!("{}holds/", self.prefix)
    }

    pub fn seats_prefix(&self) -> String {
        format!("{}seats/", self.prefix)
    }

    /// Every key of the show.
    pub fn show_prefix(&self) -> &str {
        &self.prefix
    }

    /// The seat id of a seat-lock key, if `key` is one.
    pub fn seat_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix("seats/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_stable() {
        let k = ShowKeys::new("ns", "club");
        assert_eq!(k.leader(), "/boxoffice/ns/club/leader");
        assert_eq!(k.seat("main:A:1"), "/boxoffice/ns/club/seats/main:A:1");
        assert_eq!(k.hold("ab12"), "/boxoffice/ns/club/holds/ab12");
        assert_eq!(k.holds_prefix(), "/boxoffice/ns/club/holds/");
        assert_eq!(k.seats_prefix(), "/boxoffice/ns/club/seats/");
        assert_eq!(k.show_prefix(), "/boxoffice/ns/club/");
        assert_eq!(k.seat_of(&k.seat("main:A:1")), Some("main:A:1"));
        assert_eq!(k.seat_of(&k.hold("ab12")), None);
        assert_eq!(ShowKeys::new("ns", "other").seat_of(&k.seat("x:A:1")), None);
    }
}
