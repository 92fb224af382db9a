//! The window runner: after the bucketing pass, lay the buckets out as
//! contiguous rows, run each client's programs over its bucket (its
//! packet-local plan on a small bucket, else the VM), and commit the
//! effects of the runs that did not fault into the window.

use super::index::{DIRECT, SEVERAL};
use super::{Dispatch, Tally, WindowReport};
use crate::window::Window;

/// Buckets of at most this many packets run a program's packet-local plan
/// (when it has one) instead of the VM: per packet the plan costs a few
/// operations, while a VM run costs a fixed setup; the VM's vectorized set
/// instructions win on large buckets.
pub(super) const LOCAL_ROWS: usize = 32;

/// Mark window packet `p` dropped.
#[inline]
pub(super) fn mark_dropped(win_drops: &mut [u64], p: u32) {
    if let Some(w) = win_drops.get_mut(p as usize / 64) {
        *w |= 1 << (p % 64);
    }
}

/// Mark dropped the window packets of the set bits of `word`, a word of a
/// run's drop bitmap whose bit k is bucket position `base + k`; `origin`
/// maps a bucket position to its window packet.
#[inline]
fn mark_dropped_word(win_drops: &mut [u64], base: usize, mut word: u64, origin: impl Fn(usize) -> Option<u32>) {
    while word != 0 {
        let pos = base + word.trailing_zeros() as usize;
        word &= word - 1;
        if let Some(p) = origin(pos) {
            mark_dropped(win_drops, p);
        }
    }
}

impl Dispatch {
    /// [`Dispatch::run_window`] for a window whose frames may be borrowed
    /// from `slab`.
    pub(crate) fn run_window_with(&mut self, window: &mut Window, slab: &[u8]) -> WindowReport {
        let mut rep = WindowReport::default();
        window.materialize();
        let n = window.packet_count();
        if self.live == 0 || n == 0 {
            return rep;
        }
        // Buckets and runs of end users decided during the pass.
        let direct_buckets = self.bucket(&window.cols, n);
        rep.runs += direct_buckets;
        rep.buckets += direct_buckets;
        // The other clients decided during the pass: one run each.
        for (l, acc) in self.direct.iter().enumerate() {
            if acc.packets == 0 {
                continue;
            }
            let first = self.hot[self.touched[l] as usize].first & !DIRECT;
            let Some(Some(inst)) = self.installs.get_mut(first as usize) else { continue };
            rep.runs += 1;
            acc.tally().add_to(&mut inst.stats);
        }
        if self.pairs.is_empty() {
            rep.buckets += self.touched.len() as u32;
            window.commit(&self.win_drops, &self.gen_bytes[..0], &[]);
            return rep;
        }
        self.sort_buckets();
        self.run_buckets(window, slab, n, &mut rep);
        window.commit(&self.win_drops, &self.gen_bytes, &self.gen);
        std::hint::black_box(self.touch);
        rep
    }

    /// Counting sort of the pass's (bucket, packet) pairs into contiguous
    /// buckets, arrival order kept: `perm` holds the rows, bucket after
    /// bucket, and `counts[l]` becomes the end of bucket `l`.
    fn sort_buckets(&mut self) {
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
    }

    /// Run every client's programs over its bucket of the sorted window of
    /// `n` packets: drops into `win_drops`, generated packets into `gen`.
    fn run_buckets(&mut self, window: &Window, slab: &[u8], n: usize, rep: &mut WindowReport) {
        let nb = self.touched.len();
        // One bucket holding the whole window in order (a single busy
        // client) runs on the window's own columns; otherwise a bucket's rows
        // are gathered when a program needs the VM (packet-local plans read
        // the window's columns through the rows directly).
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
                    if let Some((st, drops)) = inst.instance.run_chain(inst.this, cols, rows) {
                        rep.runs += 1;
                        Tally::run(rows.len(), &st).add_to(&mut inst.stats);
                        mark_dropped_word(&mut self.win_drops, 0, drops, |k| rows.get(k).copied());
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
                if self.fast_paths && rows.len() <= LOCAL_ROWS {
                    let local = match inst.instance.run_chain(inst.this, cols, rows) {
                        Some(r) => Some(r),
                        None => inst.instance.run_local(inst.this, cols, rows),
                    };
                    if let Some((st, drops)) = local {
                        Tally::run(rows.len(), &st).add_to(&mut inst.stats);
                        mark_dropped_word(&mut self.win_drops, 0, drops, |k| rows.get(k).copied());
                        continue;
                    }
                }
                if !gathered {
                    self.buckets.gather(cols, rows);
                    gathered = true;
                }
                let notes = &window.notes;
                let view = if identity { cols.view(bytes, notes, 0, n) } else { self.buckets.view(bytes, notes, 0, rows.len()) };
                match inst.instance.run(inst.this, view, &mut self.machine) {
                    Ok(st) => {
                        Tally::run(rows.len(), &st).add_to(&mut inst.stats);
                        rep.skipped_generations += st.skipped_generations;
                        let fx = self.machine.effects();
                        for (wi, &w) in fx.drops.iter().enumerate() {
                            mark_dropped_word(&mut self.win_drops, wi * 64, w, |pos| view.origin(pos));
                        }
                        for g in fx.generated() {
                            self.gen.push((self.gen_bytes.len() as u32, g.len() as u32));
                            self.gen_bytes.extend_from_slice(g);
                        }
                    }
                    Err(f) => {
                        rep.faults += 1;
                        Tally::faulted(rows.len()).add_to(&mut inst.stats);
                        inst.last_fault = Some(Box::new(f));
                    }
                }
            }
            start = end;
        }
    }
}
