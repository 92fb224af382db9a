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
//! **Scale**: a hash map from flow id to the ON's slot (its buckets held in
//! the map itself, so that a packet costs one probe and no second, dependent
//! cache miss into a separate table) makes per-packet classification and
//! accounting O(1) with no allocation per packet (benchmarks/overlay.md:
//! 10,000 ONs against 1). The map's hasher is `FlowHasher`: one folded
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
/// for any `u64` rate and elapsed time.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    rate: u64,
    depth: u128,
    tokens: u128,
    last_ns: u64,
}

impl Bucket {
    /// A full bucket of `depth` whole tokens.
    fn new(rate: u64, depth: u64, now_ns: u64) -> Bucket {
        let depth = u128::from(depth) * NANOS_PER_SEC;
        Bucket { rate, depth, tokens: depth, last_ns: now_ns }
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns > self.last_ns {
            let add = u128::from(self.rate) * u128::from(now_ns - self.last_ns);
            self.tokens = self.tokens.saturating_add(add).min(self.depth);
            self.last_ns = now_ns;
        }
    }

    fn has(&self, amount: u64) -> bool {
        self.tokens >= u128::from(amount) * NANOS_PER_SEC
    }

    /// Callers have checked [`Bucket::has`].
    fn take(&mut self, amount: u64) {
        self.tokens -= u128::from(amount) * NANOS_PER_SEC;
    }

    fn set_rate(&mut self, rate: u64, now_ns: u64) {
        self.refill(now_ns);
        self.rate = rate;
    }
}

/// A pair of buckets and the counters of what they served.
#[derive(Clone, Copy, Debug)]
struct Share {
    bits: Bucket,
    packets: Bucket,
    counters: Counters,
}

impl Share {
    fn new(bps: u64, pps: u64, burst_bytes: u64, burst_packets: u64, now_ns: u64) -> Share {
        Share {
            bits: Bucket::new(bps, burst_bytes.saturating_mul(8), now_ns),
            packets: Bucket::new(pps, burst_packets, now_ns),
            counters: Counters::default(),
        }
    }

    fn serve(&mut self, bytes: u64, now_ns: u64) -> Verdict {
        self.bits.refill(now_ns);
        self.packets.refill(now_ns);
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

#[derive(Clone, Debug)]
struct Slot {
    flow: FlowId,
    reservation: Reservation,
    standing: Standing,
    share: Share,
}

/// The partitioned router: its reservations and the unreserved share.
#[derive(Clone, Debug)]
pub struct Partition {
    config: PartitionConfig,
    /// Each ON's slot, by flow id.
    slots: HashMap<FlowId, Slot, FlowHasherBuilder>,
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
            slots: HashMap::with_hasher(FlowHasherBuilder::new()),
            reserved: Resources::default(),
            unreserved: Share::new(c.bps, c.pps, config.unreserved_burst_bytes, config.unreserved_burst_packets, now_ns),
        }
    }

    /// Whether `reservation` for `flow` would be admitted now.
    pub fn check(&self, flow: FlowId, reservation: &Reservation) -> Result<(), AdmissionError> {
        if self.slots.contains_key(&flow) {
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
        let r = reservation;
        let share = Share::new(r.rates.bps, r.rates.pps, r.burst_bytes, r.burst_packets, now_ns);
        let slot = Slot { flow, reservation, standing, share };
        self.slots.insert(flow, slot);
        self.reserved = self.reserved.checked_add(r.rates).expect("admission keeps the sum within the capacity");
        self.retune_unreserved(now_ns);
        Ok(())
    }

    /// Puts a tentative reservation in force (its buckets start full);
    /// false if `flow` has no tentative reservation.
    pub fn activate(&mut self, flow: FlowId, now_ns: u64) -> bool {
        match self.slot_mut(flow) {
            Some(slot) if slot.standing == Standing::Tentative => {
                let r = slot.reservation;
                slot.standing = Standing::Active;
                slot.share = Share::new(r.rates.bps, r.rates.pps, r.burst_bytes, r.burst_packets, now_ns);
                true
            }
            _ => false,
        }
    }

    /// Releases `flow`'s reservation, returning what it held.
    pub fn release(&mut self, flow: FlowId, now_ns: u64) -> Option<Reservation> {
        let slot = self.slots.remove(&flow)?;
        self.reserved = self.reserved.minus(slot.reservation.rates);
        self.retune_unreserved(now_ns);
        Some(slot.reservation)
    }

    /// Serves one packet of `bytes` bytes of `flow` (`None`: outside every
    /// ON): O(1), no allocation.
    pub fn serve(&mut self, flow: Option<FlowId>, bytes: u64, now_ns: u64) -> Verdict {
        let share = match flow.and_then(|f| self.slots.get_mut(&f)) {
            Some(slot) if slot.standing == Standing::Active => &mut slot.share,
            _ => &mut self.unreserved,
        };
        share.serve(bytes, now_ns)
    }

    /// `flow`'s reservation and its standing.
    pub fn reservation(&self, flow: FlowId) -> Option<(Reservation, Standing)> {
        let slot = self.slots.get(&flow)?;
        Some((slot.reservation, slot.standing))
    }

    /// `flow`'s counters (since its reservation was made or put in force).
    pub fn counters(&self, flow: FlowId) -> Option<Counters> {
        Some(self.slots.get(&flow)?.share.counters)
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
        self.slots.len()
    }

    /// Whether there is no reservation.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every reservation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (FlowId, Reservation, Standing)> + '_ {
        self.slots.values().map(|s| (s.flow, s.reservation, s.standing))
    }

    fn slot_mut(&mut self, flow: FlowId) -> Option<&mut Slot> {
        self.slots.get_mut(&flow)
    }

    fn retune_unreserved(&mut self, now_ns: u64) {
        let free = self.free();
        self.unreserved.bits.set_rate(free.bps, now_ns);
        self.unreserved.packets.set_rate(free.pps, now_ns);
    }

    /// Recomputes what the partition keeps incrementally and compares.
    #[cfg(test)]
    pub(crate) fn audit(&self) {
        let mut sum = Resources::default();
        for (flow, s) in &self.slots {
            assert_eq!(*flow, s.flow);
            sum = sum.checked_add(s.reservation.rates).unwrap();
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
        // Freed slots are reused: the map does not grow.
        let capacity = p.slots.capacity();
        for i in 0..5_000u32 {
            p.release(FlowId(i * 7 + 1), 10);
        }
        for i in 0..5_000u32 {
            p.reserve(FlowId(1_000_000 + i), res(1, 1, 1), Standing::Active, 10).unwrap();
        }
        // (`capacity` counts what fits before the next growth, which the
        // tombstones of removed slots use up; growing would double it.)
        assert_eq!(p.slots.len(), 10_000);
        assert!(p.slots.capacity() <= capacity, "{} > {capacity}", p.slots.capacity());
        p.audit();
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
                    1 => { p.release(flow, now); passed_bits.remove(&flow); }
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
