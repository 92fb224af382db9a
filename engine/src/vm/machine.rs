//! The machine: a run's registers (laid out by type when the [`Program`] is
//! built) and the scratch its routines reuse, so that after warm-up a run
//! allocates nothing; and the effects a run leaves.

use super::{Program, MAX_STEPS};

/// The effects of one run, over view positions.
#[derive(Default, Debug)]
pub struct Effects {
    pub(crate) drops: Vec<u64>,
    pub(crate) gen_bytes: Vec<u8>,
    pub(crate) gen: Vec<(u32, u32)>,
    /// GENERATEs that emitted nothing: their source and destination are of
    /// different families (one IPv4, one IPv6), so no packet can carry them.
    pub(crate) skipped: u32,
}

impl Effects {
    /// Forget everything (a faulted run's effects).
    pub(super) fn clear(&mut self) {
        self.drops.iter_mut().for_each(|w| *w = 0);
        self.gen_bytes.clear();
        self.gen.clear();
        self.skipped = 0;
    }
    /// Whether view position `i` is dropped.
    pub fn is_dropped(&self, i: usize) -> bool {
        self.drops.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
    /// Generated packets (IPv4 or IPv6 bytes).
    pub fn generated(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.gen.iter().map(|&(o, l)| &self.gen_bytes[o as usize..o as usize + l as usize])
    }
    /// GENERATEs skipped: source and destination of different families.
    pub fn skipped_generations(&self) -> u32 {
        self.skipped
    }
}

/// A grouping register: groups in first-appearance order, members in
/// arrival order.
#[derive(Default, Clone, Debug)]
pub(super) struct Groups {
    /// Each group's key: an address (IPv4 as IPv4-mapped) or a field's value.
    pub(super) keys: Vec<u128>,
    /// `starts[g]..starts[g + 1]` are group g's members.
    pub(super) starts: Vec<u32>,
    /// View positions, group after group.
    pub(super) members: Vec<u32>,
}

/// Where the needle searcher of a string register's value is kept.
#[derive(Default, Clone, Copy, Debug)]
pub(super) enum FinderSrc {
    #[default]
    None,
    Const(u16),
    Param(u16),
}

/// A string register.
#[derive(Default, Debug)]
pub(super) struct StrVal {
    pub(super) bytes: Vec<u8>,
    /// The prepared searcher of a constant or parameter value; `None` for a
    /// string made at run time.
    pub(super) finder: FinderSrc,
}

impl Clone for StrVal {
    fn clone(&self) -> StrVal {
        StrVal { bytes: self.bytes.clone(), finder: self.finder }
    }
    /// A copy into a register keeps its buffer: no allocation once it is large enough.
    fn clone_from(&mut self, src: &StrVal) {
        self.bytes.clone_from(&src.bytes);
        self.finder = src.finder;
    }
}

/// A map from `u128` keys (addresses, field values, hashes) to `u32` ids for
/// up to a window of keys, cleared in O(1) by a generation stamp.
#[derive(Default, Debug)]
pub(super) struct KeyTable {
    keys: Vec<u128>,
    vals: Vec<u32>,
    stamp: Vec<u32>,
    gen: u32,
    mask: usize,
}

impl KeyTable {
    pub(super) fn reset(&mut self, n: usize) {
        let cap = (n * 2).next_power_of_two().max(16);
        if cap > self.keys.len() {
            self.keys = vec![0; cap];
            self.vals = vec![0; cap];
            self.stamp = vec![0; cap];
            self.gen = 0;
        }
        self.mask = self.keys.len() - 1;
        self.gen = self.gen.wrapping_add(1);
        if self.gen == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.gen = 1;
        }
    }

    /// The id of `key`, inserting `new` if absent: `(id, inserted)`.
    #[inline]
    pub(super) fn get_or_insert(&mut self, key: u128, new: u32) -> (u32, bool) {
        // Both halves mixed: IPv4-mapped keys differ in the low half only,
        // IPv6 prefixes often in the high half only.
        let folded = (key as u64) ^ ((key >> 64) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let mut i = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask;
        loop {
            if self.stamp[i] != self.gen {
                self.stamp[i] = self.gen;
                self.keys[i] = key;
                self.vals[i] = new;
                return (new, true);
            }
            if self.keys[i] == key {
                return (self.vals[i], false);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// Per-thread VM state: registers and scratch, reused across runs. (Its
/// fields are the interpreter's; none is public.)
pub struct Machine {
    /// Packets in the view of the current run (positions `0..packets`).
    pub(super) packets: usize,
    /// `u64` words of one set register: `packets` rounded up to 64, over 64.
    pub(super) words_per_set: usize,
    /// The scalar registers (bool, number, address, a prefix's network), by
    /// scalar slot. Addresses are 128-bit, IPv4 as IPv4-mapped.
    pub(super) scalars: Vec<u128>,
    /// A prefix register's length (0..=128), by scalar slot (0 for the
    /// other scalars): a prefix is `(scalars[i], lens[i])`.
    pub(super) lens: Vec<u8>,
    /// The set registers, `words_per_set` words each, back to back.
    pub(super) sets: Vec<u64>,
    /// The grouping registers.
    pub(super) groups: Vec<Groups>,
    /// The string registers.
    pub(super) strs: Vec<StrVal>,
    /// The address-list registers.
    pub(super) addrs: Vec<Vec<u128>>,
    /// Content lists: view positions of the first packet with each payload.
    pub(super) contents: Vec<Vec<u32>>,
    /// Snapshots of the groupings walked by enclosing `foreach`es, by depth.
    pub(super) snaps: Vec<Groups>,
    /// CONTAINS_STRING's TCP flows of a set.
    pub(super) flows: Groups,
    /// `foreach` nesting depth.
    pub(super) depth: usize,
    /// Key-to-id table of the grouping routines.
    pub(super) table: KeyTable,
    /// Group (or flow) id of each member of the set being grouped, in
    /// arrival order: the input of `counting_sort`.
    pub(super) member_group: Vec<u32>,
    /// View position of each member, parallel to `member_group`.
    pub(super) member_pos: Vec<u32>,
    /// View position of the first packet of each flow (CONTAINS_STRING),
    /// by flow id: the representative its later packets are compared with.
    pub(super) flow_first: Vec<u32>,
    /// Collision chains of `table`'s ids (next id with the same hash).
    pub(super) chain: Vec<u32>,
    /// A flow's contiguous payloads as one stream; a generated payload.
    pub(super) stream: Vec<u8>,
    /// Scratch of CONCAT.
    pub(super) strbuf: Vec<u8>,
    /// Keyed hash of payloads (the sender chooses them).
    pub(super) hasher: std::collections::hash_map::RandomState,
    /// The current run's effects.
    pub(super) effects: Effects,
    /// Cost metered so far in the current run.
    pub(super) spent: u64,
    /// Instructions executed so far in the current run.
    pub(super) steps: u64,
    /// [`MAX_STEPS`], lowered by tests.
    pub(super) step_limit: u64,
    /// Always interpret (tests compare the chain plans with the VM).
    pub(crate) interpret_only: bool,
}

impl Default for Machine {
    fn default() -> Machine {
        Machine::new()
    }
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine").field("packets", &self.packets).finish_non_exhaustive()
    }
}

impl Machine {
    /// A new machine.
    pub fn new() -> Machine {
        Machine {
            packets: 0,
            words_per_set: 0,
            scalars: Vec::new(),
            lens: Vec::new(),
            sets: Vec::new(),
            groups: Vec::new(),
            strs: Vec::new(),
            addrs: Vec::new(),
            contents: Vec::new(),
            snaps: Vec::new(),
            flows: Groups::default(),
            depth: 0,
            table: KeyTable::default(),
            member_group: Vec::new(),
            member_pos: Vec::new(),
            flow_first: Vec::new(),
            chain: Vec::new(),
            stream: Vec::new(),
            strbuf: Vec::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            effects: Effects::default(),
            spent: 0,
            steps: 0,
            step_limit: MAX_STEPS,
            interpret_only: false,
        }
    }

    /// Run every program by interpretation, never by a compiled plan (same
    /// results, slower): to measure the interpreter, or to compare the two.
    pub fn set_interpret_only(&mut self, on: bool) {
        self.interpret_only = on;
    }

    /// The effects of the last successful run.
    pub fn effects(&self) -> &Effects {
        &self.effects
    }

    /// Lay out `p`'s registers for a view of `n` packets, all cleared.
    pub(super) fn prepare(&mut self, p: &Program, n: usize) {
        self.packets = n;
        self.words_per_set = n.div_ceil(64);
        let [ns, nset, ng, nstr, na, nc] = p.counts.map(|c| c as usize);
        self.scalars.clear();
        self.scalars.resize(ns, 0);
        self.lens.clear();
        self.lens.resize(ns, 0);
        self.sets.clear();
        self.sets.resize(nset * self.words_per_set, 0);
        if self.groups.len() < ng {
            self.groups.resize_with(ng, Groups::default);
        }
        if self.strs.len() < nstr {
            self.strs.resize_with(nstr, StrVal::default);
        }
        if self.addrs.len() < na {
            self.addrs.resize_with(na, Vec::new);
        }
        if self.contents.len() < nc {
            self.contents.resize_with(nc, Vec::new);
        }
        self.effects.drops.clear();
        self.effects.drops.resize(self.words_per_set, 0);
        self.effects.gen_bytes.clear();
        self.effects.gen.clear();
        self.effects.skipped = 0;
        self.depth = 0;
        self.spent = 0;
        self.steps = 0;
    }
}
