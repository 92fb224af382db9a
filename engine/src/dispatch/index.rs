//! The dispatch table's indexes: end users by exact address (an
//! open-addressing table whose slots also keep the per-window state of the
//! end users decided during the pass), edge routers by prefix, and the
//! plans and entries they point to.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

use vinet_checker::bytecode::Field;
use vinet_checker::ModuleId;

use super::{Dest, Tally};
use crate::vm::{EndUserStep, Instance, StepCol};

/// A fast hasher for `u128` keys (installed addresses and prefixes, which the
/// router's clients, not the traffic, choose): the two halves folded, then a
/// folded 64x64->128 multiply, which mixes high and low bits alike (prefix
/// keys have zero low bits; IPv6 prefixes of /64 or shorter a zero low half).
#[derive(Default, Clone, Copy)]
pub(crate) struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        let p = u128::from(self.0) * 0x9E37_79B9_7F4A_7C15_u128;
        (p as u64) ^ ((p >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).rotate_left(5);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = self.0.rotate_left(32) ^ u64::from(n);
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = self.0.rotate_left(32) ^ fold(n);
    }
}

/// The two halves of an address in one word: the low half, and the high
/// half multiplied by an odd constant (so that neither half's bits cancel
/// the other's in the prefixes of one length).
#[inline]
pub(super) fn fold(n: u128) -> u64 {
    (n as u64) ^ ((n >> 64) as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
}

pub(super) type AddrMap<V> = HashMap<u128, V, std::hash::BuildHasherDefault<AddrHasher>>;

/// What the per-window pass needs of a client, apart from its (colder)
/// [`DestEntry`]. (End users decided during the pass keep their per-window
/// state in their [`ExactSlot`] instead, and do not touch this.)
#[derive(Clone, Debug, Default)]
#[repr(C, align(16))]
pub(super) struct Hot {
    /// Window in which `local` is valid.
    pub(super) epoch: u64,
    /// Bucket index in that window.
    pub(super) local: u32,
    /// The client's one installation, or [`SEVERAL`]; with [`DIRECT`] set
    /// when that installation's program is decided packet by packet during
    /// the bucketing pass (a chain plan that can never exceed its bound).
    pub(super) first: u32,
}

/// [`ExactSlot::d`] of a free slot.
pub(super) const EMPTY: u32 = u32::MAX;

/// One end user of the [`ExactIndex`]: 64 bytes (a 128-bit address and the
/// 28 bytes below), one to a cache line. For a
/// client decided packet by packet during the bucketing pass (`plan` set),
/// it also holds everything the pass reads and writes for it: the plan, the
/// window it last had packets in, and its counters since they were last
/// folded into its installation's [`super::ProgramStats`] (see
/// [`super::Dispatch::fold`]). The counters are narrow: such a client's program
/// costs at most `u16::MAX` a window (checked when the plan is set), so
/// `windows` windows cost less than `2^32`, and they are folded before
/// `windows` wraps.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(super) struct ExactSlot {
    /// The address (IPv4 as IPv4-mapped).
    pub(super) key: u128,
    /// The client's [`DestEntry`] index; [`EMPTY`] for a free slot.
    pub(super) d: u32,
    /// Low 32 bits of the last window the client had packets in (0: none
    /// since the epochs last wrapped; see [`super::Dispatch::run_window_with`]).
    pub(super) epoch: u32,
    /// 1 + index in [`super::Dispatch::plans`] of its instance when the client is
    /// decided during the pass; 0 when not.
    pub(super) plan: u16,
    /// Pending: windows with packets.
    pub(super) windows: u16,
    /// Cost in window `epoch`.
    pub(super) cur: u16,
    /// Pending: the largest cost of one window.
    pub(super) max: u16,
    /// Pending: packets.
    pub(super) packets: u32,
    /// Pending: packets dropped.
    pub(super) dropped: u32,
    /// Pending: cost.
    pub(super) cost: u32,
}

impl ExactSlot {
    pub(super) const FREE: ExactSlot =
        ExactSlot { key: 0, d: EMPTY, epoch: 0, plan: 0, windows: 0, cur: 0, max: 0, packets: 0, dropped: 0, cost: 0 };

    pub(super) fn pending(&self) -> Tally {
        Tally {
            windows: u64::from(self.windows),
            packets: u64::from(self.packets),
            discarded: u64::from(self.dropped),
            cost: u64::from(self.cost),
            max_cost: u64::from(self.max),
            ..Tally::default()
        }
    }

    /// The pending counters, which are reset.
    pub(super) fn take_pending(&mut self) -> Tally {
        let p = self.pending();
        self.windows = 0;
        self.packets = 0;
        self.dropped = 0;
        self.cost = 0;
        self.max = 0;
        p
    }
}

/// The index of end users by exact address: open addressing with linear
/// probing, at most half full, slots of one [`ExactSlot`]. A packet to one
/// of many clients costs one cache line here (two with hashbrown's control
/// bytes and slot, and a third for the client's entry, before).
#[derive(Debug)]
pub(super) struct ExactIndex {
    /// A power of two long, at least [`ExactIndex::MIN`].
    pub(super) slots: Vec<ExactSlot>,
    pub(super) len: usize,
    /// 64 - log2(slots.len()).
    pub(super) shift: u32,
}

impl ExactIndex {
    pub(super) const MIN: usize = 16;

    pub(super) fn new() -> ExactIndex {
        ExactIndex { slots: vec![ExactSlot::FREE; Self::MIN], len: 0, shift: 64 - Self::MIN.trailing_zeros() }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The home slot of `key`: the high bits of a multiplicative hash (the
    /// addresses are the router's clients', not the traffic's; consecutive
    /// addresses land far apart and do not collide).
    #[inline]
    pub(super) fn home(&self, key: u128) -> usize {
        (fold(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    pub(super) fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Read the home slot of `key` (to pull its line into the cache ahead of
    /// use: a prefetch in safe code).
    #[inline]
    pub(super) fn peek(&self, key: u128) -> u32 {
        self.slots.get(self.home(key)).map_or(0, |s| s.key as u32)
    }

    /// Read the home slots of `keys` in a tight loop of independent loads,
    /// so that their cache misses overlap (a prefetch in safe code): with
    /// many clients they are mostly misses, and the lookups that follow find
    /// them in the cache.
    pub(super) fn peek_all(&self, keys: &[u128]) -> u32 {
        keys.iter().fold(0, |t, &k| t ^ self.peek(k))
    }

    /// The slot of `key`.
    #[inline]
    pub(super) fn find(&self, key: u128) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(key);
        // Ends: the table is at most half full.
        loop {
            let s = self.slots.get(i)?;
            if s.d == EMPTY {
                return None;
            }
            if s.key == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    pub(super) fn get_mut(&mut self, key: u128) -> Option<&mut ExactSlot> {
        let i = self.find(key)?;
        self.slots.get_mut(i)
    }

    /// Add `key` (not present) for client `d`.
    pub(super) fn insert(&mut self, key: u128, d: u32) {
        debug_assert!(self.find(key).is_none() && d != EMPTY);
        if (self.len + 1) * 2 > self.slots.len() {
            let grown = vec![ExactSlot::FREE; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            self.shift -= 1;
            for s in old.into_iter().filter(|s| s.d != EMPTY) {
                self.place(s);
            }
        }
        self.place(ExactSlot { key, d, ..ExactSlot::FREE });
        self.len += 1;
    }

    pub(super) fn place(&mut self, s: ExactSlot) {
        let mask = self.mask();
        let mut i = self.home(s.key);
        while self.slots[i].d != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Remove `key`, closing the gap (backward shift: every later slot of
    /// the run that may move closer to its home does).
    pub(super) fn remove(&mut self, key: u128) -> Option<ExactSlot> {
        let mut hole = self.find(key)?;
        let gone = self.slots[hole];
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        while self.slots[j].d != EMPTY {
            let home = self.home(self.slots[j].key);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = ExactSlot::FREE;
        self.len -= 1;
        Some(gone)
    }

    pub(super) fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<ExactSlot>()
    }
}

/// Filters of a [`DirectPlan`] after its leading ones.
pub(super) const PLAN_STEPS: usize = 4;

/// An instance's chain plan as end users' packets meet it, decided without
/// going through the instance: the same cost and decision as
/// [`Instance::chain_packet`] with THIS_IP = the packet's destination. The
/// filters that every such packet passes (`dst == THIS_IP`, the firewall's
/// first) are only charged.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DirectPlan {
    /// Units of the leading filters every packet passes.
    pub(super) lead: u64,
    /// DISCARD's unit.
    pub(super) discard: u64,
    /// What the client's run costs once a window, besides its packets ([`Instance::run_base`]).
    pub(super) base: u64,
    /// The other filters, `steps[..len]`.
    pub(super) len: usize,
    pub(super) steps: [EndUserStep; PLAN_STEPS],
}

impl DirectPlan {
    pub(super) fn of(i: &Instance) -> Option<DirectPlan> {
        let (chain, discard) = i.end_user_chain()?;
        // A field test always needs the packet's fields, even one every
        // packet passes: only address tests lead.
        let always = |f: &EndUserStep| {
            let to_this = f.col == StepCol::Dst && f.this && f.mask == u128::MAX;
            let any = matches!(f.col, StepCol::Src | StepCol::Dst) && !f.this && f.mask == 0 && f.net == 0;
            f.span == 0 && (to_this || any)
        };
        let skip = chain.iter().take_while(|f| always(f)).count();
        let rest = chain.get(skip..)?;
        if rest.len() > PLAN_STEPS {
            return None;
        }
        let mut p = DirectPlan { lead: 0, discard, base: i.run_base(), len: rest.len(), steps: [EndUserStep::default(); PLAN_STEPS] };
        for f in &chain[..skip] {
            p.lead = p.lead.checked_add(f.unit)?;
        }
        p.steps[..rest.len()].copy_from_slice(rest);
        Some(p)
    }

    /// The cost and decision for a packet (source, destination, and its
    /// transport fields as `l4` reads them, [`crate::window::Columns::field`]).
    #[inline]
    pub(super) fn decide(&self, src: u128, dst: u128, l4: impl Fn(Field) -> u32) -> (u64, bool) {
        let mut cost = self.lead;
        for f in self.steps.iter().take(self.len) {
            cost += f.unit;
            let v = match f.col {
                StepCol::Src => src,
                StepCol::Dst => dst,
                StepCol::Field(x) => u128::from(l4(x)),
            };
            let key = if f.this { dst } else { f.net };
            if (v & f.mask).wrapping_sub(key) > f.span {
                return (cost, false);
            }
        }
        (cost + self.discard, true)
    }
}

/// The plans of the clients decided during the pass ([`ExactSlot::plan`]
/// is 1 + an index here): most clients share a few instances.
#[derive(Debug, Default)]
pub(super) struct Plans {
    /// Read by the pass.
    pub(super) fast: Vec<DirectPlan>,
    pub(super) list: Vec<Option<Arc<Instance>>>,
    pub(super) refs: Vec<u32>,
    pub(super) by_ptr: HashMap<usize, u16>,
    pub(super) free: Vec<u16>,
}

impl Plans {
    /// A reference to `i`'s entry (1 + its index); `None` when its chain
    /// does not fit a [`DirectPlan`] or the table holds `u16::MAX`
    /// instances.
    pub(super) fn acquire(&mut self, i: &Arc<Instance>) -> Option<u16> {
        let ptr = Arc::as_ptr(i) as usize;
        if let Some(&p) = self.by_ptr.get(&ptr) {
            self.refs[usize::from(p)] += 1;
            return Some(p + 1);
        }
        let plan = DirectPlan::of(i)?;
        let p = match self.free.pop() {
            Some(p) => p,
            None if self.list.len() >= usize::from(u16::MAX) => return None,
            None => {
                self.fast.push(DirectPlan::default());
                self.list.push(None);
                self.refs.push(0);
                (self.list.len() - 1) as u16
            }
        };
        self.fast[usize::from(p)] = plan;
        self.list[usize::from(p)] = Some(Arc::clone(i));
        self.refs[usize::from(p)] = 1;
        self.by_ptr.insert(ptr, p);
        Some(p + 1)
    }

    /// Drop a reference (1 + index, as [`Plans::acquire`] gave it).
    pub(super) fn release(&mut self, plan: u16) {
        let Some(p) = plan.checked_sub(1).map(usize::from) else { return };
        let Some(r) = self.refs.get_mut(p) else { return };
        *r -= 1;
        if *r == 0 {
            if let Some(i) = self.list[p].take() {
                self.by_ptr.remove(&(Arc::as_ptr(&i) as usize));
            }
            self.free.push(p as u16);
        }
    }
}

/// [`Hot::first`] of a client with no or several installations: see its
/// [`DestEntry`].
pub(super) const SEVERAL: u32 = 0x7fff_ffff;

/// The flag bit of [`Hot::first`]; installation slots stay below it.
pub(super) const DIRECT: u32 = 0x8000_0000;

/// The installations of one client: the first inline (most clients install
/// one program), the rest on the heap. Saves a pointer chase per bucket.
#[derive(Debug, Default)]
pub(super) struct SlotList {
    pub(super) first: Option<u32>,
    pub(super) rest: Vec<u32>,
}

impl SlotList {
    pub(super) fn push(&mut self, s: u32) {
        if self.first.is_none() {
            self.first = Some(s);
        } else {
            self.rest.push(s);
        }
    }
    pub(super) fn remove(&mut self, s: u32) {
        if self.first == Some(s) {
            self.first = if self.rest.is_empty() { None } else { Some(self.rest.remove(0)) };
        } else {
            self.rest.retain(|&x| x != s);
        }
    }
    pub(super) fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[derive(Debug)]
pub(super) struct DestEntry {
    pub(super) dest: Dest,
    pub(super) installs: SlotList,
}

/// A program is identified by its module and the policy it was checked
/// against: the checker derives the complexity from those two alone, so two
/// `Checked` values with the same key prepare into the same `Program`.
pub(super) type ProgramKey = (ModuleId, [u8; 32]);
