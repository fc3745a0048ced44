//! Seat ids and the expansion of a Show's seating into concrete rows and seats.
//!
//! A seat id is `section:row:number`, e.g. `orchestra:C:12`. Rows are named by letters
//! counted like spreadsheet columns (`A`..`Z`, `AA`..`AZ`, `BA`..) or by numbers
//! (`1`..`999`); a range `A-Z` or `1-40` expands to every row between its ends.

use std::fmt;
use std::str::FromStr;

use crate::show::{RowSpec, Seating};

/// Why a seating description or a seat id could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeatingError {
    #[error("row range {0:?} is malformed: use FIRST-LAST like A-Z, AA-AD or 1-40")]
    MalformedRange(String),
    #[error("row range {0:?} runs backwards")]
    BackwardsRange(String),
    #[error("row name {0:?} is malformed: use 1-3 capital letters or a number 1-999")]
    MalformedRow(String),
    #[error("a row needs exactly one of name or names")]
    RowNameXorNames,
    #[error("row {row:?} appears twice in section {section:?}")]
    DuplicateRow { section: String, row: String },
    #[error("seat id {0:?} is malformed: expected section:row:number")]
    MalformedSeatId(String),
}

/// A row label: letters or a number, ordered as rows are ordered in a venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum RowLabel {
    Letters(u32),
    Number(u32),
}

impl RowLabel {
    fn parse(s: &str) -> Result<Self, SeatingError> {
        let bad = || SeatingError::MalformedRow(s.to_string());
        if s.is_empty() || s.len() > 3 {
            return Err(bad());
        }
        if s.bytes().all(|b| b.is_ascii_uppercase()) {
            // Bijective base 26: A=1 .. Z=26, AA=27 ..
            let n = s
                .bytes()
                .fold(0u32, |acc, b| acc * 26 + u32::from(b - b'A' + 1));
            return Ok(RowLabel::Letters(n));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0') {
            return s.parse().map(RowLabel::Number).map_err(|_| bad());
        }
        Err(bad())
    }

    fn render(self) -> String {
        match self {
            RowLabel::Number(n) => n.to_string(),
            RowLabel::Letters(mut n) => {
                let mut out = Vec::new();
                while n > 0 {
                    let rem = (n - 1) % 26;
                    out.push(b'A' + rem as u8);
                    n = (n - 1) / 26;
                }
                out.reverse();
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }

    fn same_kind(self, other: RowLabel) -> bool {
        matches!(
            (self, other),
            (RowLabel::Letters(_), RowLabel::Letters(_))
                | (RowLabel::Number(_), RowLabel::Number(_))
        )
    }

    fn step(self) -> Self {
        match self {
            RowLabel::Letters(n) => RowLabel::Letters(n + 1),
            RowLabel::Number(n) => RowLabel::Number(n + 1),
        }
    }
}

/// Expands a row range like `A-Z`, `AA-AD` or `1-40` into row names, in order.
pub fn expand_row_range(range: &str) -> Result<Vec<String>, SeatingError> {
    let (first, last) = range
        .split_once('-')
        .ok_or_else(|| SeatingError::MalformedRange(range.to_string()))?;
    let malformed = |_| SeatingError::MalformedRange(range.to_string());
    let first = RowLabel::parse(first).map_err(malformed)?;
    let last = RowLabel::parse(last).map_err(malformed)?;
    if !first.same_kind(last) {
        return Err(SeatingError::MalformedRange(range.to_string()));
    }
    if first > last {
        return Err(SeatingError::BackwardsRange(range.to_string()));
    }
    let mut rows = Vec::new();
    let mut label = first;
    while label <= last {
        rows.push(label.render());
        label = label.step();
    }
    Ok(rows)
}

/// The row names one row entry stands for.
pub fn row_names(row: &RowSpec) -> Result<Vec<String>, SeatingError> {
    match (&row.name, &row.names) {
        (Some(name), None) => {
            RowLabel::parse(name)?;
            Ok(vec![name.clone()])
        }
        (None, Some(range)) => expand_row_range(range),
        _ => Err(SeatingError::RowNameXorNames),
    }
}

/// `section:row:number`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeatId {
    pub section: String,
    pub row: String,
    pub number: u32,
}

impl SeatId {
    pub fn new(section: impl Into<String>, row: impl Into<String>, number: u32) -> Self {
        Self {
            section: section.into(),
            row: row.into(),
            number,
        }
    }
}

impl fmt::Display for SeatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.section, self.row, self.number)
    }
}

impl FromStr for SeatId {
    type Err = SeatingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SeatingError::MalformedSeatId(s.chars().take(64).collect());
        let mut parts = s.split(':');
        let (Some(section), Some(row), Some(number), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if section.is_empty() || row.is_empty() || number.starts_with('0') {
            return Err(bad());
        }
        let number = number.parse::<u32>().map_err(|_| bad())?;
        Ok(SeatId::new(section, row, number))
    }
}

/// One concrete row of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLayout {
    pub name: String,
    pub seats: u32,
}

/// A section with its rows expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionLayout {
    pub name: String,
    pub category: String,
    pub rows: Vec<RowLayout>,
}

impl SectionLayout {
    pub fn seat_count(&self) -> u64 {
        self.rows.iter().map(|r| u64::from(r.seats)).sum()
    }
}

/// A general-admission area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaLayout {
    pub name: String,
    pub category: String,
    pub capacity: u64,
}

/// The venue with every row range expanded: what the shard's inventory is built from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VenueLayout {
    pub sections: Vec<SectionLayout>,
    pub areas: Vec<AreaLayout>,
}

impl VenueLayout {
    /// Expands the seating; fails on malformed or duplicate rows.
    pub fn from_seating(seating: &Seating) -> Result<Self, SeatingError> {
        let mut sections = Vec::with_capacity(seating.sections.len());
        for section in &seating.sections {
            let mut rows: Vec<RowLayout> = Vec::new();
            for entry in &section.rows {
                for name in row_names(entry)? {
                    if rows.iter().any(|r| r.name == name) {
                        return Err(SeatingError::DuplicateRow {
                            section: section.name.clone(),
                            row: name,
                        });
                    }
                    rows.push(RowLayout {
                        name,
                        seats: entry.seats,
                    });
                }
            }
            sections.push(SectionLayout {
                name: section.name.clone(),
                category: section.category.clone(),
                rows,
            });
        }
        let areas = seating
            .general_admission
            .iter()
            .map(|ga| AreaLayout {
                name: ga.name.clone(),
                category: ga.category.clone(),
                capacity: u64::try_from(ga.capacity).unwrap_or(0),
            })
            .collect();
        Ok(Self { sections, areas })
    }

    /// Reserved seats in all sections.
    pub fn reserved_seats(&self) -> u64 {
        self.sections.iter().map(SectionLayout::seat_count).sum()
    }

    /// Reserved seats plus general-admission capacity.
    pub fn total_capacity(&self) -> u64 {
        self.reserved_seats() + self.areas.iter().map(|a| a.capacity).sum::<u64>()
    }

    /// Every reserved seat id, section by section, row by row, seat by seat.
    pub fn seat_ids(&self) -> impl Iterator<Item = SeatId> + '_ {
        self.sections.iter().flat_map(|s| {
            s.rows
                .iter()
                .flat_map(move |r| (1..=r.seats).map(move |n| SeatId::new(&s.name, &r.name, n)))
        })
    }

    /// Whether a seat id names a seat of this venue.
    pub fn contains(&self, seat: &SeatId) -> bool {
        self.sections.iter().any(|s| {
            s.name == seat.section
                && s.rows
                    .iter()
                    .any(|r| r.name == seat.row && seat.number >= 1 && seat.number <= r.seats)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::{GeneralAdmission, Section};

    fn row(name: Option<&str>, names: Option<&str>, seats: u32) -> RowSpec {
        RowSpec {
            name: name.map(str::to_string),
            names: names.map(str::to_string),
            seats,
        }
    }

    #[test]
    fn letter_ranges_count_like_spreadsheet_columns() {
        assert_eq!(expand_row_range("A-C").unwrap(), ["A", "B", "C"]);
        assert_eq!(expand_row_range("Y-AB").unwrap(), ["Y", "Z", "AA", "AB"]);
        assert_eq!(expand_row_range("AA-AD").unwrap(), ["AA", "AB", "AC", "AD"]);
        assert_eq!(expand_row_range("A-Z").unwrap().len(), 26);
        assert_eq!(expand_row_range("ZZ-AAB").unwrap(), ["ZZ", "AAA", "AAB"]);
    }

    #[test]
    fn numeric_ranges() {
        assert_eq!(expand_row_range("1-3").unwrap(), ["1", "2", "3"]);
        assert_eq!(expand_row_range("9-11").unwrap(), ["9", "10", "11"]);
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for bad in [
            "A", "A-", "-B", "a-z", "A-1", "1-A", "01-5", "AAAA-B", "A-B-C", "",
        ] {
            assert!(expand_row_range(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            expand_row_range("Z-A"),
            Err(SeatingError::BackwardsRange("Z-A".into()))
        );
        assert!(matches!(
            expand_row_range("AA-Z"),
            Err(SeatingError::BackwardsRange(_))
        ));
    }

    #[test]
    fn seat_ids_round_trip() {
        let id: SeatId = "orchestra:C:12".parse().unwrap();
        assert_eq!(id, SeatId::new("orchestra", "C", 12));
        assert_eq!(id.to_string(), "orchestra:C:12");
        for bad in [
            "orchestra:C",
            "a:b:c",
            "a:b:0",
            "a:b:-1",
            ":C:1",
            "a::1",
            "a:b:1:2",
            "a:b:01",
        ] {
            assert!(bad.parse::<SeatId>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn layout_expands_rows_and_counts_seats() {
        let seating = Seating {
            sections: vec![Section {
                name: "stalls".into(),
                category: "std".into(),
                rows: vec![row(Some("A"), None, 10), row(None, Some("B-D"), 12)],
            }],
            general_admission: vec![GeneralAdmission {
                name: "standing".into(),
                capacity: 100,
                category: "std".into(),
            }],
        };
        let layout = VenueLayout::from_seating(&seating).unwrap();
        assert_eq!(layout.reserved_seats(), 10 + 3 * 12);
        assert_eq!(layout.total_capacity(), 146);
        let ids: Vec<_> = layout.seat_ids().collect();
        assert_eq!(ids.len(), 46);
        assert_eq!(ids[0].to_string(), "stalls:A:1");
        assert_eq!(ids[45].to_string(), "stalls:D:12");
        assert!(layout.contains(&SeatId::new("stalls", "D", 12)));
        assert!(!layout.contains(&SeatId::new("stalls", "A", 11)));
        assert!(!layout.contains(&SeatId::new("stalls", "E", 1)));
    }

    #[test]
    fn overlapping_rows_are_duplicates() {
        let seating = Seating {
            sections: vec![Section {
                name: "s".into(),
                category: "std".into(),
                rows: vec![row(None, Some("A-C"), 10), row(Some("B"), None, 10)],
            }],
            general_admission: vec![],
        };
        assert_eq!(
            VenueLayout::from_seating(&seating),
            Err(SeatingError::DuplicateRow {
                section: "s".into(),
                row: "B".into()
            })
        );
    }
}
