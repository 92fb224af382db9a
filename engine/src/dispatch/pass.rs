//! The bucketing pass: each packet of a window into the buckets of the
//! clients it is addressed to, and the end users whose programs are decided
//! packet by packet right there (see the module documentation of
//! [`super`]).

use vinet_checker::netmask;

use super::index::{DirectPlan, ExactIndex, Hot, DIRECT, SEVERAL};
use super::run::mark_dropped;
use super::{Dispatch, Installed, Tally};
use crate::window::Columns;

/// Installations from which clients with a never-over chain plan are
/// decided during the bucketing pass (below, buckets tend to be large).
pub(super) const DIRECT_CLIENTS: usize = 64;

/// The per-window sums of a client decided packet by packet.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Direct {
    pub(super) packets: u64,
    pub(super) dropped: u64,
    pub(super) cost: u64,
}

impl Direct {
    /// The window's one run of the client, as counters.
    #[inline]
    pub(super) fn tally(&self) -> Tally {
        Tally { windows: 1, packets: self.packets, discarded: self.dropped, cost: self.cost, max_cost: self.cost, ..Tally::default() }
    }
}

/// The end users decided during the bucketing pass, over a window's
/// packets (`cols`): each packet to such a client is decided by
/// its [`DirectPlan`] and counted in its [`super::index::ExactSlot`]; the other exact hits
/// go to `rest` as (packet, client), in packet order. Returns the number of
/// such clients with packets (each one bucket and one run). Kept apart from
/// the general pass, so that this loop stays small.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn decide_end_users(
    exact: &mut ExactIndex, plans: &[DirectPlan], hot: &[Hot], installs: &mut [Option<Installed>], cols: &Columns, ep32: u32,
    win_drops: &mut [u64], rest: &mut Vec<(u32, u32)>,
) -> u32 {
    let mut buckets = 0u32;
    let n = cols.src.len().min(cols.dst.len());
    let (src, dst) = (&cols.src[..n], &cols.dst[..n]);
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
            // In range, as the packets' costs below.
            s.cur = plan.base as u16;
            s.cost += plan.base as u32;
            buckets += 1;
        }
        let (cost, drop) = plan.decide(s_addr, d_addr, |f| cols.field(f, i));
        // In range: a window costs this client at most u16::MAX (see
        // `Dispatch::refresh_hot`).
        s.cur += cost as u16;
        s.max = s.max.max(s.cur);
        s.cost += cost as u32;
        s.packets += 1;
        if drop {
            s.dropped += 1;
            mark_dropped(win_drops, i as u32);
        }
    }
    buckets
}
impl Dispatch {
    /// Start a window of `n` packets: a new epoch (returned), the
    /// per-window scratch cleared.
    fn begin_window(&mut self, n: usize) -> u64 {
        self.epoch += 1;
        if self.epoch as u32 == 0 {
            // The exact slots keep the low 32 bits of the epoch, 0 meaning
            // "no window since the last wrap": start them over.
            for s in &mut self.exact.slots {
                s.epoch = 0;
            }
            self.epoch += 1;
        }
        self.touched.clear();
        self.counts.clear();
        self.pairs.clear();
        self.direct.clear();
        self.win_drops.clear();
        self.win_drops.resize(n.div_ceil(64), 0);
        self.epoch
    }

    /// The bucketing pass over the columns of a window of `n` packets: the
    /// buckets of every packet (`touched`, `counts`, `pairs`), and the
    /// decisions and sums of the clients decided during the pass (`direct`,
    /// `win_drops`). Returns the number of end users decided by
    /// [`decide_end_users`] (each one bucket and one run, counted in their
    /// exact slots).
    pub(super) fn bucket(&mut self, cols: &Columns, n: usize) -> u32 {
        let epoch = self.begin_window(n);
        // With many clients, buckets are small: clients whose program is
        // decided packet by packet are run right here, during the pass
        // (no bucket, no later run); with few, their buckets are large and
        // the word-at-a-time plans are faster.
        // (Never over W packets: the direct decisions rely on it.)
        let direct_mode = self.fast_paths && self.live >= DIRECT_CLIENTS && n <= self.window_packets as usize;
        if direct_mode {
            // End users decided during the pass first: one tight loop (see
            // `decide_end_users`); the pass below sees the other hits.
            let Dispatch { exact, plans, hot, installs, touch, win_drops, rest, .. } = self;
            *touch ^= u64::from(exact.peek_all(&cols.dst));
            rest.clear();
            let direct_buckets = decide_end_users(exact, &plans.fast, hot, installs, cols, epoch as u32, win_drops, rest);
            self.pass::<true>(cols, epoch);
            direct_buckets
        } else {
            self.pass::<false>(cols, epoch);
            0
        }
    }

    /// One pass: the buckets of every packet. (Generic, so that the pass
    /// without direct clients pays nothing for them.)
    fn pass<const DIRECT_MODE: bool>(&mut self, cols: &Columns, epoch: u64) {
        let Dispatch { exact, prefixes, hot, installs, touched, counts, pairs, touch, direct, win_drops, rest, .. } = self;
        let (src_col, dst_col) = (&cols.src, &cols.dst);
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
                        if !DIRECT_MODE {
                            if let Some(Some(inst)) = installs.get((e.first & !DIRECT) as usize) {
                                *touch ^= inst.stats.windows;
                            }
                        }
                    }
                    if DIRECT_MODE && e.first & DIRECT != 0 {
                        if let Some(Some(inst)) = installs.get((e.first & !DIRECT) as usize) {
                            let (cost, drop) = inst.instance.chain_packet(inst.this, src_col[i], dst_col[i], |f| cols.field(f, i));
                            let acc = &mut direct[e.local as usize];
                            if acc.packets == 0 {
                                acc.cost += inst.instance.run_base();
                            }
                            acc.packets += 1;
                            acc.cost += cost;
                            if drop {
                                acc.dropped += 1;
                                mark_dropped(win_drops, i as u32);
                            }
                            break 'hit;
                        }
                    }
                    counts[e.local as usize] += 1;
                    pairs.push((e.local, i as u32));
                }
            }};
        }
        if DIRECT_MODE {
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
            let mut last: Option<(u128, Option<u32>)> = None;
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
    }
}
