//! Router partitioning: a virtual router per ON, with strict service.
//!
//! A router sets aside for each ON a [`Reservation`]: bits per second,
//! packets per second and program capacity units. Each ON's packets are
//! served by two token buckets of its own, one for bits and one for packets,
//! each as deep as the reservation's burst. **Service is strict**: a packet
//! above its ON's contract is dropped even when the router is idle. This is
//! Birman's argument (section V.1): an ON that got more than it paid for
//! while the router was quiet would have its TCP flows grow into a rate that
//! is taken away when the rest of the router gets busy, and they would see a
//! burst of loss instead of the early warning of their own contract. A
//! virtual network must imitate a dedicated one, limits included.
//!
//! Traffic outside every ON (no flow id, or one with no reservation here, or
//! one still being prepared by two-phase commit) is served by the
//! *unreserved share*: its own two buckets, whose rates are what the
//! reservations leave of the router's capacity.
//!
//! **Admission** refuses a reservation that would oversubscribe the router
//! in any of the three resources; tentative reservations (prepared but not
//! committed) count, since they are set aside.
//!
//! **Scale**: a small hash map from flow id to a slot index, and the slots
//! in a dense vector of cache-line-aligned entries (see [`Partition`]),
//! make per-packet classification and accounting O(1) with no allocation
//! per packet; [`Partition::serve_batch`] overlaps a batch's cache misses
//! (benchmarks/overlay.md: 10,000 ONs against 1). The map's hasher is `FlowHasher`: one folded
//! multiply of the 32-bit id with two keys drawn per partition from the
//! standard library's randomly keyed `RandomState`. It is weaker than the
//! standard library's SipHash against an adversary, and it need not be
//! stronger: the keys *in* the map are the reservations, chosen by the
//! manager, while a sender on the wire chooses only the ids it looks up,
//! which cannot lengthen any probe sequence or grow the map; the keys keep
//! even the reserved ids' placement unpredictable.
//!
//! Time is a `u64` count of nanoseconds on the caller's clock. A clock that
//! goes backwards refills nothing (buckets never go back in time).

use crate::FlowId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use thiserror::Error;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// An amount of each of the three resources a router sets aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Bits per second.
    pub bps: u64,
    /// Packets per second.
    pub pps: u64,
    /// Program capacity units (the engine's metering units).
    pub units: u64,
}

impl Resources {
    fn checked_add(self, o: Resources) -> Option<Resources> {
        Some(Resources { bps: self.bps.checked_add(o.bps)?, pps: self.pps.checked_add(o.pps)?, units: self.units.checked_add(o.units)? })
    }

    /// `self - o`, for `o` no larger in any resource.
    fn minus(self, o: Resources) -> Resources {
        Resources { bps: self.bps - o.bps, pps: self.pps - o.pps, units: self.units - o.units }
    }
}

/// What an ON reserves on one router: its rates and program units, and the
/// depth of its buckets. Built only by [`Reservation::new`], which checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ReservationFields")]
pub struct Reservation {
    rates: Resources,
    burst_bytes: u64,
    burst_packets: u64,
}

/// The fields of a [`Reservation`] as they are serialized; checked on the way in.
#[derive(Deserialize)]
struct ReservationFields {
    rates: Resources,
    burst_bytes: u64,
    burst_packets: u64,
}

impl TryFrom<ReservationFields> for Reservation {
    type Error = InvalidReservation;
    fn try_from(f: ReservationFields) -> Result<Self, Self::Error> {
        Reservation::new(f.rates, f.burst_bytes, f.burst_packets)
    }
}

/// Why a reservation is not well-formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InvalidReservation {
    /// A zero bit or packet rate: the ON could send nothing.
    #[error("reservation: zero bit or packet rate")]
    ZeroRate,
    /// A zero burst: no packet would ever fit the buckets.
    #[error("reservation: zero burst")]
    ZeroBurst,
}

impl Reservation {
    /// A reservation of `rates`, with buckets `burst_bytes` and
    /// `burst_packets` deep. A packet longer than `burst_bytes` never passes.
    pub fn new(rates: Resources, burst_bytes: u64, burst_packets: u64) -> Result<Reservation, InvalidReservation> {
        if rates.bps == 0 || rates.pps == 0 {
            return Err(InvalidReservation::ZeroRate);
        }
        if burst_bytes == 0 || burst_packets == 0 {
            return Err(InvalidReservation::ZeroBurst);
        }
        Ok(Reservation { rates, burst_bytes, burst_packets })
    }

    /// The rates and units reserved.
    pub fn rates(&self) -> Resources {
        self.rates
    }

    /// The depth of the bit bucket, in bytes.
    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    /// The depth of the packet bucket, in packets.
    pub fn burst_packets(&self) -> u64 {
        self.burst_packets
    }
}

/// A router's capacity and the buckets of its unreserved share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionConfig {
    /// What the router can give out in all.
    pub capacity: Resources,
    /// The depth of the unreserved share's bit bucket, in bytes.
    pub unreserved_burst_bytes: u64,
    /// The depth of the unreserved share's packet bucket, in packets.
    pub unreserved_burst_packets: u64,
}

/// Whether a reservation is in force or only set aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Standing {
    /// Prepared by two-phase commit: counted by admission, not yet serving.
    Tentative,
    /// Committed: the ON's packets are served by its buckets.
    Active,
}

/// Why a reservation is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum AdmissionError {
    /// The flow already has a reservation on this router.
    #[error("flow {0:?} already has a reservation")]
    AlreadyReserved(FlowId),
    /// One resource would be oversubscribed.
    #[error("{resource} oversubscribed: {asked} asked, {free} free")]
    Oversubscribed {
        /// Which resource.
        resource: &'static str,
        /// The amount asked for.
        asked: u64,
        /// The amount free.
        free: u64,
    },
    /// The router holds as many reservations as a slot index can number.
    #[error("no slot left for another reservation")]
    TooMany,
}

/// What becomes of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within its contract: forward it.
    Pass,
    /// Above its contract: drop it.
    Drop,
}

/// The counters of an ON, or of the unreserved share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Packets passed.
    pub passed_packets: u64,
    /// Bytes passed.
    pub passed_bytes: u64,
    /// Packets dropped over contract.
    pub dropped_packets: u64,
    /// Bytes dropped over contract.
    pub dropped_bytes: u64,
}

impl Counters {
    fn count(&mut self, verdict: Verdict, bytes: u64) {
        let (packets, b) = match verdict {
            Verdict::Pass => (&mut self.passed_packets, &mut self.passed_bytes),
            Verdict::Drop => (&mut self.dropped_packets, &mut self.dropped_bytes),
        };
        *packets = packets.saturating_add(1);
        *b = b.saturating_add(bytes);
    }
}

/// A token bucket in exact integer arithmetic: tokens are counted in
/// units of 10^-9 of a bit or packet, so a rate per second refills `rate`
/// of them per nanosecond. `u128` keeps `rate * elapsed` from overflowing
/// for any `u64` rate and elapsed time. The time of the last refill is the
/// [`Share`]'s, since its two buckets are always refilled together.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    rate: u64,
    /// In whole tokens.
    depth: u64,
    tokens: u128,
}

impl Bucket {
    /// A full bucket of `depth` whole tokens.
    fn new(rate: u64, depth: u64) -> Bucket {
        Bucket { rate, depth, tokens: u128::from(depth) * NANOS_PER_SEC }
    }

    fn refill(&mut self, elapsed_ns: u64) {
        let add = u128::from(self.rate) * u128::from(elapsed_ns);
        self.tokens = self.tokens.saturating_add(add).min(u128::from(self.depth) * NANOS_PER_SEC);
    }

    fn has(&self, amount: u64) -> bool {
        self.tokens >= u128::from(amount) * NANOS_PER_SEC
    }

    /// Callers have checked [`Bucket::has`].
    fn take(&mut self, amount: u64) {
        self.tokens -= u128::from(amount) * NANOS_PER_SEC;
    }
}

/// A pair of buckets and the counters of what they served.
#[derive(Clone, Copy, Debug)]
struct Share {
    bits: Bucket,
    packets: Bucket,
    last_ns: u64,
    counters: Counters,
}

impl Share {
    fn new(bps: u64, pps: u64, burst_bytes: u64, burst_packets: u64, now_ns: u64) -> Share {
        Share {
            bits: Bucket::new(bps, burst_bytes.saturating_mul(8)),
            packets: Bucket::new(pps, burst_packets),
            last_ns: now_ns,
            counters: Counters::default(),
        }
    }

    /// Brings both buckets to `now_ns` (a clock that went back refills nothing).
    fn refill(&mut self, now_ns: u64) {
        if now_ns > self.last_ns {
            let elapsed = now_ns - self.last_ns;
            self.bits.refill(elapsed);
            self.packets.refill(elapsed);
            self.last_ns = now_ns;
        }
    }

    /// New rates from `now_ns` on (what was earned at the old ones is kept).
    fn set_rates(&mut self, bps: u64, pps: u64, now_ns: u64) {
        self.refill(now_ns);
        self.bits.rate = bps;
        self.packets.rate = pps;
    }

    fn serve(&mut self, bytes: u64, now_ns: u64) -> Verdict {
        self.refill(now_ns);
        let bits = bytes.saturating_mul(8);
        let verdict = if self.bits.has(bits) && self.packets.has(1) {
            self.bits.take(bits);
            self.packets.take(1);
            Verdict::Pass
        } else {
            Verdict::Drop
        };
        self.counters.count(verdict, bytes);
        verdict
    }
}

/// The partition's hasher of flow ids: `(id ^ k0) * k1`, folded (the high
/// half of the 128-bit product xored into the low half), with keys drawn per
/// partition. See the module's note on why this is strong enough.
#[derive(Clone, Copy, Debug)]
struct FlowHasher {
    k0: u64,
    k1: u64,
    state: u64,
}

/// Builds [`FlowHasher`]s with keys drawn from the standard library's random source.
#[derive(Clone, Copy, Debug)]
struct FlowHasherBuilder {
    k0: u64,
    k1: u64,
}

impl FlowHasherBuilder {
    fn new() -> FlowHasherBuilder {
        let s = RandomState::new();
        FlowHasherBuilder { k0: s.hash_one(0x243f_6a88_85a3_08d3u64), k1: s.hash_one(0x1319_8a2e_0370_7344u64) | 1 }
    }
}

impl BuildHasher for FlowHasherBuilder {
    type Hasher = FlowHasher;
    fn build_hasher(&self) -> FlowHasher {
        FlowHasher { k0: self.k0, k1: self.k1, state: 0 }
    }
}

fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Hasher for FlowHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `FlowId` (which writes one u32); kept correct for any key.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    fn write_u64(&mut self, x: u64) {
        self.state = folded_multiply(self.state ^ x ^ self.k0, self.k1);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// What a packet of the data path does not need: an ON's reservation and
/// standing, by the same index as its [`Hot`] slot.
#[derive(Clone, Copy, Debug)]
struct Cold {
    flow: FlowId,
    reservation: Reservation,
    standing: Standing,
}

/// What a packet touches: the ON's buckets and counters, and whether it is
/// in force. Aligned to a cache line and two lines long, so that one
/// packet's accounting costs at most two lines of one slot.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Hot {
    share: Share,
    active: bool,
}

/// One packet of a batch, as [`Partition::serve_batch`] takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Packet {
    /// Its ON's flow id, if it carries one.
    pub flow: Option<FlowId>,
    /// Its length in bytes.
    pub bytes: u64,
}

/// What became of a packet of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    /// Pass or drop.
    pub verdict: Verdict,
    /// Whether an ON's reservation served it (else the unreserved share did).
    pub reserved: bool,
}

impl Default for Served {
    fn default() -> Served {
        Served { verdict: Verdict::Pass, reserved: false }
    }
}

/// The largest batch [`Partition::serve_batch`] takes at once (longer ones
/// are served in pieces of this size).
pub const MAX_BATCH: usize = 64;

/// No slot: the packet is of no ON here.
const NONE: u32 = u32::MAX;

/// The partitioned router: its reservations and the unreserved share.
///
/// The slots are two dense vectors with one index: `hot` for what packets
/// touch and `cold` for the rest, with swap-removal so that releasing is
/// O(1) and the vectors hold no holes. The map from flow id to index is
/// small (8-byte entries: 16,384 of them are 128 KiB, within a core's L2),
/// so a packet's lookup rarely leaves the L2 and its one likely miss is its
/// [`Hot`] slot. [`Partition::serve_batch`] looks every packet of a batch
/// up first and reads its slot's `active` flag, independent loads that the
/// processor overlaps, and then serves them, so that a batch waits about as
/// long as one miss rather than one miss a packet.
#[derive(Clone, Debug)]
pub struct Partition {
    config: PartitionConfig,
    /// Each ON's index in `hot` and `cold`, by flow id.
    index: HashMap<FlowId, u32, FlowHasherBuilder>,
    hot: Vec<Hot>,
    cold: Vec<Cold>,
    /// The sum of all reservations' rates, tentative ones included.
    reserved: Resources,
    unreserved: Share,
}

impl Partition {
    /// A router with nothing reserved yet.
    pub fn new(config: PartitionConfig, now_ns: u64) -> Partition {
        let c = config.capacity;
        Partition {
            config,
            index: HashMap::with_hasher(FlowHasherBuilder::new()),
            hot: Vec::new(),
            cold: Vec::new(),
            reserved: Resources::default(),
            unreserved: Share::new(c.bps, c.pps, config.unreserved_burst_bytes, config.unreserved_burst_packets, now_ns),
        }
    }

    /// Whether `reservation` for `flow` would be admitted now.
    pub fn check(&self, flow: FlowId, reservation: &Reservation) -> Result<(), AdmissionError> {
        if self.index.contains_key(&flow) {
            return Err(AdmissionError::AlreadyReserved(flow));
        }
        let free = self.free();
        let asked = reservation.rates;
        for (resource, asked, free) in [("bps", asked.bps, free.bps), ("pps", asked.pps, free.pps), ("units", asked.units, free.units)] {
            if asked > free {
                return Err(AdmissionError::Oversubscribed { resource, asked, free });
            }
        }
        Ok(())
    }

    /// Sets `reservation` aside for `flow`, refusing one that does not fit.
    pub fn reserve(&mut self, flow: FlowId, reservation: Reservation, standing: Standing, now_ns: u64) -> Result<(), AdmissionError> {
        self.check(flow, &reservation)?;
        let i = u32::try_from(self.hot.len()).ok().filter(|&i| i != NONE).ok_or(AdmissionError::TooMany)?;
        let r = reservation;
        let share = Share::new(r.rates.bps, r.rates.pps, r.burst_bytes, r.burst_packets, now_ns);
        self.hot.push(Hot { share, active: standing == Standing::Active });
        self.cold.push(Cold { flow, reservation, standing });
        self.index.insert(flow, i);
        self.reserved = self.reserved.checked_add(r.rates).expect("admission keeps the sum within the capacity");
        self.retune_unreserved(now_ns);
        Ok(())
    }

    /// Puts a tentative reservation in force (its buckets start full);
    /// false if `flow` has no tentative reservation.
    pub fn activate(&mut self, flow: FlowId, now_ns: u64) -> bool {
        let Some(&i) = self.index.get(&flow) else { return false };
        let (hot, cold) = (&mut self.hot[i as usize], &mut self.cold[i as usize]);
        if cold.standing != Standing::Tentative {
            return false;
        }
        let r = cold.reservation;
        cold.standing = Standing::Active;
        *hot = Hot { share: Share::new(r.rates.bps, r.rates.pps, r.burst_bytes, r.burst_packets, now_ns), active: true };
        true
    }

    /// Releases `flow`'s reservation, returning what it held.
    pub fn release(&mut self, flow: FlowId, now_ns: u64) -> Option<Reservation> {
        let i = self.index.remove(&flow)? as usize;
        self.hot.swap_remove(i);
        let cold = self.cold.swap_remove(i);
        if let Some(moved) = self.cold.get(i) {
            // The last slot took the released one's place.
            self.index.insert(moved.flow, i as u32);
        }
        self.reserved = self.reserved.minus(cold.reservation.rates);
        self.retune_unreserved(now_ns);
        Some(cold.reservation)
    }

    /// Serves one packet of `bytes` bytes of `flow` (`None`: outside every
    /// ON): O(1), no allocation.
    pub fn serve(&mut self, flow: Option<FlowId>, bytes: u64, now_ns: u64) -> Verdict {
        let i = flow.and_then(|f| self.index.get(&f)).map_or(NONE, |&i| i);
        self.serve_at(i, bytes, now_ns).verdict
    }

    /// Serves a batch of packets that arrived by `now_ns`, writing what
    /// became of `packets[i]` to `out[i]` (`out` is at least as long):
    /// the same verdicts as [`Partition::serve`] one by one, in order, and
    /// whether a reservation served each. No allocation.
    pub fn serve_batch(&mut self, packets: &[Packet], now_ns: u64, out: &mut [Served]) {
        assert!(out.len() >= packets.len(), "serve_batch: {} packets, {} verdicts", packets.len(), out.len());
        for (packets, out) in packets.chunks(MAX_BATCH).zip(out.chunks_mut(MAX_BATCH)) {
            // First every lookup, each touching its slot: the misses overlap.
            // (Both lines of a slot are read: `active` is in the second, the
            // buckets in the first; `touch` keeps the first read.)
            let mut slots = [NONE; MAX_BATCH];
            let mut touch = 0u64;
            for (slot, p) in slots.iter_mut().zip(packets) {
                let i = p.flow.and_then(|f| self.index.get(&f)).map_or(NONE, |&i| i);
                *slot = match self.hot.get(i as usize) {
                    Some(h) => {
                        touch ^= h.share.bits.rate;
                        if h.active {
                            i
                        } else {
                            NONE
                        }
                    }
                    None => NONE,
                };
            }
            std::hint::black_box(touch);
            // Then the accounting, in the packets' order.
            for ((o, &i), p) in out.iter_mut().zip(&slots).zip(packets) {
                *o = self.serve_at(i, p.bytes, now_ns);
            }
        }
    }

    /// Serves a packet by slot index (`NONE` or a slot not in force: the
    /// unreserved share).
    fn serve_at(&mut self, i: u32, bytes: u64, now_ns: u64) -> Served {
        match self.hot.get_mut(i as usize) {
            Some(h) if h.active => Served { verdict: h.share.serve(bytes, now_ns), reserved: true },
            _ => Served { verdict: self.unreserved.serve(bytes, now_ns), reserved: false },
        }
    }

    /// `flow`'s reservation and its standing.
    pub fn reservation(&self, flow: FlowId) -> Option<(Reservation, Standing)> {
        let c = &self.cold[*self.index.get(&flow)? as usize];
        Some((c.reservation, c.standing))
    }

    /// `flow`'s counters (since its reservation was made or put in force).
    pub fn counters(&self, flow: FlowId) -> Option<Counters> {
        Some(self.hot[*self.index.get(&flow)? as usize].share.counters)
    }

    /// The unreserved share's counters.
    pub fn unreserved_counters(&self) -> Counters {
        self.unreserved.counters
    }

    /// The sum of all reservations, tentative ones included.
    pub fn reserved(&self) -> Resources {
        self.reserved
    }

    /// What is left to reserve: the unreserved share's rates.
    pub fn free(&self) -> Resources {
        self.config.capacity.minus(self.reserved)
    }

    /// The number of reservations.
    pub fn len(&self) -> usize {
        self.cold.len()
    }

    /// Whether there is no reservation.
    pub fn is_empty(&self) -> bool {
        self.cold.is_empty()
    }

    /// Every reservation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, Reservation, Standing)> + '_ {
        self.cold.iter().map(|c| (c.flow, c.reservation, c.standing))
    }

    fn retune_unreserved(&mut self, now_ns: u64) {
        let free = self.free();
        self.unreserved.set_rates(free.bps, free.pps, now_ns);
    }

    /// Recomputes what the partition keeps incrementally and compares.
    #[cfg(test)]
    pub(crate) fn audit(&self) {
        let mut sum = Resources::default();
        assert_eq!((self.index.len(), self.hot.len()), (self.cold.len(), self.cold.len()));
        for (flow, &i) in &self.index {
            let (h, c) = (&self.hot[i as usize], &self.cold[i as usize]);
            assert_eq!(*flow, c.flow);
            assert_eq!(h.active, c.standing == Standing::Active);
            sum = sum.checked_add(c.reservation.rates).unwrap();
        }
        assert_eq!(sum, self.reserved);
        let c = self.config.capacity;
        assert!(sum.bps <= c.bps && sum.pps <= c.pps && sum.units <= c.units, "oversubscribed: {sum:?} of {c:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn config() -> PartitionConfig {
        PartitionConfig {
            capacity: Resources { bps: 1_000_000_000, pps: 100_000, units: 1_000 },
            unreserved_burst_bytes: 15_000,
            unreserved_burst_packets: 10,
        }
    }

    fn res(bps: u64, pps: u64, units: u64) -> Reservation {
        Reservation::new(Resources { bps, pps, units }, 3_000, 2).unwrap()
    }

    #[test]
    fn reservations_are_checked() {
        assert_eq!(Reservation::new(Resources { bps: 0, pps: 1, units: 0 }, 1, 1), Err(InvalidReservation::ZeroRate));
        assert_eq!(Reservation::new(Resources { bps: 1, pps: 1, units: 0 }, 1, 0), Err(InvalidReservation::ZeroBurst));
        // Deserialization goes through the same check (`#[serde(try_from)]`).
        let fields = ReservationFields { rates: Resources { bps: 0, pps: 1, units: 0 }, burst_bytes: 1, burst_packets: 1 };
        assert_eq!(Reservation::try_from(fields), Err(InvalidReservation::ZeroRate));
    }

    #[test]
    fn admission_refuses_oversubscription_in_each_resource() {
        let mut p = Partition::new(config(), 0);
        p.reserve(FlowId(1), res(600_000_000, 10, 10), Standing::Active, 0).unwrap();
        assert_eq!(
            p.reserve(FlowId(2), res(500_000_000, 10, 10), Standing::Active, 0),
            Err(AdmissionError::Oversubscribed { resource: "bps", asked: 500_000_000, free: 400_000_000 })
        );
        assert!(matches!(
            p.reserve(FlowId(2), res(1, 100_000, 1), Standing::Active, 0),
            Err(AdmissionError::Oversubscribed { resource: "pps", .. })
        ));
        assert!(matches!(
            p.reserve(FlowId(2), res(1, 1, 991), Standing::Tentative, 0),
            Err(AdmissionError::Oversubscribed { resource: "units", .. })
        ));
        assert_eq!(p.reserve(FlowId(1), res(1, 1, 1), Standing::Active, 0), Err(AdmissionError::AlreadyReserved(FlowId(1))));
        // Exactly the rest fits, tentative or not.
        p.reserve(FlowId(2), res(400_000_000, 99_990, 990), Standing::Tentative, 0).unwrap();
        assert_eq!(p.free(), Resources::default());
        assert_eq!(p.release(FlowId(1), 0), Some(res(600_000_000, 10, 10)));
        assert_eq!(p.release(FlowId(1), 0), None);
        p.reserve(FlowId(3), res(600_000_000, 10, 10), Standing::Active, 0).unwrap();
        p.audit();
    }

    /// Birman's strict service: above its contract an ON is dropped even on
    /// an idle router.
    #[test]
    fn strict_service_drops_above_contract_on_an_idle_router() {
        let mut p = Partition::new(config(), 0);
        // 8,000 bit/s = 1,000 bytes a second; bucket 3,000 bytes, 2 packets.
        let f = FlowId(7);
        p.reserve(f, Reservation::new(Resources { bps: 8_000, pps: 1_000, units: 0 }, 3_000, 1_000).unwrap(), Standing::Active, 0).unwrap();
        assert_eq!(p.serve(Some(f), 1_500, 0), Verdict::Pass);
        assert_eq!(p.serve(Some(f), 1_500, 0), Verdict::Pass);
        assert_eq!(p.serve(Some(f), 1, 0), Verdict::Drop);
        // Half a second later, 500 bytes have come back: not enough for 1,000.
        assert_eq!(p.serve(Some(f), 1_000, SEC / 2), Verdict::Drop);
        assert_eq!(p.serve(Some(f), 500, SEC / 2), Verdict::Pass);
        // Meanwhile the router's unreserved share has plenty.
        assert_eq!(p.serve(None, 1_500, SEC / 2), Verdict::Pass);
        let c = p.counters(f).unwrap();
        assert_eq!(c, Counters { passed_packets: 3, passed_bytes: 3_500, dropped_packets: 2, dropped_bytes: 1_001 });
        // A long idle period refills no more than the burst.
        assert_eq!(p.serve(Some(f), 3_000, 100 * SEC), Verdict::Pass);
        assert_eq!(p.serve(Some(f), 8, 100 * SEC), Verdict::Drop);
    }

    #[test]
    fn packet_bucket_limits_small_packets() {
        let mut p = Partition::new(config(), 0);
        let f = FlowId(8);
        p.reserve(f, Reservation::new(Resources { bps: 1_000_000, pps: 10, units: 0 }, 100_000, 2).unwrap(), Standing::Active, 0).unwrap();
        let passed = (0..5).filter(|_| p.serve(Some(f), 64, 0) == Verdict::Pass).count();
        assert_eq!(passed, 2);
        // One packet's worth every 100 ms.
        assert_eq!(p.serve(Some(f), 64, SEC / 10 - 1), Verdict::Drop);
        assert_eq!(p.serve(Some(f), 64, SEC / 10), Verdict::Pass);
    }

    #[test]
    fn unknown_and_tentative_flows_use_the_unreserved_share() {
        let cfg = PartitionConfig {
            capacity: Resources { bps: 16_000, pps: 100, units: 10 },
            unreserved_burst_bytes: 2_000,
            unreserved_burst_packets: 100,
        };
        let mut p = Partition::new(cfg, 0);
        p.reserve(FlowId(1), Reservation::new(Resources { bps: 8_000, pps: 50, units: 5 }, 1_000, 10).unwrap(), Standing::Tentative, 0)
            .unwrap();
        // Tentative: its packets are outside the ON, and the share shrank to 8,000 bit/s.
        assert_eq!(p.serve(Some(FlowId(1)), 2_000, 0), Verdict::Pass);
        assert_eq!(p.serve(Some(FlowId(99)), 1_000, SEC), Verdict::Pass);
        assert_eq!(p.serve(None, 1, SEC), Verdict::Drop);
        assert_eq!(p.unreserved_counters().passed_packets, 2);
        assert_eq!(p.counters(FlowId(1)).unwrap(), Counters::default());
        assert!(p.activate(FlowId(1), SEC));
        assert!(!p.activate(FlowId(1), SEC));
        assert_eq!(p.serve(Some(FlowId(1)), 1_000, SEC), Verdict::Pass);
        assert_eq!(p.counters(FlowId(1)).unwrap().passed_packets, 1);
        // Releasing it gives its rate back to the unreserved share.
        p.release(FlowId(1), SEC);
        assert_eq!(p.free(), cfg.capacity);
        assert_eq!(p.serve(None, 2_000, SEC + SEC), Verdict::Pass);
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let mut p = Partition::new(config(), 10 * SEC);
        let f = FlowId(1);
        p.reserve(f, Reservation::new(Resources { bps: 8_000, pps: 1_000, units: 0 }, 1_000, 10).unwrap(), Standing::Active, 10 * SEC)
            .unwrap();
        assert_eq!(p.serve(Some(f), 1_000, 10 * SEC), Verdict::Pass);
        assert_eq!(p.serve(Some(f), 1, 0), Verdict::Drop);
        assert_eq!(p.serve(Some(f), 1_000, 11 * SEC), Verdict::Pass);
    }

    /// 10,000 ONs on one router, each served and counted on its own.
    #[test]
    fn ten_thousand_ons() {
        let cfg = PartitionConfig { capacity: Resources { bps: 100_000_000_000, pps: 100_000_000, units: 1_000_000 }, ..config() };
        let mut p = Partition::new(cfg, 0);
        for i in 0..10_000u32 {
            p.reserve(FlowId(i * 7 + 1), res(10_000_000, 10_000, 100), Standing::Active, 0).unwrap();
        }
        assert_eq!(p.len(), 10_000);
        assert!(matches!(
            p.reserve(FlowId(u32::MAX), res(1, 1, 1), Standing::Active, 0),
            Err(AdmissionError::Oversubscribed { resource: "bps", .. })
        ));
        for round in 0..3u64 {
            for i in 0..10_000u32 {
                assert_eq!(p.serve(Some(FlowId(i * 7 + 1)), 1_000, round), if round < 2 { Verdict::Pass } else { Verdict::Drop });
            }
        }
        for i in (0..10_000u32).step_by(997) {
            let c = p.counters(FlowId(i * 7 + 1)).unwrap();
            assert_eq!((c.passed_packets, c.passed_bytes, c.dropped_packets), (2, 2_000, 1));
        }
        // Freed slots are reused: neither the map nor the slots grow.
        let capacity = (p.index.capacity(), p.hot.capacity());
        for i in 0..5_000u32 {
            p.release(FlowId(i * 7 + 1), 10);
        }
        for i in 0..5_000u32 {
            p.reserve(FlowId(1_000_000 + i), res(1, 1, 1), Standing::Active, 10).unwrap();
        }
        // (`capacity` counts what fits before the next growth, which the
        // tombstones of removed slots use up; growing would double it.)
        assert_eq!(p.len(), 10_000);
        assert!(p.index.capacity() <= capacity.0 && p.hot.capacity() <= capacity.1, "{capacity:?}");
        for i in (5_000..10_000u32).step_by(499) {
            // Moved by the swaps, still counted as before.
            assert_eq!(p.counters(FlowId(i * 7 + 1)).unwrap().passed_packets, 2);
        }
        p.audit();
    }

    /// A packet's accounting touches two cache lines of one slot at most.
    #[test]
    fn a_hot_slot_is_two_cache_lines() {
        assert_eq!(std::mem::align_of::<Hot>(), 64);
        assert!(std::mem::size_of::<Hot>() <= 128, "{}", std::mem::size_of::<Hot>());
    }

    /// A batch is served as its packets one by one, and says which a
    /// reservation served: an ON in force, not a tentative one, not a key of
    /// no ON, not a packet with no key.
    #[test]
    fn a_batch_is_served_as_its_packets_one_by_one() {
        let mut a = Partition::new(config(), 0);
        for (f, standing) in [(1, Standing::Active), (2, Standing::Tentative), (3, Standing::Active)] {
            a.reserve(FlowId(f), Reservation::new(Resources { bps: 80_000, pps: 5, units: 0 }, 5_000, 3).unwrap(), standing, 0).unwrap();
        }
        let mut b = a.clone();
        let flows = [Some(1), Some(2), Some(3), Some(9), None, Some(1), Some(1), Some(1), Some(3)];
        let packets: Vec<Packet> =
            (0..150).map(|i| Packet { flow: flows[i % flows.len()].map(FlowId), bytes: 100 + i as u64 * 7 }).collect();
        let mut out = vec![Served::default(); packets.len()];
        a.serve_batch(&packets, 1_000, &mut out);
        for (p, o) in packets.iter().zip(&out) {
            assert_eq!(b.serve(p.flow, p.bytes, 1_000), o.verdict);
            assert_eq!(o.reserved, matches!(p.flow, Some(FlowId(1 | 3))), "{p:?}");
        }
        assert!(out.iter().any(|o| o.reserved && o.verdict == Verdict::Drop), "some over contract");
        assert!(out.iter().any(|o| o.reserved && o.verdict == Verdict::Pass));
        for f in [1, 2, 3] {
            assert_eq!(a.counters(FlowId(f)), b.counters(FlowId(f)));
        }
        assert_eq!(a.unreserved_counters(), b.unreserved_counters());
    }

    proptest! {
        /// Over any sequence of reserve, release and serve, the partition's
        /// sums match its reservations and the capacity is never exceeded;
        /// an ON never passes more than its burst plus its rate times the time.
        #[test]
        fn accounting_holds(ops in proptest::collection::vec((0u8..3, 0u32..20, 1u64..400_000_000, 1u64..40_000, 0u64..300, 1u64..2_000, 0u64..SEC), 1..200)) {
            let mut p = Partition::new(config(), 0);
            let mut now = 0;
            let mut passed_bits: HashMap<FlowId, (u64, u64, u64)> = HashMap::new();
            for (op, flow, bps, pps, units, bytes, dt) in ops {
                now += dt;
                let flow = FlowId(flow);
                match op {
                    0 => {
                        let r = Reservation::new(Resources { bps, pps, units }, 3_000, 5).unwrap();
                        let expected = p.check(flow, &r);
                        prop_assert_eq!(p.reserve(flow, r, Standing::Active, now), expected);
                        if expected.is_ok() { passed_bits.insert(flow, (now, 0, bps)); }
                    }
                    1 => {
                        let held = p.reservation(flow).map(|r| r.0);
                        prop_assert_eq!(p.release(flow, now), held);
                        passed_bits.remove(&flow);
                    }
                    _ => {
                        if p.serve(Some(flow), bytes, now) == Verdict::Pass {
                            if let Some((since, bits, bps)) = passed_bits.get_mut(&flow) {
                                *bits += bytes * 8;
                                let allowed = 3_000u128 * 8 + u128::from(*bps) * u128::from(now - *since) / u128::from(SEC);
                                prop_assert!(u128::from(*bits) <= allowed);
                            }
                        }
                    }
                }
                p.audit();
            }
        }
    }
}
