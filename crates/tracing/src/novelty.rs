//! Which queries are new: a bounded index of the band keys ([`Fingerprint::bands`]) of the
//! queries seen in a trailing window.
//!
//! A query is **novel** when none of its band keys was seen in the window (and none belongs
//! to the queries kept forever, such as an eval set's): no recent query is a near neighbour.
//! The share of novel queries is the query-mix drift signal: a new topic, a new customer
//! segment or a changed entry point raises it. The index holds at most `max_keys` keys; when
//! full, the oldest go first.

use std::collections::{BTreeMap, HashMap};

use crate::Fingerprint;

/// Band keys with the tick each was last seen in.
#[derive(Clone, Debug)]
pub struct NoveltyIndex {
    window_ticks: u64,
    max_keys: usize,
    last_seen: HashMap<u64, u64>,
    /// Keys by the tick they were last seen in, for pruning.
    by_tick: BTreeMap<u64, Vec<u64>>,
}

/// A tick of the keys kept forever.
const FOREVER: u64 = u64::MAX;

impl NoveltyIndex {
    /// An empty index over the last `window_ticks` ticks, of at most `max_keys` keys.
    pub fn new(window_ticks: u64, max_keys: usize) -> Self {
        Self {
            window_ticks: window_ticks.max(1),
            max_keys: max_keys.max(1),
            last_seen: HashMap::new(),
            by_tick: BTreeMap::new(),
        }
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    /// Whether `fingerprint`, seen at `tick`, has no near neighbour in the window before it;
    /// `None` for a query with no words.
    pub fn is_novel(&self, fingerprint: &Fingerprint, tick: u64) -> Option<bool> {
        let bands = fingerprint.bands();
        if bands.is_empty() {
            return None;
        }
        let since = tick.saturating_sub(self.window_ticks);
        Some(!bands.iter().any(|band| {
            self.last_seen
                .get(band)
                .is_some_and(|&seen| seen == FOREVER || seen >= since)
        }))
    }

    /// Records `fingerprint` as seen at `tick`.
    pub fn insert(&mut self, fingerprint: &Fingerprint, tick: u64) {
        for band in fingerprint.bands() {
            self.touch(band, tick);
        }
        self.prune(tick);
    }

    /// Records `fingerprint` as known forever (an eval set's query).
    pub fn insert_forever(&mut self, fingerprint: &Fingerprint) {
        for band in fingerprint.bands() {
            self.touch(band, FOREVER);
        }
    }

    fn touch(&mut self, band: u64, tick: u64) {
        match self.last_seen.get(&band) {
            Some(&FOREVER) => return,
            Some(&seen) if seen >= tick => return,
            // A key seen again moves to its new tick; its entry under the old tick is stale,
            // and `prune` skips it.
            _ => {}
        }
        self.last_seen.insert(band, tick);
        self.by_tick.entry(tick).or_default().push(band);
    }

    /// Drops the keys last seen before the window of `tick`, and the oldest beyond
    /// `max_keys`.
    fn prune(&mut self, tick: u64) {
        let since = tick.saturating_sub(self.window_ticks);
        while let Some((&oldest, _)) = self.by_tick.first_key_value() {
            if oldest == FOREVER || (oldest >= since && self.last_seen.len() <= self.max_keys) {
                break;
            }
            let Some((_, keys)) = self.by_tick.pop_first() else {
                break;
            };
            for key in keys {
                if self.last_seen.get(&key) == Some(&oldest) {
                    self.last_seen.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint;

    #[test]
    fn near_neighbours_are_not_novel_and_old_ones_expire() {
        let mut index = NoveltyIndex::new(10, 1_000);
        let reset = fingerprint("how do I reset my password");
        assert_eq!(index.is_novel(&reset, 0), Some(true));
        index.insert(&reset, 0);
        assert_eq!(index.is_novel(&reset, 5), Some(false));
        assert_eq!(
            index.is_novel(&fingerprint("how do I reset my password please"), 5),
            Some(false),
            "a near neighbour shares a band"
        );
        assert_eq!(
            index.is_novel(&fingerprint("which countries do you ship to"), 5),
            Some(true)
        );
        assert_eq!(index.is_novel(&reset, 11), Some(true), "out of the window");
        index.insert(&fingerprint("which countries do you ship to"), 20);
        assert_eq!(index.len(), 8, "the expired query's keys are gone");
        assert_eq!(index.is_novel(&fingerprint("the and of"), 20), None);
    }

    #[test]
    fn forever_keys_stay_and_the_index_is_bounded() {
        let mut index = NoveltyIndex::new(1_000, 40);
        let kept = fingerprint("cancel my subscription");
        index.insert_forever(&kept);
        for n in 0..100u64 {
            index.insert(
                &fingerprint(&format!("question number {n} about topic {}", n * 7)),
                n,
            );
        }
        assert!(index.len() <= 48, "{}", index.len());
        assert_eq!(index.is_novel(&kept, 5_000), Some(false));
    }
}
