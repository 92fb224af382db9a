//! The execution environment of the paper's Fig. 4: many programs installed
//! for many clients, indexed by the destinations they are confined to.
//!
//! - **Index.** End users are keyed by their exact address in one
//!   open-addressing table whose 32-byte slots also hold the per-window
//!   state of the end users decided during the bucketing pass (below), so
//!   that such a packet costs one cache line however many clients are
//!   installed; edge-router clients by their prefix, in one hash map per
//!   prefix length present, probed longest first. A packet costs one lookup
//!   plus one per distinct edge-router prefix length installed (at most 33),
//!   however many programs are installed.
//! - **Deciding during the pass.** With many clients installed, buckets are
//!   small, and a client whose program is a chain of keyed filters that no
//!   window can make exceed its bound (the firewall) is decided packet by
//!   packet as its packets are bucketed. The index lines of a window's
//!   packets are first read in a tight loop of independent loads, so that
//!   their cache misses overlap instead of stalling the pass one by one.
//! - **Nested prefixes.** A packet whose destination lies in several installed
//!   client prefixes (or in a prefix and at an end user's address) goes into
//!   *every* matching client's bucket. Each program is proved confined to its
//!   own client's traffic, so every client whose traffic it is gets to see it;
//!   drops are OR-ed (a frame is forwarded only if no program dropped it).
//! - **Buckets.** Per window, one pass assigns each packet to the buckets of
//!   its destinations; a counting sort lays the buckets out as contiguous
//!   column ranges, so each client's programs run over plain slices.
//! - **Sharing.** Installations of the same module (checked against the same
//!   policy) share one [`Program`]; those that also have the same parameter
//!   values share one [`Instance`] (code, register layout, needle searchers).
//!   An installation itself is a small entry: its client, an `Arc` and its
//!   counters.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use vinet_checker::bytecode::Const;
use vinet_checker::policy::ClientKind;
use vinet_checker::{netmask, Checked, ModuleId};

use crate::vm::{BindError, Binding, EndUserStep, Fault, Instance, Machine, Program, This};
use crate::window::{Columns, Window};

/// A fast hasher for `u32` keys (installed addresses and prefixes, which the
/// router's clients, not the traffic, choose): a folded 64x64->128 multiply,
/// which mixes high and low bits alike (prefix keys have zero low bits).
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
}

type AddrMap<V> = HashMap<u32, V, BuildHasherDefault<AddrHasher>>;

/// Where a client's traffic goes: what its bucket holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Packets to this address (an end-user client).
    Exact(u32),
    /// Packets inside this prefix (an edge-router client).
    Prefix(u32, u8),
}

/// An installation's handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstallId {
    slot: u32,
    gen: u32,
}

/// Counters of one installation. (The counters every run updates come
/// first: with `Installed`'s layout they share one cache line with what a
/// run reads.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ProgramStats {
    /// Windows it ran in (windows where its bucket was non-empty).
    pub windows: u64,
    /// Packets in its buckets, summed over windows.
    pub packets_in: u64,
    /// Packets it marked dropped.
    pub discarded: u64,
    /// Metered cost summed over successful runs.
    pub total_cost: u64,
    /// Largest metered cost of one run.
    pub max_cost: u64,
    /// Packets it generated.
    pub generated: u64,
    /// Runs that faulted.
    pub faults: u64,
    /// The certified complexity (cost bound per window).
    pub certified: u64,
}

/// Why an installation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// Parameter values do not fit the program.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The program was checked for windows smaller than the router's.
    #[error("the program was checked for windows of {checked} packets, this router runs windows of {router}")]
    WindowMismatch {
        /// W of the policy the program was checked against.
        checked: u32,
        /// The router's W.
        router: u32,
    },
    /// THIS_SUBNET_IP is malformed (host bits set, length over 32).
    #[error("malformed client prefix {0:#010x}/{1}")]
    BadPrefix(u32, u8),
    /// The table holds 2^31 - 1 installations.
    #[error("the dispatch table is full")]
    Full,
}

/// A listing entry.
#[derive(Clone, Debug)]
pub struct InstallInfo<'a> {
    /// Its handle.
    pub id: InstallId,
    /// Its client's bucket.
    pub dest: Dest,
    /// THIS_IP / THIS_SUBNET_IP it runs with.
    pub this: This,
    /// The module.
    pub module: ModuleId,
    /// Parameter values.
    pub params: &'a [Const],
    /// Counters.
    pub stats: ProgramStats,
    /// The last fault, as a bug report.
    pub last_fault: Option<&'a Fault>,
}

/// An installation. Laid out so that what a run reads and writes (the
/// instance, the client, the first counters) is one cache line.
#[derive(Debug)]
#[repr(C, align(64))]
struct Installed {
    instance: Arc<Instance>,
    this: This,
    stats: ProgramStats,
    id: InstallId,
    dest: u32,
    last_fault: Option<Box<Fault>>,
}

/// What the per-window pass needs of a client, apart from its (colder)
/// [`DestEntry`]. (End users decided during the pass keep their per-window
/// state in their [`ExactSlot`] instead, and do not touch this.)
#[derive(Clone, Debug, Default)]
#[repr(C, align(16))]
struct Hot {
    /// Window in which `local` is valid.
    epoch: u64,
    /// Bucket index in that window.
    local: u32,
    /// The client's one installation, or [`SEVERAL`]; with [`DIRECT`] set
    /// when that installation's program is decided packet by packet during
    /// the bucketing pass (a chain plan that can never exceed its bound).
    first: u32,
}

/// Counters of runs not yet folded into an installation's stats.
#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    windows: u64,
    packets: u64,
    discarded: u64,
    cost: u64,
    max_cost: u64,
}

impl Pending {
    fn add_to(&self, st: &mut ProgramStats) {
        st.windows += self.windows;
        st.packets_in += self.packets;
        st.discarded += self.discarded;
        st.total_cost += self.cost;
        st.max_cost = st.max_cost.max(self.max_cost);
    }
}

/// [`ExactSlot::d`] of a free slot.
const EMPTY: u32 = u32::MAX;

/// One end user of the [`ExactIndex`]: 32 bytes, two to a cache line. For a
/// client decided packet by packet during the bucketing pass (`plan` set),
/// it also holds everything the pass reads and writes for it: the plan, the
/// window it last had packets in, and its counters since they were last
/// folded into its installation's [`ProgramStats`] (see
/// [`Dispatch::fold`]). The counters are narrow: such a client's program
/// costs at most `u16::MAX` a window (checked when the plan is set), so
/// `windows` windows cost less than `2^32`, and they are folded before
/// `windows` wraps.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(32))]
struct ExactSlot {
    /// The address.
    key: u32,
    /// The client's [`DestEntry`] index; [`EMPTY`] for a free slot.
    d: u32,
    /// Low 32 bits of the last window the client had packets in (0: none
    /// since the epochs last wrapped; see [`Dispatch::run_window_with`]).
    epoch: u32,
    /// 1 + index in [`Dispatch::plans`] of its instance when the client is
    /// decided during the pass; 0 when not.
    plan: u16,
    /// Pending: windows with packets.
    windows: u16,
    /// Cost in window `epoch`.
    cur: u16,
    /// Pending: the largest cost of one window.
    max: u16,
    /// Pending: packets.
    packets: u32,
    /// Pending: packets dropped.
    dropped: u32,
    /// Pending: cost.
    cost: u32,
}

impl ExactSlot {
    const FREE: ExactSlot = ExactSlot { key: 0, d: EMPTY, epoch: 0, plan: 0, windows: 0, cur: 0, max: 0, packets: 0, dropped: 0, cost: 0 };

    fn pending(&self) -> Pending {
        Pending {
            windows: u64::from(self.windows),
            packets: u64::from(self.packets),
            discarded: u64::from(self.dropped),
            cost: u64::from(self.cost),
            max_cost: u64::from(self.max),
        }
    }

    /// The pending counters, which are reset.
    fn take_pending(&mut self) -> Pending {
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
struct ExactIndex {
    /// A power of two long, at least [`ExactIndex::MIN`].
    slots: Vec<ExactSlot>,
    len: usize,
    /// 64 - log2(slots.len()).
    shift: u32,
}

impl ExactIndex {
    const MIN: usize = 16;

    fn new() -> ExactIndex {
        ExactIndex { slots: vec![ExactSlot::FREE; Self::MIN], len: 0, shift: 64 - Self::MIN.trailing_zeros() }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The home slot of `key`: the high bits of a multiplicative hash (the
    /// addresses are the router's clients', not the traffic's; consecutive
    /// addresses land far apart and do not collide).
    #[inline]
    fn home(&self, key: u32) -> usize {
        (u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Read the home slot of `key` (to pull its line into the cache ahead of
    /// use: a prefetch in safe code).
    #[inline]
    fn peek(&self, key: u32) -> u32 {
        self.slots.get(self.home(key)).map_or(0, |s| s.key)
    }

    /// Read the home slots of `keys` in a tight loop of independent loads,
    /// so that their cache misses overlap (a prefetch in safe code): with
    /// many clients they are mostly misses, and the lookups that follow find
    /// them in the cache.
    fn peek_all(&self, keys: &[u32]) -> u32 {
        keys.iter().fold(0, |t, &k| t ^ self.peek(k))
    }

    /// The slot of `key`.
    #[inline]
    fn find(&self, key: u32) -> Option<usize> {
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

    fn get_mut(&mut self, key: u32) -> Option<&mut ExactSlot> {
        let i = self.find(key)?;
        self.slots.get_mut(i)
    }

    /// Add `key` (not present) for client `d`.
    fn insert(&mut self, key: u32, d: u32) {
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

    fn place(&mut self, s: ExactSlot) {
        let mask = self.mask();
        let mut i = self.home(s.key);
        while self.slots[i].d != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = s;
    }

    /// Remove `key`, closing the gap (backward shift: every later slot of
    /// the run that may move closer to its home does).
    fn remove(&mut self, key: u32) -> Option<ExactSlot> {
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

    fn bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<ExactSlot>()
    }
}

/// Filters of a [`DirectPlan`] after its leading ones.
const PLAN_STEPS: usize = 4;

/// An instance's chain plan as end users' packets meet it, decided without
/// going through the instance: the same cost and decision as
/// [`Instance::chain_packet`] with THIS_IP = the packet's destination. The
/// filters that every such packet passes (`dst == THIS_IP`, the firewall's
/// first) are only charged.
#[derive(Clone, Copy, Debug, Default)]
struct DirectPlan {
    /// Units of the leading filters every packet passes.
    lead: u64,
    /// DISCARD's unit.
    discard: u64,
    /// The other filters, `steps[..len]`.
    len: usize,
    steps: [EndUserStep; PLAN_STEPS],
}

impl DirectPlan {
    fn of(i: &Instance) -> Option<DirectPlan> {
        let (chain, discard) = i.end_user_chain()?;
        let always = |f: &EndUserStep| (f.on_dst && f.this && f.mask == u32::MAX) || (!f.this && f.mask == 0 && f.net == 0);
        let skip = chain.iter().take_while(|f| always(f)).count();
        let rest = chain.get(skip..)?;
        if rest.len() > PLAN_STEPS {
            return None;
        }
        let mut p = DirectPlan { lead: 0, discard, len: rest.len(), steps: [EndUserStep::default(); PLAN_STEPS] };
        for f in &chain[..skip] {
            p.lead = p.lead.checked_add(f.unit)?;
        }
        p.steps[..rest.len()].copy_from_slice(rest);
        Some(p)
    }

    /// The cost and decision for a packet (source, destination).
    #[inline]
    fn decide(&self, src: u32, dst: u32) -> (u64, bool) {
        let mut cost = self.lead;
        for f in self.steps.iter().take(self.len) {
            cost += f.unit;
            let col = if f.on_dst { dst } else { src };
            let key = if f.this { dst } else { f.net };
            if col & f.mask != key {
                return (cost, false);
            }
        }
        (cost + self.discard, true)
    }
}

/// The plans of the clients decided during the pass ([`ExactSlot::plan`]
/// is 1 + an index here): most clients share a few instances.
#[derive(Debug, Default)]
struct Plans {
    /// Read by the pass.
    fast: Vec<DirectPlan>,
    list: Vec<Option<Arc<Instance>>>,
    refs: Vec<u32>,
    by_ptr: HashMap<usize, u16>,
    free: Vec<u16>,
}

impl Plans {
    /// A reference to `i`'s entry (1 + its index); `None` when its chain
    /// does not fit a [`DirectPlan`] or the table holds `u16::MAX`
    /// instances.
    fn acquire(&mut self, i: &Arc<Instance>) -> Option<u16> {
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
    fn release(&mut self, plan: u16) {
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
const SEVERAL: u32 = 0x7fff_ffff;

/// The flag bit of [`Hot::first`]; installation slots stay below it.
const DIRECT: u32 = 0x8000_0000;

/// The per-window sums of a client decided packet by packet.
#[derive(Clone, Copy, Debug, Default)]
struct Direct {
    packets: u64,
    dropped: u64,
    cost: u64,
}

/// The installations of one client: the first inline (most clients install
/// one program), the rest on the heap. Saves a pointer chase per bucket.
#[derive(Debug, Default)]
struct SlotList {
    first: Option<u32>,
    rest: Vec<u32>,
}

impl SlotList {
    fn push(&mut self, s: u32) {
        if self.first.is_none() {
            self.first = Some(s);
        } else {
            self.rest.push(s);
        }
    }
    fn remove(&mut self, s: u32) {
        if self.first == Some(s) {
            self.first = if self.rest.is_empty() { None } else { Some(self.rest.remove(0)) };
        } else {
            self.rest.retain(|&x| x != s);
        }
    }
    fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

#[derive(Debug)]
struct DestEntry {
    dest: Dest,
    installs: SlotList,
}

/// A program is identified by its module and the policy it was checked
/// against: the checker derives the complexity from those two alone, so two
/// `Checked` values with the same key prepare into the same `Program`.
type ProgramKey = (ModuleId, [u8; 32]);

/// What one window's dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowReport {
    /// Buckets (clients) with packets.
    pub buckets: u32,
    /// Program runs.
    pub runs: u32,
    /// Runs that faulted.
    pub faults: u32,
}

/// The dispatch table and its per-window scratch.
pub struct Dispatch {
    window_packets: u32,
    programs: HashMap<ProgramKey, Arc<Program>>,
    instances: HashMap<(ProgramKey, Vec<Const>), Arc<Instance>>,
    dests: Vec<Option<DestEntry>>,
    /// Parallel to `dests`.
    hot: Vec<Hot>,
    free_dests: Vec<u32>,
    dest_index: HashMap<Dest, u32>,
    exact: ExactIndex,
    /// The instances of the end users decided during the pass.
    plans: Plans,
    /// One map per prefix length present, longest first.
    prefixes: Vec<(u8, AddrMap<u32>)>,
    installs: Vec<Option<Installed>>,
    gens: Vec<u32>,
    free_installs: Vec<u32>,
    live: usize,
    // Per-window scratch, reused.
    epoch: u64,
    touched: Vec<u32>,
    counts: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    perm: Vec<u32>,
    buckets: Columns,
    win_drops: Vec<u64>,
    gen_bytes: Vec<u8>,
    gen: Vec<(u32, u32)>,
    machine: Machine,
    /// Sink of the reads that pull installations into the cache.
    touch: u64,
    /// Per bucket of the window: the sums of a client decided during the pass.
    direct: Vec<Direct>,
    /// Exact hits (packet, client) of the window not decided during the pass.
    rest: Vec<(u32, u32)>,
    /// Packet-local plans on small buckets (off only in tests, to compare).
    fast_paths: bool,
}

/// Buckets of at most this many packets run a program's packet-local plan
/// (when it has one) instead of the VM: per packet the plan costs a few
/// operations, while a VM run costs a fixed setup; the VM's vectorized set
/// instructions win on large buckets.
const LOCAL_ROWS: usize = 32;

/// Installations from which clients with a never-over chain plan are
/// decided during the bucketing pass (below, buckets tend to be large).
const DIRECT_CLIENTS: usize = 64;

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch").field("installed", &self.live).field("programs", &self.programs.len()).finish()
    }
}

/// The end users decided during the bucketing pass, over a window's
/// packets (columns `src`, `dst`): each packet to such a client is decided by
/// its [`DirectPlan`] and counted in its [`ExactSlot`]; the other exact hits
/// go to `rest` as (packet, client), in packet order. Returns the number of
/// such clients with packets (each one bucket and one run). Kept apart from
/// the general pass, so that this loop stays small.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn decide_end_users(
    exact: &mut ExactIndex, plans: &[DirectPlan], hot: &[Hot], installs: &mut [Option<Installed>], src: &[u32], dst: &[u32], ep32: u32,
    win_drops: &mut [u64], rest: &mut Vec<(u32, u32)>,
) -> u32 {
    let mut buckets = 0u32;
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &dst[..n]);
    for i in 0..n {
        let (s_addr, d_addr) = (src[i], dst[i]);
        let Some(s) = exact.find(d_addr).and_then(|k| exact.slots.get_mut(k)) else { continue };
        let Some(plan) = plans.get(usize::from(s.plan).wrapping_sub(1)) else {
            rest.push((i as u32, s.d));
            continue;
        };
        if s.epoch != ep32 {
            if s.windows == u16::MAX {
                // Fold before the counters could wrap.
                let first = hot.get(s.d as usize).map_or(SEVERAL, |h| h.first & !DIRECT);
                if let Some(Some(inst)) = installs.get_mut(first as usize) {
                    s.take_pending().add_to(&mut inst.stats);
                }
            }
            s.epoch = ep32;
            s.windows += 1;
            s.cur = 0;
            buckets += 1;
        }
        let (cost, drop) = plan.decide(s_addr, d_addr);
        // In range: a window costs this client at most u16::MAX (see
        // `Dispatch::refresh_hot`).
        s.cur += cost as u16;
        s.max = s.max.max(s.cur);
        s.cost += cost as u32;
        s.packets += 1;
        if drop {
            s.dropped += 1;
            if let Some(w) = win_drops.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
        }
    }
    buckets
}

impl Dispatch {
    /// An empty table for a router with windows of `window_packets` packets.
    pub fn new(window_packets: u32) -> Dispatch {
        Dispatch {
            window_packets,
            programs: HashMap::new(),
            instances: HashMap::new(),
            dests: Vec::new(),
            hot: Vec::new(),
            free_dests: Vec::new(),
            dest_index: HashMap::new(),
            exact: ExactIndex::new(),
            plans: Plans::default(),
            prefixes: Vec::new(),
            installs: Vec::new(),
            gens: Vec::new(),
            free_installs: Vec::new(),
            live: 0,
            epoch: 0,
            touched: Vec::new(),
            counts: Vec::new(),
            pairs: Vec::new(),
            perm: Vec::new(),
            buckets: Columns::default(),
            win_drops: Vec::new(),
            gen_bytes: Vec::new(),
            gen: Vec::new(),
            machine: Machine::new(),
            touch: 0,
            direct: Vec::new(),
            rest: Vec::new(),
            fast_paths: true,
        }
    }

    /// Install a checked program for a client. The client is an end user
    /// (bucket: THIS_IP) or an edge router (bucket: THIS_SUBNET_IP) as the
    /// policy the program was checked against says.
    pub fn install(&mut self, checked: &Checked, binding: &Binding) -> Result<InstallId, InstallError> {
        let key = (checked.id(), checked.policy().digest());
        let program = match self.programs.get(&key) {
            Some(p) => Arc::clone(p),
            None => Arc::new(Program::new(checked)),
        };
        self.install_program(program, binding)
    }

    /// Install a prepared program (made from a `Checked`) for a client.
    pub fn install_program(&mut self, program: Arc<Program>, binding: &Binding) -> Result<InstallId, InstallError> {
        if program.window_packets() < self.window_packets {
            return Err(InstallError::WindowMismatch { checked: program.window_packets(), router: self.window_packets });
        }
        let (dest, this) = match program.client_kind() {
            ClientKind::EndUser => (Dest::Exact(binding.this_ip), This { ip: binding.this_ip, subnet: (binding.this_ip, 32) }),
            ClientKind::EdgeRouter => {
                let (net, len) = binding.this_subnet.ok_or(BindError::NoSubnet)?;
                if len > 32 || net & !netmask(len) != 0 {
                    return Err(InstallError::BadPrefix(net, len));
                }
                (Dest::Prefix(net, len), This { ip: binding.this_ip, subnet: (net, len) })
            }
        };
        let pkey = (program.id(), program.policy_digest());
        let program = Arc::clone(self.programs.entry(pkey).or_insert(program));
        let fresh = program.instantiate(&binding.params)?;
        let ikey = (pkey, fresh.params().to_vec());
        let instance = Arc::clone(self.instances.entry(ikey).or_insert_with(|| Arc::new(fresh)));
        let d = self.dest_slot(dest);
        let slot = match self.free_installs.pop() {
            Some(s) => s,
            None if self.installs.len() >= SEVERAL as usize => return Err(InstallError::Full),
            None => {
                self.installs.push(None);
                self.gens.push(0);
                (self.installs.len() - 1) as u32
            }
        };
        let id = InstallId { slot, gen: self.gens[slot as usize] };
        let stats = ProgramStats { certified: program.complexity(), ..ProgramStats::default() };
        self.installs[slot as usize] = Some(Installed { id, dest: d, this, instance, stats, last_fault: None });
        if let Some(e) = self.dests[d as usize].as_mut() {
            e.installs.push(slot);
        }
        self.refresh_hot(d as usize);
        self.live += 1;
        Ok(id)
    }

    fn dest_slot(&mut self, dest: Dest) -> u32 {
        if let Some(&d) = self.dest_index.get(&dest) {
            return d;
        }
        let entry = DestEntry { dest, installs: SlotList::default() };
        let d = match self.free_dests.pop() {
            Some(d) => {
                self.dests[d as usize] = Some(entry);
                self.hot[d as usize] = Hot { first: SEVERAL, ..Hot::default() };
                d
            }
            None => {
                self.dests.push(Some(entry));
                self.hot.push(Hot { first: SEVERAL, ..Hot::default() });
                (self.dests.len() - 1) as u32
            }
        };
        self.dest_index.insert(dest, d);
        match dest {
            Dest::Exact(ip) => self.exact.insert(ip, d),
            Dest::Prefix(net, len) => {
                let i = match self.prefixes.iter().position(|(l, _)| *l <= len) {
                    Some(i) if self.prefixes[i].0 == len => i,
                    Some(i) => {
                        self.prefixes.insert(i, (len, AddrMap::default()));
                        i
                    }
                    None => {
                        self.prefixes.push((len, AddrMap::default()));
                        self.prefixes.len() - 1
                    }
                };
                self.prefixes[i].1.insert(net, d);
            }
        }
        d
    }

    /// Remove an installation; returns its final counters.
    pub fn remove(&mut self, id: InstallId) -> Option<ProgramStats> {
        let d = match self.installs.get(id.slot as usize)? {
            Some(i) if i.id == id => i.dest as usize,
            _ => return None,
        };
        self.fold(d);
        let inst = self.installs.get_mut(id.slot as usize)?.take()?;
        self.gens[id.slot as usize] = self.gens[id.slot as usize].wrapping_add(1);
        self.free_installs.push(id.slot);
        self.live -= 1;
        let empty = match self.dests[d].as_mut() {
            Some(e) => {
                e.installs.remove(id.slot);
                e.installs.is_empty()
            }
            None => false,
        };
        self.refresh_hot(d);
        if empty {
            if let Some(e) = self.dests[d].take() {
                self.dest_index.remove(&e.dest);
                match e.dest {
                    Dest::Exact(ip) => {
                        self.exact.remove(ip);
                    }
                    Dest::Prefix(net, len) => {
                        if let Some(i) = self.prefixes.iter().position(|(l, _)| *l == len) {
                            self.prefixes[i].1.remove(&net);
                            if self.prefixes[i].1.is_empty() {
                                self.prefixes.remove(i);
                            }
                        }
                    }
                }
                self.free_dests.push(d as u32);
            }
        }
        let program = Arc::clone(inst.instance.program());
        let pkey = (program.id(), program.policy_digest());
        let ikey = (pkey, inst.instance.params().to_vec());
        drop(inst.instance);
        if self.instances.get(&ikey).is_some_and(|i| Arc::strong_count(i) == 1) {
            self.instances.remove(&ikey);
        }
        drop(program);
        if self.programs.get(&pkey).is_some_and(|p| Arc::strong_count(p) == 1) {
            self.programs.remove(&pkey);
        }
        Some(inst.stats)
    }

    /// Move an end user's pending counters (see [`ExactSlot`]) into its
    /// installation's stats.
    fn fold(&mut self, d: usize) {
        let Some(Some(e)) = self.dests.get(d) else { return };
        let Dest::Exact(ip) = e.dest else { return };
        let Some(s) = self.exact.get_mut(ip) else { return };
        let p = s.take_pending();
        let first = self.hot.get(d).map_or(SEVERAL, |h| h.first & !DIRECT);
        if let Some(Some(inst)) = self.installs.get_mut(first as usize) {
            p.add_to(&mut inst.stats);
        }
    }

    /// An installation's stats, with the counters still pending in its
    /// client's [`ExactSlot`].
    fn current(&self, i: &Installed) -> ProgramStats {
        let mut st = i.stats;
        if self.hot.get(i.dest as usize).is_some_and(|h| h.first & !DIRECT == i.id.slot) {
            if let Some(Some(DestEntry { dest: Dest::Exact(ip), .. })) = self.dests.get(i.dest as usize) {
                if let Some(s) = self.exact.find(*ip).and_then(|k| self.exact.slots.get(k)) {
                    s.pending().add_to(&mut st);
                }
            }
        }
        st
    }

    /// Keep a client's [`Hot::first`] (and for an end user its
    /// [`ExactSlot::plan`]) in step with its installations.
    fn refresh_hot(&mut self, d: usize) {
        self.fold(d);
        let dest = self.dests.get(d).and_then(Option::as_ref).map(|e| e.dest);
        let mut first = match self.dests.get(d).and_then(Option::as_ref) {
            Some(e) if e.installs.rest.is_empty() => e.installs.first.unwrap_or(SEVERAL),
            _ => SEVERAL,
        };
        // Decided packet by packet when no window can make the program go
        // over its bound: a chain plan costs at most its per-packet bound
        // times the packets of a window. An end user's counters then live in
        // its slot of the exact index, which needs a window to cost at most
        // u16::MAX.
        let w = u64::from(self.window_packets);
        let mut plan = None;
        if let Some(Some(inst)) = self.installs.get(first as usize) {
            let i = &inst.instance;
            let per_window = i.chain_packet_bound().and_then(|c| c.checked_mul(w));
            if per_window.is_some_and(|c| c <= i.complexity()) {
                first |= DIRECT;
                let narrow = per_window.is_some_and(|c| c <= u64::from(u16::MAX)) && w <= u64::from(u16::MAX);
                if narrow && dest == Some(Dest::Exact(inst.this.ip)) && inst.this.subnet == (inst.this.ip, 32) {
                    plan = Some(Arc::clone(i));
                }
            }
        }
        if let Some(h) = self.hot.get_mut(d) {
            h.first = first;
        }
        if let Some(Dest::Exact(ip)) = dest {
            let new = plan.and_then(|i| self.plans.acquire(&i)).unwrap_or(0);
            if let Some(s) = self.exact.get_mut(ip) {
                let old = std::mem::replace(&mut s.plan, new);
                self.plans.release(old);
            } else {
                self.plans.release(new);
            }
        }
    }

    /// Installations.
    pub fn list(&self) -> impl Iterator<Item = InstallInfo<'_>> + '_ {
        self.installs.iter().flatten().map(|i| InstallInfo {
            id: i.id,
            dest: self.dests[i.dest as usize].as_ref().map_or(Dest::Exact(i.this.ip), |e| e.dest),
            this: i.this,
            module: i.instance.program().id(),
            params: i.instance.params(),
            stats: self.current(i),
            last_fault: i.last_fault.as_deref(),
        })
    }

    /// Counters of one installation.
    pub fn stats(&self, id: InstallId) -> Option<ProgramStats> {
        self.installs.get(id.slot as usize)?.as_ref().filter(|i| i.id == id).map(|i| self.current(i))
    }

    /// Number of installations.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when nothing is installed.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Heap bytes of the table itself (installations, client entries, the
    /// index maps), estimated from capacities; shared programs and instances
    /// are not included. Divided by [`Dispatch::len`], the memory an
    /// installation costs.
    pub fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        fn map<K, V, S>(m: &HashMap<K, V, S>) -> usize {
            // hashbrown: one control byte per bucket, buckets = capacity * 8 / 7.
            m.capacity() * 8 / 7 * (size_of::<(K, V)>() + 1)
        }
        let installs = self.installs.capacity() * size_of::<Option<Installed>>()
            + self.gens.capacity() * 4
            + self.free_installs.capacity() * 4
            + self.installs.iter().flatten().filter(|i| i.last_fault.is_some()).count() * size_of::<Fault>();
        let dests = self.dests.capacity() * size_of::<Option<DestEntry>>()
            + self.hot.capacity() * size_of::<Hot>()
            + self.dests.iter().flatten().map(|d| d.installs.rest.capacity() * 4).sum::<usize>()
            + self.free_dests.capacity() * 4;
        let index = map(&self.dest_index) + self.exact.bytes() + self.prefixes.iter().map(|(_, m)| map(m)).sum::<usize>();
        installs + dests + index
    }

    /// Distinct programs and distinct instances held (for sharing reports).
    pub fn shared_counts(&self) -> (usize, usize) {
        (self.programs.len(), self.instances.len())
    }

    /// Run every installed program over its client's bucket of `window`, and
    /// commit the effects of the runs that did not fault into the window.
    pub fn run_window(&mut self, window: &mut Window) -> WindowReport {
        self.run_window_with(window, &[])
    }

    /// [`Dispatch::run_window`] for a window whose frames may be borrowed
    /// from `slab`.
    pub(crate) fn run_window_with(&mut self, window: &mut Window, slab: &[u8]) -> WindowReport {
        let mut rep = WindowReport::default();
        window.materialize();
        let n = window.packet_count();
        if self.live == 0 || n == 0 {
            return rep;
        }
        self.epoch += 1;
        if self.epoch as u32 == 0 {
            // The exact slots keep the low 32 bits of the epoch, 0 meaning
            // "no window since the last wrap": start them over.
            for s in &mut self.exact.slots {
                s.epoch = 0;
            }
            self.epoch += 1;
        }
        let epoch = self.epoch;
        let ep32 = epoch as u32;
        // Buckets and runs of end users decided during the pass.
        let mut direct_buckets = 0u32;
        self.touched.clear();
        self.counts.clear();
        self.pairs.clear();
        self.direct.clear();
        self.win_drops.clear();
        self.win_drops.resize(n.div_ceil(64), 0);
        // With many clients, buckets are small: clients whose program is
        // decided packet by packet are run right here, during the pass
        // (no bucket, no later run); with few, their buckets are large and
        // the word-at-a-time plans below are faster.
        // (Never over W packets: the direct decisions rely on it.)
        let direct_mode = self.fast_paths && self.live >= DIRECT_CLIENTS && n <= self.window_packets as usize;
        // One pass: the buckets of every packet. (Written once, expanded
        // twice, so that the pass without direct clients pays nothing for
        // them.)
        macro_rules! bucket_pass {
            ($direct_mode:expr) => {
                let Dispatch { exact, prefixes, hot, installs, touched, counts, pairs, touch, direct, win_drops, rest, .. } = self;
                let (src_col, dst_col) = (&window.cols.src, &window.cols.dst);
                // The work of one (packet, client) hit: a macro, not a closure,
                // so that it is always inlined into the loop.
                macro_rules! hit {
                    ($d:expr, $i:expr) => {{
                        let (d, i): (u32, usize) = ($d, $i);
                        'hit: {
                            let Some(e) = hot.get_mut(d as usize) else { break 'hit };
                            if e.epoch != epoch {
                                e.epoch = epoch;
                                e.local = touched.len() as u32;
                                touched.push(d);
                                counts.push(0);
                                direct.push(Direct::default());
                                // Read the installation's line now, so that it is
                                // in the cache when the program runs (a prefetch
                                // in safe code).
                                if !$direct_mode {
                                    if let Some(Some(inst)) = installs.get((e.first & !DIRECT) as usize) {
                                        *touch ^= inst.stats.windows;
                                    }
                                }
                            }
                            if $direct_mode && e.first & DIRECT != 0 {
                                if let Some(Some(inst)) = installs.get((e.first & !DIRECT) as usize) {
                                    let (cost, drop) = inst.instance.chain_packet(inst.this, src_col[i], dst_col[i]);
                                    let acc = &mut direct[e.local as usize];
                                    acc.packets += 1;
                                    acc.cost += cost;
                                    if drop {
                                        acc.dropped += 1;
                                        win_drops[i / 64] |= 1 << (i % 64);
                                    }
                                    break 'hit;
                                }
                            }
                            counts[e.local as usize] += 1;
                            pairs.push((e.local, i as u32));
                        }
                    }};
                }
                if $direct_mode {
                    // The other hits of the packets (end users not decided
                    // during the pass, edge routers), in packet order.
                    if prefixes.is_empty() {
                        for &(i, d) in rest.iter() {
                            hit!(d, i as usize);
                        }
                    } else {
                        let mut r = rest.iter().peekable();
                        for (i, &dst) in dst_col.iter().enumerate() {
                            if let Some(&&(j, d)) = r.peek() {
                                if j as usize == i {
                                    hit!(d, i);
                                    r.next();
                                }
                            }
                            for (len, map) in prefixes.iter() {
                                if let Some(&d) = map.get(&(dst & netmask(*len))) {
                                    hit!(d, i);
                                }
                            }
                        }
                    }
                } else {
                    // Consecutive packets to one address are common (a flow, a
                    // busy client): the last exact lookup is kept.
                    let mut last: Option<(u32, Option<u32>)> = None;
                    for (i, &dst) in dst_col.iter().enumerate() {
                        let found = match last {
                            Some((a, d)) if a == dst => d,
                            _ => {
                                let d = exact.find(dst).and_then(|k| exact.slots.get(k)).map(|s| s.d);
                                last = Some((dst, d));
                                d
                            }
                        };
                        if let Some(d) = found {
                            hit!(d, i);
                        }
                        for (len, map) in prefixes.iter() {
                            if let Some(&d) = map.get(&(dst & netmask(*len))) {
                                hit!(d, i);
                            }
                        }
                    }
                }
            };
        }
        if direct_mode {
            // End users decided during the pass first: one tight loop (see
            // `decide_end_users`); the pass below sees the other hits.
            let (src_col, dst_col) = (&window.cols.src, &window.cols.dst);
            let Dispatch { exact, plans, hot, installs, touch, win_drops, rest, .. } = self;
            *touch ^= u64::from(exact.peek_all(dst_col));
            rest.clear();
            direct_buckets = decide_end_users(exact, &plans.fast, hot, installs, src_col, dst_col, ep32, win_drops, rest);
            bucket_pass!(true);
        } else {
            bucket_pass!(false);
        }
        // The clients decided during the pass: one run each.
        rep.runs += direct_buckets;
        rep.buckets += direct_buckets;
        for (l, acc) in self.direct.iter().enumerate() {
            if acc.packets == 0 {
                continue;
            }
            let first = self.hot[self.touched[l] as usize].first & !DIRECT;
            let Some(Some(inst)) = self.installs.get_mut(first as usize) else { continue };
            rep.runs += 1;
            let st = &mut inst.stats;
            st.windows += 1;
            st.packets_in += acc.packets;
            st.discarded += acc.dropped;
            st.total_cost += acc.cost;
            st.max_cost = st.max_cost.max(acc.cost);
        }
        if self.pairs.is_empty() {
            rep.buckets += self.touched.len() as u32;
            window.commit(&self.win_drops, &self.gen_bytes[..0], &[]);
            return rep;
        }
        // Counting sort into contiguous buckets, arrival order kept.
        let nb = self.touched.len();
        let mut acc = 0u32;
        for c in self.counts.iter_mut() {
            let k = *c;
            *c = acc;
            acc += k;
        }
        self.perm.clear();
        if nb == 1 {
            // One bucket: the pairs are its rows, in order.
            self.perm.extend(self.pairs.iter().map(|&(_, i)| i));
            self.counts[0] = acc;
        } else {
            self.perm.resize(self.pairs.len(), 0);
            for &(l, i) in &self.pairs {
                let c = &mut self.counts[l as usize];
                self.perm[*c as usize] = i;
                *c += 1;
            }
        }
        // counts[l] is now the end of bucket l. One bucket holding the whole
        // window in order (a single busy client) runs on the window's own
        // columns; otherwise a bucket's rows are gathered when a program
        // needs the VM (packet-local plans read the window's columns
        // through the rows directly).
        let identity = nb == 1 && self.perm.len() == n;
        self.gen_bytes.clear();
        self.gen.clear();
        let bytes = window.bytes_with(slab);
        let cols = &window.cols;
        let mut start = 0usize;
        for l in 0..nb {
            let end = self.counts[l] as usize;
            let d = self.touched[l] as usize;
            let rows = &self.perm[start..end];
            let mut gathered = identity;
            rep.buckets += 1;
            if self.direct[l].packets > 0 {
                // Decided during the pass (its bucket holds no rows).
                start = end;
                continue;
            }
            let first = self.hot[d].first & !DIRECT;
            // The common case first: one installation, a small bucket, a
            // chain plan (the firewall).
            if first != SEVERAL && self.fast_paths && rows.len() <= LOCAL_ROWS {
                if let Some(inst) = self.installs.get_mut(first as usize).and_then(Option::as_mut) {
                    if let Some((st, mut drops)) = inst.instance.run_chain(inst.this, &cols.src, &cols.dst, rows) {
                        rep.runs += 1;
                        let stats = &mut inst.stats;
                        stats.windows += 1;
                        stats.packets_in += rows.len() as u64;
                        stats.discarded += u64::from(st.dropped);
                        stats.total_cost += st.cost;
                        stats.max_cost = stats.max_cost.max(st.cost);
                        while drops != 0 {
                            let p = rows[drops.trailing_zeros() as usize];
                            drops &= drops - 1;
                            self.win_drops[p as usize / 64] |= 1 << (p % 64);
                        }
                        start = end;
                        continue;
                    }
                }
            }
            // A client with one installation never touches its colder
            // DestEntry here.
            let (head, rest): (Option<u32>, &[u32]) = if first != SEVERAL {
                (Some(first), &[])
            } else {
                match self.dests[d].as_ref() {
                    Some(e) => (e.installs.first, &e.installs.rest),
                    None => (None, &[]),
                }
            };
            for s in head.into_iter().chain(rest.iter().copied()) {
                let Some(inst) = self.installs[s as usize].as_mut() else { continue };
                rep.runs += 1;
                inst.stats.windows += 1;
                inst.stats.packets_in += rows.len() as u64;
                if self.fast_paths && rows.len() <= LOCAL_ROWS {
                    let local = match inst.instance.run_chain(inst.this, &cols.src, &cols.dst, rows) {
                        Some(r) => Some(r),
                        None => inst.instance.run_local(inst.this, &cols.src, &cols.dst, rows),
                    };
                    if let Some((st, mut drops)) = local {
                        inst.stats.discarded += u64::from(st.dropped);
                        inst.stats.total_cost += st.cost;
                        inst.stats.max_cost = inst.stats.max_cost.max(st.cost);
                        while drops != 0 {
                            let p = rows[drops.trailing_zeros() as usize];
                            drops &= drops - 1;
                            self.win_drops[p as usize / 64] |= 1 << (p % 64);
                        }
                        continue;
                    }
                }
                if !gathered {
                    self.buckets.gather(cols, rows);
                    gathered = true;
                }
                let view = if identity { cols.view(bytes, 0, n) } else { self.buckets.view(bytes, 0, rows.len()) };
                match inst.instance.run(inst.this, view, &mut self.machine) {
                    Ok(st) => {
                        inst.stats.discarded += u64::from(st.dropped);
                        inst.stats.generated += u64::from(st.generated);
                        inst.stats.total_cost += st.cost;
                        inst.stats.max_cost = inst.stats.max_cost.max(st.cost);
                        let fx = self.machine.effects();
                        for (wi, &w) in fx.drops.iter().enumerate() {
                            let mut w = w;
                            while w != 0 {
                                let pos = wi * 64 + w.trailing_zeros() as usize;
                                w &= w - 1;
                                if let Some(p) = view.origin(pos) {
                                    self.win_drops[p as usize / 64] |= 1 << (p % 64);
                                }
                            }
                        }
                        for g in fx.generated() {
                            self.gen.push((self.gen_bytes.len() as u32, g.len() as u32));
                            self.gen_bytes.extend_from_slice(g);
                        }
                    }
                    Err(f) => {
                        rep.faults += 1;
                        inst.stats.faults += 1;
                        inst.last_fault = Some(Box::new(f));
                    }
                }
            }
            start = end;
        }
        window.commit(&self.win_drops, &self.gen_bytes, &self.gen);
        std::hint::black_box(self.touch);
        rep
    }
}

#[cfg(test)]
mod tests;
