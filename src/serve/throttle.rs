//! Failed-authentication throttling for `POST /oauth/token`.
//!
//! In: each failed attempt, keyed by the client ID it named and by the peer address it came
//! from, and the clock (passed in, so tests pin it). Out: whether a key is blocked, and for
//! how long. After `limit` failures of one key within `window`, the key is blocked for one
//! window; each further block of the same key doubles the wait, up to [`MAX_DOUBLINGS`]
//! windows. A success clears the client's record. The table holds at most [`CAPACITY`] keys:
//! when full, lapsed records go first, then the oldest — so memory stays bounded however many
//! client IDs or addresses an attacker invents.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once.
pub const CAPACITY: usize = 10_000;
/// A block lasts at most `2^MAX_DOUBLINGS` windows.
pub const MAX_DOUBLINGS: u32 = 4;
/// Longest client ID kept as a key (longer ones are cut: they are wrong anyway).
const MAX_KEY: usize = 128;

/// What an attempt is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Client(String),
    Peer(IpAddr),
}

impl Key {
    pub fn client(id: &str) -> Key {
        let mut end = id.len().min(MAX_KEY);
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        Key::Client(id[..end].to_owned())
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    since: Instant,
    blocks: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

/// The failure table.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    capacity: usize,
    records: Mutex<HashMap<Key, Record>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Throttle {
        Throttle::with_capacity(limit, window, CAPACITY)
    }

    pub fn with_capacity(limit: u32, window: Duration, capacity: usize) -> Throttle {
        Throttle {
            limit: limit.max(1),
            window,
            capacity: capacity.max(1),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How long the caller must wait, when any of `keys` is blocked.
    pub fn blocked(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let records = self.records.lock().ok()?;
        keys.iter()
            .filter_map(|k| records.get(k)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts a failure against each key; the wait, when this failure starts a block.
    pub fn failed(&self, keys: &[Key], now: Instant) -> Option<Duration> {
        let mut records = self.records.lock().ok()?;
        let mut wait = None;
        for key in keys {
            if !records.contains_key(key) && records.len() >= self.capacity {
                self.make_room(&mut records, now);
            }
            let r = records.entry(key.clone()).or_insert(Record {
                failures: 0,
                since: now,
                blocks: 0,
                blocked_until: None,
                last: now,
            });
            r.last = now;
            if now.duration_since(r.since) > self.window {
                r.failures = 0;
                r.since = now;
            }
            r.failures += 1;
            if r.failures >= self.limit {
                let doublings = r.blocks.min(MAX_DOUBLINGS);
                let block = self.window * 2u32.pow(doublings);
                r.blocks = r.blocks.saturating_add(1);
                r.failures = 0;
                r.since = now;
                r.blocked_until = Some(now + block);
                wait = Some(wait.map_or(block, |w: Duration| w.max(block)));
            }
        }
        wait
    }

    /// Clears the record of a client that authenticated.
    pub fn succeeded(&self, key: &Key) {
        if let Ok(mut records) = self.records.lock() {
            records.remove(key);
        }
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.records.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&self, records: &mut HashMap<Key, Record>, now: Instant) {
        let forget_after = self.window * 2u32.pow(MAX_DOUBLINGS);
        records.retain(|_, r| {
            r.blocked_until.is_some_and(|u| u > now) || now.duration_since(r.last) <= forget_after
        });
        if records.len() >= self.capacity
            && let Some(oldest) = records
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| k.clone())
        {
            records.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn five_failures_in_a_window_block_and_blocks_double() {
        let t = Throttle::new(5, MINUTE);
        let start = Instant::now();
        let keys = [Key::client("c"), Key::Peer([127, 0, 0, 1].into())];
        for i in 0..4 {
            assert_eq!(t.failed(&keys, start + Duration::from_secs(i)), None);
            assert_eq!(t.blocked(&keys, start), None);
        }
        assert_eq!(
            t.failed(&keys, start + Duration::from_secs(4)),
            Some(MINUTE)
        );
        let wait = t.blocked(&keys, start + Duration::from_secs(5)).unwrap();
        assert_eq!(wait, Duration::from_secs(59));
        // After the block, five more failures block for twice as long.
        let later = start + Duration::from_secs(70);
        assert_eq!(t.blocked(&keys, later), None);
        for i in 0..4 {
            assert_eq!(t.failed(&keys, later + Duration::from_secs(i)), None);
        }
        assert_eq!(
            t.failed(&keys, later + Duration::from_secs(4)),
            Some(2 * MINUTE)
        );
        // Failures spread wider than the window never block.
        let t = Throttle::new(5, MINUTE);
        for i in 0..20 {
            assert_eq!(t.failed(&keys, start + Duration::from_secs(16 * i)), None);
        }
    }

    #[test]
    fn the_table_stays_within_its_capacity() {
        let t = Throttle::with_capacity(5, MINUTE, 100);
        let now = Instant::now();
        for i in 0..10_000 {
            t.failed(&[Key::client(&format!("c{i}"))], now);
        }
        assert!(t.len() <= 100, "{}", t.len());
        let long = "é".repeat(1000);
        assert!(matches!(Key::client(&long), Key::Client(k) if k.len() <= MAX_KEY));
    }
}
