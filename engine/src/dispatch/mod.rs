//! The execution environment of the paper's Fig. 4: many programs installed
//! for many clients, indexed by the destinations they are confined to.
//!
//! - **Index.** End users are keyed by their exact address in one
//!   open-addressing table whose 64-byte slots also hold the per-window
//!   state of the end users decided during the bucketing pass (below), so
//!   that such a packet costs one cache line however many clients are
//!   installed; edge-router clients by their prefix, in one hash map per
//!   prefix length present, probed longest first. A packet costs one lookup
//!   plus one per distinct edge-router prefix length installed (at most
//!   129), however many programs are installed.
//! - **One address space.** Keys are 128-bit addresses and prefixes with
//!   128-bit lengths, IPv4 as IPv4-mapped (`::ffff:a.b.c.d`, an IPv4 /n as
//!   the /96+n): IPv4 and IPv6 clients share every table and cost the same.
//!   An identity with several addresses or prefixes is several installations,
//!   one per address or prefix, each confined to its own.
//! - **Deciding during the pass.** With many clients installed, buckets are
//!   small, and a client whose program is a chain of keyed filters and
//!   narrowings that no window can make exceed its bound (the firewall, the
//!   port firewall) is decided packet by packet as its packets are
//!   bucketed. The index lines of a window's packets are first read in a
//!   tight loop of independent loads, so that their cache misses overlap
//!   instead of stalling the pass one by one.
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

mod index;
mod pass;
mod run;

use std::collections::HashMap;
use std::sync::Arc;

use vinet_checker::bytecode::Const;
use vinet_checker::policy::ClientKind;
use vinet_checker::{netmask, Checked, ModuleId};

use crate::vm::{BindError, Binding, Fault, Instance, Machine, Program, RunStats, This};
use crate::window::{Columns, Window};
use index::{AddrMap, DestEntry, ExactIndex, Hot, Plans, ProgramKey, SlotList, DIRECT, SEVERAL};
use pass::Direct;

/// Where a client's traffic goes: what its bucket holds. Addresses are
/// 128-bit, IPv4 as IPv4-mapped; prefix lengths are 128-bit (an IPv4 /n is
/// the /96+n).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Packets to this address (an end-user client).
    Addr(u128),
    /// Packets inside this prefix (an edge-router client).
    Prefix(u128, u8),
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
    /// Its GENERATEs that emitted nothing (source and destination of
    /// different families).
    pub skipped_generations: u64,
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
    /// THIS_SUBNET_IP is malformed (host bits set, length over 128).
    #[error("malformed client prefix {0:#034x}/{1}")]
    BadPrefix(u128, u8),
    /// The table holds 2^31 - 1 installations.
    #[error("the dispatch table is full")]
    Full,
    /// An overlay-network owner's program: checked, but not dispatched by
    /// routers yet (their ON lane serves tunnelled packets by reservation only).
    #[error("overlay-network owners' programs are checked but not yet run by routers")]
    OnOwner,
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

/// Counters of runs, to be added to an installation's [`ProgramStats`]:
/// one run's, or those still pending in an end user's exact slot.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    windows: u64,
    packets: u64,
    discarded: u64,
    generated: u64,
    skipped: u64,
    cost: u64,
    max_cost: u64,
    faults: u64,
}

impl Tally {
    /// One successful run over a bucket of `packets` packets.
    #[inline]
    fn run(packets: usize, st: &RunStats) -> Tally {
        Tally {
            windows: 1,
            packets: packets as u64,
            discarded: u64::from(st.dropped),
            generated: u64::from(st.generated),
            skipped: u64::from(st.skipped_generations),
            cost: st.cost,
            max_cost: st.cost,
            faults: 0,
        }
    }

    /// One run over a bucket of `packets` packets that faulted: its cost
    /// and effects are not counted.
    #[inline]
    fn faulted(packets: usize) -> Tally {
        Tally { windows: 1, packets: packets as u64, faults: 1, ..Tally::default() }
    }

    #[inline]
    fn add_to(&self, st: &mut ProgramStats) {
        st.windows += self.windows;
        st.packets_in += self.packets;
        st.discarded += self.discarded;
        st.generated += self.generated;
        st.skipped_generations += self.skipped;
        st.total_cost += self.cost;
        st.max_cost = st.max_cost.max(self.max_cost);
        st.faults += self.faults;
    }
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

/// What one window's dispatch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowReport {
    /// Buckets (clients) with packets.
    pub buckets: u32,
    /// Program runs.
    pub runs: u32,
    /// Runs that faulted.
    pub faults: u32,
    /// GENERATEs that emitted nothing (source and destination of different families).
    pub skipped_generations: u32,
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
    /// The instances that search for words, by destination (for the
    /// router's stream tracker), and the prefix lengths among them.
    searching: HashMap<Dest, Vec<Arc<Instance>>>,
    searching_lens: Vec<u8>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch").field("installed", &self.live).field("programs", &self.programs.len()).finish()
    }
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
            searching: HashMap::new(),
            searching_lens: Vec::new(),
        }
    }

    /// Install a checked program for a client. The client is an end user
    /// (bucket: THIS_IP) or an edge router (bucket: THIS_SUBNET_IP) as the
    /// policy the program was checked against says.
    pub fn install(&mut self, checked: &Checked, binding: &Binding) -> Result<InstallId, InstallError> {
        let key = (checked.id(), vinet_vocab::policy_digest(checked.policy()));
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
            ClientKind::EndUser => (Dest::Addr(binding.this_ip), This::end_user(binding.this_ip)),
            ClientKind::EdgeRouter => {
                let (net, len) = binding.this_subnet.ok_or(BindError::NoSubnet)?;
                if len > 128 || net & !netmask(len) != 0 {
                    return Err(InstallError::BadPrefix(net, len));
                }
                (Dest::Prefix(net, len), This { ip: binding.this_ip, subnet: (net, len) })
            }
            // The ON lane does not run programs yet: tunnelled packets reach no dispatch table.
            ClientKind::OnOwner => return Err(InstallError::OnOwner),
        };
        let pkey = (program.id(), program.policy_digest());
        let program = Arc::clone(self.programs.entry(pkey).or_insert(program));
        let fresh = program.instantiate(&binding.params)?;
        let ikey = (pkey, fresh.params().to_vec());
        let instance = Arc::clone(self.instances.entry(ikey).or_insert_with(|| Arc::new(fresh)));
        if instance.searches() {
            self.searching.entry(dest).or_default().push(Arc::clone(&instance));
            self.refresh_searching_lens();
        }
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
            Dest::Addr(ip) => self.exact.insert(ip, d),
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
        let dest = self.dests[d].as_ref().map(|e| e.dest);
        let inst = self.installs.get_mut(id.slot as usize)?.take()?;
        if let Some(list) = dest.and_then(|x| self.searching.get_mut(&x)) {
            if let Some(k) = list.iter().position(|i| Arc::ptr_eq(i, &inst.instance)) {
                list.swap_remove(k);
            }
            if list.is_empty() {
                self.searching.retain(|_, l| !l.is_empty());
                self.refresh_searching_lens();
            }
        }
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
                    Dest::Addr(ip) => {
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

    /// Move an end user's pending counters (see [`index::ExactSlot`]) into its
    /// installation's stats.
    fn fold(&mut self, d: usize) {
        let Some(Some(e)) = self.dests.get(d) else { return };
        let Dest::Addr(ip) = e.dest else { return };
        let Some(s) = self.exact.get_mut(ip) else { return };
        let p = s.take_pending();
        let first = self.hot.get(d).map_or(SEVERAL, |h| h.first & !DIRECT);
        if let Some(Some(inst)) = self.installs.get_mut(first as usize) {
            p.add_to(&mut inst.stats);
        }
    }

    /// An installation's stats, with the counters still pending in its
    /// client's [`index::ExactSlot`].
    fn current(&self, i: &Installed) -> ProgramStats {
        let mut st = i.stats;
        if self.hot.get(i.dest as usize).is_some_and(|h| h.first & !DIRECT == i.id.slot) {
            if let Some(Some(DestEntry { dest: Dest::Addr(ip), .. })) = self.dests.get(i.dest as usize) {
                if let Some(s) = self.exact.find(*ip).and_then(|k| self.exact.slots.get(k)) {
                    s.pending().add_to(&mut st);
                }
            }
        }
        st
    }

    /// Keep a client's [`Hot::first`] (and for an end user its
    /// [`index::ExactSlot::plan`]) in step with its installations.
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
            let per_window = i.chain_packet_bound().and_then(|c| c.checked_mul(w)?.checked_add(i.run_base()));
            if per_window.is_some_and(|c| c <= i.complexity()) {
                first |= DIRECT;
                let narrow = per_window.is_some_and(|c| c <= u64::from(u16::MAX)) && w <= u64::from(u16::MAX);
                if narrow && dest == Some(Dest::Addr(inst.this.ip)) && inst.this.subnet == (inst.this.ip, 128) {
                    plan = Some(Arc::clone(i));
                }
            }
        }
        if let Some(h) = self.hot.get_mut(d) {
            h.first = first;
        }
        if let Some(Dest::Addr(ip)) = dest {
            let new = plan.and_then(|i| self.plans.acquire(&i)).unwrap_or(0);
            if let Some(s) = self.exact.get_mut(ip) {
                let old = std::mem::replace(&mut s.plan, new);
                self.plans.release(old);
            } else {
                self.plans.release(new);
            }
        }
    }

    fn refresh_searching_lens(&mut self) {
        let mut lens: Vec<u8> = self.searching.keys().filter_map(|d| if let Dest::Prefix(_, l) = d { Some(*l) } else { None }).collect();
        lens.sort_unstable();
        lens.dedup();
        self.searching_lens = lens;
    }

    /// Whether any installation searches for words.
    pub(crate) fn searches(&self) -> bool {
        !self.searching.is_empty()
    }

    /// Call `f` on each search word of the programs whose clients packets
    /// to `dst` belong to.
    pub(crate) fn search_words(&self, dst: u128, f: &mut dyn FnMut(&memchr::memmem::Finder<'static>)) {
        let exact = self.searching.get(&Dest::Addr(dst));
        let prefixes = self.searching_lens.iter().filter_map(|&l| self.searching.get(&Dest::Prefix(dst & netmask(l), l)));
        for list in exact.into_iter().chain(prefixes) {
            for inst in list {
                inst.search_words().for_each(&mut *f);
            }
        }
    }

    /// Installations.
    pub fn list(&self) -> impl Iterator<Item = InstallInfo<'_>> + '_ {
        self.installs.iter().flatten().map(|i| InstallInfo {
            id: i.id,
            dest: self.dests[i.dest as usize].as_ref().map_or(Dest::Addr(i.this.ip), |e| e.dest),
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
}

#[cfg(test)]
mod tests;
