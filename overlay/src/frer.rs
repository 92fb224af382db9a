//! Duplicate elimination at the egress: IEEE 802.1CB's vector recovery
//! algorithm (section 7.4.3.4), over GRE's 32-bit sequence numbers.
//!
//! An ON with redundant paths sends each packet once down each path with the
//! same sequence number ([`crate::gre`]); the egress passes the first copy
//! of each number and discards the rest. 802.1CB (Frame Replication and
//! Elimination for Reliability) specifies this for Ethernet; its vector
//! recovery algorithm keeps:
//!
//! - `RecovSeqNum`, the highest number passed;
//! - `SequenceHistory`, a bit per number in the window of the last
//!   `history_length` numbers up to `RecovSeqNum`, set for those passed;
//! - `TakeAny`, true after a reset: the next packet is passed whatever its
//!   number, and starts the window afresh;
//! - a reset timer: when no packet has been passed for `reset_timeout`, the
//!   state is reset (a sender that restarted its numbering is then followed).
//!
//! A packet whose distance from `RecovSeqNum` is a window length or more,
//! either way, is *rogue* and discarded (it does not restart the timer). One
//! in the window is passed if its bit is clear (counted *out of order* if it
//! is not the next number) and discarded as a *duplicate* if set.
//!
//! Distances are taken modulo 2^32 and read as signed (-2^31 ..= 2^31 - 1),
//! so the numbers wrap around as GRE's do. 802.1CB's R-TAG numbers are 16
//! bits; nothing in the algorithm depends on the width.
//!
//! **Lost** packets: a number counts as lost when it leaves the window
//! without having been passed. Unlike the standard's literal bit vector,
//! which starts from zeros after a reset, only numbers after the first one
//! accepted since the reset are counted: the numbers before it were never
//! expected.
//!
//! The window is a ring of bits with the head at `RecovSeqNum`: advancing
//! by d costs O(d), d below the window length; nothing is allocated per packet.

use thiserror::Error;

/// The algorithm's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryConfig {
    history_length: u32,
    reset_timeout_ns: u64,
}

/// Why a configuration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InvalidRecoveryConfig {
    /// The window must hold 2 to 2^31 numbers (802.1CB: at least 2).
    #[error("history length {0} outside 2..=2^31")]
    HistoryLength(u32),
}

impl RecoveryConfig {
    /// A window of `history_length` numbers, reset after `reset_timeout_ns`
    /// without a packet passed.
    pub fn new(history_length: u32, reset_timeout_ns: u64) -> Result<RecoveryConfig, InvalidRecoveryConfig> {
        if !(2..=1 << 31).contains(&history_length) {
            return Err(InvalidRecoveryConfig::HistoryLength(history_length));
        }
        Ok(RecoveryConfig { history_length, reset_timeout_ns })
    }
}

/// The counters of 802.1CB's sequence recovery function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecoveryCounters {
    /// `frerCpsSeqRcvyPassedPackets`.
    pub passed: u64,
    /// `frerCpsSeqRcvyDiscardedPackets`: duplicates.
    pub discarded: u64,
    /// `frerCpsSeqRcvyOutOfOrderPackets`.
    pub out_of_order: u64,
    /// `frerCpsSeqRcvyRoguePackets`: outside the window.
    pub rogue: u64,
    /// `frerCpsSeqRcvyLostPackets`.
    pub lost: u64,
    /// `frerCpsSeqRcvyResets`.
    pub resets: u64,
}

/// The recovery state of one ON (or of one stream of it) at the egress.
#[derive(Clone, Debug)]
pub struct Recovery {
    config: RecoveryConfig,
    take_any: bool,
    recov_seq: u32,
    /// Bit `(head - j) mod len` is set if `recov_seq - j` was passed.
    history: Vec<u64>,
    head: u32,
    /// How many of the window's numbers come after the last reset (1..=len).
    valid: u32,
    last_pass_ns: u64,
    counters: RecoveryCounters,
}

impl Recovery {
    /// Fresh state: the first packet is taken, whatever its number.
    pub fn new(config: RecoveryConfig) -> Recovery {
        let words = (config.history_length as usize).div_ceil(64);
        Recovery {
            config,
            take_any: true,
            recov_seq: 0,
            history: vec![0; words],
            head: 0,
            valid: 0,
            last_pass_ns: 0,
            counters: RecoveryCounters::default(),
        }
    }

    fn bit(&self, at: u32) -> bool {
        self.history[at as usize / 64] >> (at % 64) & 1 == 1
    }

    fn set(&mut self, at: u32, on: bool) {
        let (w, b) = (at as usize / 64, at % 64);
        if on {
            self.history[w] |= 1 << b;
        } else {
            self.history[w] &= !(1 << b);
        }
    }

    /// The ring position of `recov_seq - back`, for `back` below the length.
    fn slot(&self, back: u32) -> u32 {
        let len = self.config.history_length;
        (self.head + len - back) % len
    }

    /// Resets if no packet has been passed for the reset timeout.
    pub fn tick(&mut self, now_ns: u64) {
        if !self.take_any && now_ns.saturating_sub(self.last_pass_ns) >= self.config.reset_timeout_ns {
            self.take_any = true;
            self.history.fill(0);
            self.valid = 0;
            self.counters.resets += 1;
        }
    }

    /// Whether to pass a packet with sequence number `seq` arriving at `now_ns`.
    pub fn accept(&mut self, seq: u32, now_ns: u64) -> bool {
        self.tick(now_ns);
        let len = self.config.history_length;
        if self.take_any {
            self.take_any = false;
            self.recov_seq = seq;
            self.head = 0;
            self.set(0, true);
            self.valid = 1;
            return self.pass(now_ns);
        }
        let delta = i64::from(seq.wrapping_sub(self.recov_seq) as i32);
        if delta >= i64::from(len) || delta <= -i64::from(len) {
            self.counters.rogue += 1;
            return false;
        }
        if delta <= 0 {
            let at = self.slot(delta.unsigned_abs() as u32);
            if self.bit(at) {
                self.counters.discarded += 1;
                return false;
            }
            self.set(at, true);
            self.counters.out_of_order += 1;
            return self.pass(now_ns);
        }
        if delta != 1 {
            self.counters.out_of_order += 1;
        }
        for _ in 0..delta {
            self.head = (self.head + 1) % len;
            // The slot now at the head held recov_seq + i - len: it leaves the window.
            if self.valid == len {
                if !self.bit(self.head) {
                    self.counters.lost += 1;
                }
            } else {
                self.valid += 1;
            }
            self.set(self.head, false);
        }
        self.set(self.head, true);
        self.recov_seq = seq;
        self.pass(now_ns)
    }

    fn pass(&mut self, now_ns: u64) -> bool {
        self.last_pass_ns = now_ns;
        self.counters.passed += 1;
        true
    }

    /// The counters so far.
    pub fn counters(&self) -> RecoveryCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const MS: u64 = 1_000_000;

    fn rec(len: u32) -> Recovery {
        Recovery::new(RecoveryConfig::new(len, 100 * MS).unwrap())
    }

    #[test]
    fn duplicates_from_two_paths_are_eliminated() {
        let mut r = rec(16);
        let mut passed = Vec::new();
        // Path A and path B each deliver every number; B lags A by 2.
        for i in 0..100u32 {
            if r.accept(i, u64::from(i)) {
                passed.push(i);
            }
            if i >= 2 && r.accept(i - 2, u64::from(i)) {
                passed.push(i - 2);
            }
        }
        assert_eq!(passed, (0..100).collect::<Vec<_>>());
        let c = r.counters();
        assert_eq!((c.passed, c.discarded, c.out_of_order, c.rogue, c.lost), (100, 98, 0, 0, 0));
    }

    #[test]
    fn reordering_within_the_window_passes_each_once() {
        let mut r = rec(8);
        let order = [0, 2, 1, 5, 3, 4, 3, 7, 6, 6];
        let passed: Vec<bool> = order.iter().map(|&s| r.accept(s, 0)).collect();
        assert_eq!(passed, [true, true, true, true, true, true, false, true, true, false]);
        let c = r.counters();
        // Out of order: 2 (skips 1), 1 (behind), 5 (skips), 3, 4 (behind), 7 (skips), 6 (behind).
        assert_eq!((c.passed, c.discarded, c.out_of_order), (8, 2, 7));
    }

    #[test]
    fn loss_of_one_path_loses_nothing_and_loss_of_both_is_counted() {
        let mut r = rec(4);
        // Path B is dead; path A alone carries everything: nothing lost.
        for i in 0..10 {
            assert!(r.accept(i, 0));
        }
        assert_eq!(r.counters().lost, 0);
        // Both paths lose 10 and 11: they are lost once they leave the window.
        for i in 12..20 {
            assert!(r.accept(i, 0));
        }
        assert_eq!(r.counters().lost, 2);
        assert_eq!(r.counters().out_of_order, 1);
    }

    #[test]
    fn sequence_numbers_wrap_around() {
        let mut r = rec(8);
        let seqs = [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 1, u32::MAX, 0, 2];
        let passed: Vec<bool> = seqs.iter().map(|&s| r.accept(s, 0)).collect();
        assert_eq!(passed, [true, true, true, true, true, false, false, true]);
        assert_eq!(r.counters().rogue, 0);
        assert_eq!(r.counters().discarded, 2);
    }

    #[test]
    fn rogue_packets_are_discarded_and_a_reset_follows_a_restarted_sender() {
        let mut r = rec(8);
        assert!(r.accept(1_000, 0));
        assert!(!r.accept(1_008, MS), "a window ahead");
        assert!(!r.accept(992, MS), "a window behind");
        assert!(r.accept(1_007, MS));
        assert!(r.accept(1_000 + 7 - 7 + 1, MS), "1,001 is still in the window");
        // The sender restarts at 0: rogue until the reset timeout, which
        // rogue packets do not restart.
        assert!(!r.accept(0, 50 * MS));
        assert!(!r.accept(1, 100 * MS));
        assert!(r.accept(2, MS + 100 * MS));
        assert!(r.accept(3, MS + 100 * MS));
        let c = r.counters();
        assert_eq!((c.rogue, c.resets, c.passed), (4, 1, 5));
        // A tick alone resets an idle stream (and only once).
        r.tick(500 * MS);
        r.tick(900 * MS);
        assert_eq!(r.counters().resets, 2);
        assert!(r.accept(77, 900 * MS));
    }

    #[test]
    fn configurations_are_checked() {
        assert_eq!(RecoveryConfig::new(1, 0), Err(InvalidRecoveryConfig::HistoryLength(1)));
        assert!(RecoveryConfig::new(1 << 31, 0).is_ok());
        assert!(RecoveryConfig::new((1 << 31) + 1, 0).is_err());
    }

    proptest! {
        /// With no resets, any arrival order of copies passes each number
        /// exactly once if it is within the window of the highest passed,
        /// and passed + discarded + rogue counts every arrival.
        #[test]
        fn each_number_passes_at_most_once(
            start: u32,
            arrivals in proptest::collection::vec(0u32..40, 1..200),
            len in 2u32..70,
        ) {
            let mut r = Recovery::new(RecoveryConfig::new(len, u64::MAX).unwrap());
            let mut passed = BTreeSet::new();
            for a in &arrivals {
                let seq = start.wrapping_add(*a);
                if r.accept(seq, 0) {
                    prop_assert!(passed.insert(*a), "{} passed twice", a);
                }
            }
            let c = r.counters();
            prop_assert_eq!(c.passed + c.discarded + c.rogue, arrivals.len() as u64);
            prop_assert_eq!(c.passed, passed.len() as u64);
            // A number never seen before, within the window, is always passed:
            // so with copies in order on two paths, every number passes.
            let mut r = Recovery::new(RecoveryConfig::new(len, u64::MAX).unwrap());
            let mut n = 0;
            for i in 0..arrivals.len() as u32 {
                n += u32::from(r.accept(start.wrapping_add(i), 0));
                n += u32::from(r.accept(start.wrapping_add(i), 0));
            }
            prop_assert_eq!(n as usize, arrivals.len());
        }
    }
}
