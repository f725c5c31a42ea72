//! Maps keyed by the handles this process hands out.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::RwLock;

/// A map keyed by handles this process hands out (sessions, objects): a fast
/// non-cryptographic hasher, since the keys are ours, not attacker-chosen.
pub type HandleMap<V> = HashMap<u64, V, rustc_hash::FxBuildHasher>;

/// A [`HandleMap`] split by handle into shards, each with its own lock and on its
/// own cache lines: threads working on different sessions (consecutive handles) take
/// different locks, so the per-call lookup shares no written cache line between them.
/// Whole-map operations visit the shards one after another (not one snapshot).
pub struct ShardedHandles<V> {
    shards: [Shard<V>; SHARDS],
    /// Entries in all shards (changed under the shard's lock; written only on insert
    /// and remove, so it is not on the per-call path).
    len: std::sync::atomic::AtomicUsize,
}

const SHARDS: usize = 16;

#[repr(align(128))]
struct Shard<V>(RwLock<HandleMap<V>>);

impl<V> Default for ShardedHandles<V> {
    fn default() -> Self {
        ShardedHandles {
            shards: std::array::from_fn(|_| Shard(RwLock::new(HandleMap::default()))),
            len: Default::default(),
        }
    }
}

impl<V> ShardedHandles<V> {
    fn shard(&self, h: u64) -> &RwLock<HandleMap<V>> {
        &self.shards[(h % SHARDS as u64) as usize].0
    }

    fn read_shard(m: &RwLock<HandleMap<V>>) -> std::sync::RwLockReadGuard<'_, HandleMap<V>> {
        m.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_shard(m: &RwLock<HandleMap<V>>) -> std::sync::RwLockWriteGuard<'_, HandleMap<V>> {
        m.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A clone of the value of `h`.
    pub fn get(&self, h: u64) -> Option<V>
    where
        V: Clone,
    {
        Self::read_shard(self.shard(h)).get(&h).cloned()
    }

    /// Whether `h` is present.
    pub fn contains(&self, h: u64) -> bool {
        Self::read_shard(self.shard(h)).contains_key(&h)
    }

    /// Sets the value of `h`; returns the old one.
    pub fn insert(&self, h: u64, v: V) -> Option<V> {
        let old = Self::write_shard(self.shard(h)).insert(h, v);
        if old.is_none() {
            self.len.fetch_add(1, Ordering::AcqRel);
        }
        old
    }

    /// Removes `h`; returns its value.
    pub fn remove(&self, h: u64) -> Option<V> {
        let mut shard = Self::write_shard(self.shard(h));
        let old = shard.remove(&h);
        if old.is_some() {
            self.len.fetch_sub(1, Ordering::AcqRel);
        }
        old
    }

    /// Keeps the entries for which `keep` says so.
    pub fn retain(&self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        for s in &self.shards {
            let mut shard = Self::write_shard(&s.0);
            let before = shard.len();
            shard.retain(&mut keep);
            self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.retain(|_, _| false);
    }

    /// Whether some value satisfies `f`.
    pub fn any(&self, mut f: impl FnMut(&V) -> bool) -> bool {
        self.shards
            .iter()
            .any(|s| Self::read_shard(&s.0).values().any(&mut f))
    }

    /// Calls `f` on every value.
    pub fn for_each(&self, mut f: impl FnMut(&V)) {
        for s in &self.shards {
            Self::read_shard(&s.0).values().for_each(&mut f);
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
