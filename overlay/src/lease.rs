//! Reservations as soft state, after RSVP (RFC 2205).
//!
//! A reservation on a router is a lease: the ON's manager refreshes it every
//! R, and the router releases it when it has not been refreshed within the
//! lifetime L = (K + 0.5) x 1.5 x R, K = 3 (RFC 2205 section 3.7: K
//! refreshes may be lost in a row, R may be randomized up to 1.5 R, and half
//! a period more for good measure). L is 5.25 R.
//!
//! **R.** The table takes R as a parameter ([`LeaseConfig::new`]). The
//! default, [`LeaseConfig::RSVP_REFRESH_NS`], is RSVP's 30 s (L = 157.5 s):
//! a router keeps a reservation for two and a half minutes after its
//! manager is gone, and a manager sends one refresh per ON and router every
//! 30 s, which for 10,000 ONs is 333 messages a second per router at most.
//! The emulator uses R = 1 s ([`LeaseConfig::EMULATOR_REFRESH_NS`], L =
//! 5.25 s), so that within a run of a minute a manager's crash visibly frees
//! its routers and the reservations a restarted manager re-establishes are
//! seen to hold.
//!
//! Two-phase commit ([`crate::twopc`]) uses the same table for its prepared
//! entries: a *tentative* lease is set aside by admission but not served,
//! cannot be refreshed, and lapses at the prepare's deadline unless
//! [`LeaseTable::confirm`] puts it in force with a full lifetime.
//!
//! Expiry is on the caller's clock: a lease whose expiry time has come is
//! dead, whether or not [`LeaseTable::sweep`] has removed it yet (it cannot
//! be refreshed). For leases to survive a router restart ([`crate::store`])
//! that clock must survive it too, such as wall-clock nanoseconds.

use crate::partition::{AdmissionError, Counters, Partition, PartitionConfig, Reservation, Standing, Verdict};
use crate::FlowId;
use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

/// The refresh period R and the number K of refreshes that may be missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    refresh_ns: u64,
    lifetime_ns: u64,
}

/// Why a lease configuration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InvalidLeaseConfig {
    /// R is zero.
    #[error("lease: zero refresh period")]
    ZeroRefresh,
    /// L does not fit in 64 bits of nanoseconds.
    #[error("lease: lifetime of refresh period {refresh_ns} ns overflows")]
    Overflow {
        /// The refresh period asked for.
        refresh_ns: u64,
    },
}

impl LeaseConfig {
    /// RSVP's default refresh period, 30 s.
    pub const RSVP_REFRESH_NS: u64 = 30_000_000_000;
    /// The emulator's refresh period, 1 s.
    pub const EMULATOR_REFRESH_NS: u64 = 1_000_000_000;
    /// RFC 2205's K.
    pub const K: u64 = 3;

    /// Refresh every `refresh_ns`, with K = 3.
    pub fn new(refresh_ns: u64) -> Result<LeaseConfig, InvalidLeaseConfig> {
        if refresh_ns == 0 {
            return Err(InvalidLeaseConfig::ZeroRefresh);
        }
        // (K + 0.5) * 1.5 * R = (2K + 1) * 3 * R / 4, exact in integers up to the last division.
        let lifetime = u128::from(refresh_ns) * u128::from(2 * Self::K + 1) * 3 / 4;
        let lifetime_ns = u64::try_from(lifetime).map_err(|_| InvalidLeaseConfig::Overflow { refresh_ns })?;
        Ok(LeaseConfig { refresh_ns, lifetime_ns })
    }

    /// RSVP's default, R = 30 s.
    pub fn rsvp() -> LeaseConfig {
        LeaseConfig::new(Self::RSVP_REFRESH_NS).expect("30 s is a valid period")
    }

    /// R.
    pub fn refresh_ns(&self) -> u64 {
        self.refresh_ns
    }

    /// L = (K + 0.5) x 1.5 x R.
    pub fn lifetime_ns(&self) -> u64 {
        self.lifetime_ns
    }
}

/// A lease as the table holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The ON.
    pub flow: FlowId,
    /// What it reserves.
    pub reservation: Reservation,
    /// Tentative (prepared) or active.
    pub standing: Standing,
    /// When it lapses unless refreshed (or, tentative, confirmed).
    pub expires_ns: u64,
}

/// Why a refresh or confirmation did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LeaseError {
    /// No lease for the flow.
    #[error("no lease for flow {0:?}")]
    Unknown(FlowId),
    /// The lease's time has come: it is dead (the next sweep removes it).
    #[error("lease for flow {0:?} has expired")]
    Expired(FlowId),
    /// The lease is not of the standing the operation needs.
    #[error("lease for flow {0:?} is {1:?}")]
    Standing(FlowId, Standing),
}

/// The leases of one router, over its partition.
#[derive(Clone, Debug)]
pub struct LeaseTable {
    config: LeaseConfig,
    partition: Partition,
    expiry: HashMap<FlowId, u64>,
    by_time: BTreeSet<(u64, FlowId)>,
}

impl LeaseTable {
    /// An empty table over a fresh partition.
    pub fn new(config: LeaseConfig, partition: PartitionConfig, now_ns: u64) -> LeaseTable {
        LeaseTable { config, partition: Partition::new(partition, now_ns), expiry: HashMap::new(), by_time: BTreeSet::new() }
    }

    /// The lease configuration.
    pub fn config(&self) -> LeaseConfig {
        self.config
    }

    /// Grants an active lease of a full lifetime; returns its expiry.
    pub fn grant(&mut self, flow: FlowId, reservation: Reservation, now_ns: u64) -> Result<u64, AdmissionError> {
        let expires = now_ns.saturating_add(self.config.lifetime_ns);
        self.insert(flow, reservation, Standing::Active, expires, now_ns)?;
        Ok(expires)
    }

    /// Sets `reservation` aside tentatively until `until_ns`.
    pub fn hold(&mut self, flow: FlowId, reservation: Reservation, until_ns: u64, now_ns: u64) -> Result<(), AdmissionError> {
        self.insert(flow, reservation, Standing::Tentative, until_ns, now_ns)
    }

    /// Puts back a lease read from the store, with its expiry time (one
    /// already past is removed by the next sweep).
    pub fn restore(&mut self, lease: Lease, now_ns: u64) -> Result<(), AdmissionError> {
        self.insert(lease.flow, lease.reservation, lease.standing, lease.expires_ns, now_ns)
    }

    fn insert(&mut self, flow: FlowId, r: Reservation, standing: Standing, expires: u64, now_ns: u64) -> Result<(), AdmissionError> {
        self.partition.reserve(flow, r, standing, now_ns)?;
        self.expiry.insert(flow, expires);
        self.by_time.insert((expires, flow));
        Ok(())
    }

    /// Puts a tentative lease in force for a full lifetime; returns its expiry.
    pub fn confirm(&mut self, flow: FlowId, now_ns: u64) -> Result<u64, LeaseError> {
        self.live(flow, Standing::Tentative, now_ns)?;
        let activated = self.partition.activate(flow, now_ns);
        debug_assert!(activated);
        Ok(self.reschedule(flow, now_ns))
    }

    /// Refreshes an active lease for a full lifetime; returns its new expiry.
    pub fn refresh(&mut self, flow: FlowId, now_ns: u64) -> Result<u64, LeaseError> {
        self.live(flow, Standing::Active, now_ns)?;
        Ok(self.reschedule(flow, now_ns))
    }

    /// Whether `flow` has a live lease of `standing` at `now_ns`.
    fn live(&self, flow: FlowId, standing: Standing, now_ns: u64) -> Result<(), LeaseError> {
        let expires = *self.expiry.get(&flow).ok_or(LeaseError::Unknown(flow))?;
        if now_ns >= expires {
            return Err(LeaseError::Expired(flow));
        }
        let (_, found) = self.partition.reservation(flow).expect("every lease has a reservation");
        if found != standing {
            return Err(LeaseError::Standing(flow, found));
        }
        Ok(())
    }

    fn reschedule(&mut self, flow: FlowId, now_ns: u64) -> u64 {
        let expires = now_ns.saturating_add(self.config.lifetime_ns);
        let old = self.expiry.insert(flow, expires).expect("checked live");
        self.by_time.remove(&(old, flow));
        self.by_time.insert((expires, flow));
        expires
    }

    /// Releases `flow`'s lease now, whatever its standing.
    pub fn release(&mut self, flow: FlowId, now_ns: u64) -> Option<Lease> {
        let lease = self.get(flow)?;
        self.expiry.remove(&flow);
        self.by_time.remove(&(lease.expires_ns, flow));
        self.partition.release(flow, now_ns);
        Some(lease)
    }

    /// Releases every lease whose time has come, soonest first, and returns them.
    pub fn sweep(&mut self, now_ns: u64) -> Vec<Lease> {
        let mut released = Vec::new();
        while let Some(&(expires, flow)) = self.by_time.first() {
            if expires > now_ns {
                break;
            }
            released.push(self.release(flow, now_ns).expect("the schedule lists leases"));
        }
        released
    }

    /// `flow`'s lease.
    pub fn get(&self, flow: FlowId) -> Option<Lease> {
        let expires_ns = *self.expiry.get(&flow)?;
        let (reservation, standing) = self.partition.reservation(flow)?;
        Some(Lease { flow, reservation, standing, expires_ns })
    }

    /// Every lease, soonest to expire first.
    pub fn iter(&self) -> impl Iterator<Item = Lease> + '_ {
        self.by_time.iter().map(|&(_, f)| self.get(f).expect("the schedule lists leases"))
    }

    /// Serves one packet ([`Partition::serve`]).
    pub fn serve(&mut self, flow: Option<FlowId>, bytes: u64, now_ns: u64) -> Verdict {
        self.partition.serve(flow, bytes, now_ns)
    }

    /// `flow`'s counters.
    pub fn counters(&self, flow: FlowId) -> Option<Counters> {
        self.partition.counters(flow)
    }

    /// The partition, to read.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Whether `reservation` for `flow` would be admitted ([`Partition::check`]).
    pub fn check(&self, flow: FlowId, reservation: &Reservation) -> Result<(), AdmissionError> {
        self.partition.check(flow, reservation)
    }

    #[cfg(test)]
    pub(crate) fn audit(&self) {
        self.partition.audit();
        assert_eq!(self.expiry.len(), self.partition.len());
        assert_eq!(self.by_time.len(), self.partition.len());
        for (&f, &e) in &self.expiry {
            assert!(self.by_time.contains(&(e, f)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::Resources;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn pconfig() -> PartitionConfig {
        PartitionConfig {
            capacity: Resources { bps: 1_000_000, pps: 1_000, units: 100 },
            unreserved_burst_bytes: 1_500,
            unreserved_burst_packets: 10,
        }
    }

    fn res(bps: u64) -> Reservation {
        Reservation::new(Resources { bps, pps: 10, units: 1 }, 1_500, 10).unwrap()
    }

    #[test]
    fn lifetime_is_rfc2205s() {
        assert_eq!(LeaseConfig::rsvp().lifetime_ns(), 157_500_000_000);
        assert_eq!(LeaseConfig::new(LeaseConfig::EMULATOR_REFRESH_NS).unwrap().lifetime_ns(), 5_250_000_000);
        assert_eq!(LeaseConfig::new(4).unwrap().lifetime_ns(), 21);
        assert_eq!(LeaseConfig::new(0), Err(InvalidLeaseConfig::ZeroRefresh));
        assert_eq!(LeaseConfig::new(u64::MAX), Err(InvalidLeaseConfig::Overflow { refresh_ns: u64::MAX }));
    }

    #[test]
    fn refreshed_leases_live_unrefreshed_ones_lapse() {
        let cfg = LeaseConfig::new(SEC).unwrap();
        let mut t = LeaseTable::new(cfg, pconfig(), 0);
        let (a, b) = (FlowId(1), FlowId(2));
        assert_eq!(t.grant(a, res(100_000), 0), Ok(5_250_000_000));
        t.grant(b, res(100_000), 0).unwrap();
        // a is refreshed every R, b never.
        for i in 1..=10 {
            t.refresh(a, i * SEC).unwrap();
            let gone = t.sweep(i * SEC);
            if i == 5 {
                assert!(gone.is_empty());
            }
            if i == 6 {
                assert_eq!(gone.iter().map(|l| l.flow).collect::<Vec<_>>(), vec![b]);
            }
        }
        assert!(t.get(a).is_some() && t.get(b).is_none());
        assert_eq!(t.partition().reserved().bps, 100_000);
        // Released capacity is free again.
        t.grant(b, res(900_000), 10 * SEC).unwrap();
        t.audit();
    }

    #[test]
    fn an_expired_lease_cannot_be_refreshed_before_the_sweep() {
        let mut t = LeaseTable::new(LeaseConfig::new(4).unwrap(), pconfig(), 0);
        let f = FlowId(3);
        t.grant(f, res(1), 0).unwrap();
        assert_eq!(t.refresh(f, 20), Ok(41));
        assert_eq!(t.refresh(f, 41), Err(LeaseError::Expired(f)));
        assert_eq!(t.refresh(FlowId(4), 0), Err(LeaseError::Unknown(FlowId(4))));
        assert_eq!(t.sweep(40), vec![]);
        assert_eq!(t.sweep(41).len(), 1);
        t.audit();
    }

    #[test]
    fn tentative_leases_confirm_or_lapse() {
        let mut t = LeaseTable::new(LeaseConfig::new(SEC).unwrap(), pconfig(), 0);
        let (a, b) = (FlowId(1), FlowId(2));
        t.hold(a, res(500_000), 2 * SEC, 0).unwrap();
        t.hold(b, res(500_000), 2 * SEC, 0).unwrap();
        assert!(t.check(FlowId(3), &res(1)).is_err(), "held capacity is set aside");
        assert_eq!(t.refresh(a, SEC), Err(LeaseError::Standing(a, Standing::Tentative)));
        assert_eq!(t.confirm(a, SEC), Ok(SEC + 5_250_000_000));
        assert_eq!(t.confirm(a, SEC), Err(LeaseError::Standing(a, Standing::Active)));
        assert_eq!(t.confirm(b, 2 * SEC), Err(LeaseError::Expired(b)));
        let gone = t.sweep(2 * SEC);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].standing, Standing::Tentative);
        assert_eq!(t.release(a, 3 * SEC).map(|l| l.flow), Some(a));
        assert!(t.partition().is_empty());
        t.audit();
    }

    proptest! {
        /// Whatever the order of grants, refreshes, releases and sweeps, a
        /// lease is alive exactly when its last grant or refresh is less than
        /// L old, and the table matches its partition.
        #[test]
        fn leases_match_a_model(ops in proptest::collection::vec((0u8..4, 0u32..8, 0u64..3), 1..200)) {
            let cfg = LeaseConfig::new(4).unwrap(); // L = 21
            let mut t = LeaseTable::new(cfg, pconfig(), 0);
            let mut model: HashMap<FlowId, u64> = HashMap::new();
            let mut now = 0;
            for (op, flow, dt) in ops {
                now += dt;
                let flow = FlowId(flow);
                match op {
                    0 => {
                        let ok = t.grant(flow, res(1_000), now).is_ok();
                        prop_assert_eq!(ok, !model.contains_key(&flow));
                        if ok { model.insert(flow, now + 21); }
                    }
                    1 => {
                        let r = t.refresh(flow, now);
                        match model.get_mut(&flow) {
                            Some(e) if *e > now => { prop_assert_eq!(r, Ok(now + 21)); *e = now + 21; }
                            Some(_) => prop_assert_eq!(r, Err(LeaseError::Expired(flow))),
                            None => prop_assert_eq!(r, Err(LeaseError::Unknown(flow))),
                        }
                    }
                    2 => { prop_assert_eq!(t.release(flow, now).is_some(), model.remove(&flow).is_some()); }
                    _ => {
                        let mut gone: Vec<_> = t.sweep(now).into_iter().map(|l| l.flow).collect();
                        let mut expected: Vec<_> = model.iter().filter(|(_, e)| **e <= now).map(|(f, _)| *f).collect();
                        gone.sort();
                        expected.sort();
                        for f in &expected { model.remove(f); }
                        prop_assert_eq!(gone, expected);
                    }
                }
                t.audit();
            }
        }
    }
}
