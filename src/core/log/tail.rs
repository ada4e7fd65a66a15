//! The tail: the newest committed entries kept in memory for the readers
//! that keep up.

use std::collections::VecDeque;

use super::LogEntry;

/// The newest committed entries, in memory.
///
/// Every consumer and relay destination reads what follows its cursor
/// after each commit. Served from the database, that was one read per
/// reader per commit, each on the same connections the API uses, and each
/// event's body was read (parsed) again by every consumer: under load the
/// consumers cost more CPU than ingest itself. The writer appends each
/// committed batch here before it publishes the new head, so a reader that
/// keeps up finds its next entries here and only a reader that fell behind
/// (or one starting after a restart) goes to the database.
///
/// Offsets are dense (one writer hands them out), so the entry after
/// `cursor` is found by subtraction; its offset is still checked, and any
/// mismatch means "not here, ask the database".
#[derive(Default)]
pub struct Tail {
    inner: std::sync::Mutex<TailInner>,
}

#[derive(Default)]
struct TailInner {
    entries: VecDeque<LogEntry>,
    bytes: usize,
}

/// How much the tail keeps: enough for a consumer that coalesces for
/// 50 ms, or a relay destination a second behind, at ten thousand
/// events/s; small enough to keep the server's resident memory flat and
/// low (measured by `tillgate bench`).
const TAIL_MAX_ENTRIES: usize = 8192;
const TAIL_MAX_BYTES: usize = 24 << 20;

/// What an entry costs the tail: its body, and for an entry that carries
/// the event ingest read, that too. The typed event (strings, dishes,
/// vectors) takes about three times its XML; counted as body only, a full
/// tail held over 100 MiB at 8192 entries.
fn weight(e: &LogEntry) -> usize {
    if e.parsed.is_some() {
        e.body.len() * 4
    } else {
        e.body.len()
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.inner.lock().map(|t| t.entries.len()).unwrap_or(0);
        f.debug_struct("Tail").field("entries", &len).finish()
    }
}

impl Tail {
    /// Appends committed entries (in offset order, right after the last).
    pub(super) fn push(&self, new: Vec<LogEntry>) {
        let Ok(mut t) = self.inner.lock() else { return };
        if let (Some(last), Some(first)) = (t.entries.back(), new.first())
            && first.offset != last.offset + 1
        {
            // Not contiguous (cannot happen with one writer): start over
            // rather than ever serve a hole.
            t.entries.clear();
            t.bytes = 0;
        }
        for e in new {
            t.bytes += weight(&e);
            t.entries.push_back(e);
        }
        let mut evicted = Vec::new();
        while t.entries.len() > TAIL_MAX_ENTRIES || t.bytes > TAIL_MAX_BYTES {
            match t.entries.pop_front() {
                Some(old) => {
                    t.bytes -= weight(&old);
                    evicted.push(old);
                }
                None => break,
            }
        }
        // Freed after the lock is released: a typed event is many small
        // allocations, and readers should not wait for them.
        drop(t);
        drop(evicted);
    }

    /// The log's head is `head` (another instance committed): if the tail
    /// ends before it, what follows its last entry is not here, and a
    /// reader at that entry must not be told it is caught up. Emptied; the
    /// next local commit starts it again.
    pub(super) fn behind(&self, head: i64) {
        let Ok(mut t) = self.inner.lock() else { return };
        if t.entries.back().is_some_and(|last| last.offset < head) {
            let old = std::mem::take(&mut t.entries);
            t.bytes = 0;
            drop(t);
            drop(old);
        }
    }

    /// Up to `limit` entries after `after`, or `None` when the tail does
    /// not hold the entry right after it.
    pub(super) fn after(&self, after: i64, limit: usize) -> Option<Vec<LogEntry>> {
        let t = self.inner.lock().ok()?;
        let first = t.entries.front()?.offset;
        let last = t.entries.back()?.offset;
        if after >= last {
            return Some(Vec::new());
        }
        let idx = usize::try_from(after + 1 - first).ok()?;
        if t.entries.get(idx)?.offset != after + 1 {
            return None;
        }
        Some(t.entries.range(idx..).take(limit).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entry(offset: i64, body_len: usize) -> LogEntry {
        LogEntry {
            offset,
            received_at: offset,
            stream_guid: "{G}".into(),
            seqnumber: offset,
            situation: 3,
            rest_code: None,
            event_time: None,
            shift_num: None,
            order_guid: None,
            body: Bytes::from(vec![b'x'; body_len]),
            parsed: None,
        }
    }

    fn offsets(v: Option<Vec<LogEntry>>) -> Option<Vec<i64>> {
        v.map(|v| v.iter().map(|e| e.offset).collect())
    }

    #[test]
    fn tail_serves_only_what_follows_the_cursor_without_holes() {
        let t = Tail::default();
        assert_eq!(offsets(t.after(0, 10)), None, "empty: ask the database");
        t.push((5..=9).map(|o| entry(o, 1)).collect());
        assert_eq!(offsets(t.after(4, 10)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(offsets(t.after(6, 2)), Some(vec![7, 8]));
        assert_eq!(offsets(t.after(9, 10)), Some(vec![]), "caught up");
        assert_eq!(offsets(t.after(12, 10)), Some(vec![]), "ahead of the tail");
        assert_eq!(offsets(t.after(3, 10)), None, "offset 4 is not held");
        assert_eq!(offsets(t.after(-7, 10)), None);
        // A batch that does not follow on starts the tail over.
        t.push(vec![entry(20, 1), entry(21, 1)]);
        assert_eq!(offsets(t.after(9, 10)), None);
        assert_eq!(offsets(t.after(19, 10)), Some(vec![20, 21]));
        // Another instance committed 22..=25: a reader at 21 is not caught
        // up, the database has what follows.
        t.behind(21);
        assert_eq!(offsets(t.after(21, 10)), Some(vec![]), "nothing newer");
        t.behind(25);
        assert_eq!(offsets(t.after(21, 10)), None);
    }

    #[test]
    fn tail_forgets_the_oldest_beyond_its_limits() {
        let t = Tail::default();
        t.push(
            (1..=(TAIL_MAX_ENTRIES as i64 + 10))
                .map(|o| entry(o, 1))
                .collect(),
        );
        // Offsets 1..=10 are gone, 11 is the oldest kept.
        assert_eq!(offsets(t.after(9, 1)), None);
        assert_eq!(offsets(t.after(10, 1)), Some(vec![11]));
        let t = Tail::default();
        let big = TAIL_MAX_BYTES / 4 + 1;
        t.push((1..=4).map(|o| entry(o, big)).collect());
        assert_eq!(offsets(t.after(0, 10)), None, "over the byte limit");
        assert_eq!(offsets(t.after(1, 10)), Some(vec![2, 3, 4]));
    }
}
