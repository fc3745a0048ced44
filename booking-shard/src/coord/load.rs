//! A new leader's read of the book: every hold record and seat lock, page by page at
//! one revision.

use boxoffice_contract::HoldRecord;
use etcd_client::GetOptions;

use super::{CoordError, Coordinator, RawBook, Result, StoredBook};

impl Coordinator {
    /// Every live hold record, and the seat locks (seat id → hold id), read page by
    /// page at one revision: a show with tens of thousands of live holds is far beyond
    /// gRPC's 4 MiB message limit in one response, and a new leader that cannot load
    /// cannot lead.
    pub async fn load(&self) -> Result<StoredBook> {
        let raw = self.read_book().await?;
        self.parse_book(raw)
    }

    /// The raw hold and seat-lock pairs at one revision.
    pub async fn read_book(&self) -> Result<RawBook> {
        // One revision for both reads, which then run side by side.
        let revision = self
            .client()
            .get(self.keys.leader(), None)
            .await?
            .header()
            .map(|h| h.revision())
            .unwrap_or(0);
        let (holds_prefix, seats_prefix) = (self.keys.holds_prefix(), self.keys.seats_prefix());
        let (holds, seats) = tokio::join!(
            self.scan(&holds_prefix, revision),
            self.scan(&seats_prefix, revision)
        );
        let (holds, _) = holds?;
        let (seats, _) = seats?;
        Ok(RawBook {
            holds,
            seats,
            revision,
        })
    }

    /// Hold records and seat locks from their raw pairs.
    pub fn parse_book(&self, raw: RawBook) -> Result<StoredBook> {
        let mut holds = Vec::with_capacity(raw.holds.len());
        for (_, value) in raw.holds {
            let record: HoldRecord =
                serde_json::from_slice(&value).map_err(|e| CoordError::Corrupt(e.to_string()))?;
            holds.push(record);
        }
        let prefix = self.keys.seats_prefix();
        let locks = raw
            .seats
            .into_iter()
            .map(|(key, value)| {
                let key = String::from_utf8_lossy(&key);
                (
                    key.strip_prefix(&prefix).unwrap_or(&key).to_string(),
                    String::from_utf8_lossy(&value).into_owned(),
                )
            })
            .collect();
        Ok(StoredBook {
            holds,
            locks,
            revision: raw.revision,
        })
    }

    /// How many hold records etcd had at `revision`: one count-only read, to check a
    /// standby's mirror before a new leader serves from it.
    pub async fn hold_count_at(&self, revision: i64) -> Result<i64> {
        let prefix = self.keys.holds_prefix();
        let options = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_count_only()
            .with_revision(revision);
        Ok(self.client().get(prefix, Some(options)).await?.count())
    }

    /// Every key under `prefix`, in pages of [`SCAN_PAGE`], at `revision` (0: now);
    /// returns the pairs and the revision read.
    async fn scan(&self, prefix: &str, revision: i64) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, i64)> {
        let mut c = self.client();
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = revision;
        let mut out = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(SCAN_PAGE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let resp = c.get(start.clone(), Some(options)).await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let Some(last) = resp.kvs().last() else { break };
            start = last.key().to_vec();
            start.push(0);
            out.extend(
                resp.kvs()
                    .iter()
                    .map(|kv| (kv.key().to_vec(), kv.value().to_vec())),
            );
            if !resp.more() {
                break;
            }
        }
        Ok((out, revision))
    }
}

/// Keys per page when a new leader reads holds and seat locks. A hold record is at
/// most about 500 bytes (a 128-character idempotency key, a few seat ids), so a page
/// stays well under gRPC's 4 MiB message limit.
const SCAN_PAGE: i64 = 4_000;

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
