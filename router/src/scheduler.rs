//! The scheduler of the paper's section II-C, as a data structure.
//!
//! - **Cost classes.** A request's class is the bit length of the cost its
//!   bundle declares (complexity x lifetime): class k holds costs in
//!   `[2^(k-1), 2^k)`. The declaration is what the scheduler sees before the
//!   checker runs; the checker later refuses a bundle whose declaration is
//!   not what it derives, so lying gains nothing.
//! - **Queues.** One FIFO queue per class, ordered by the router's arrival
//!   stamp (a client cannot choose it).
//! - **Priority.** Among the heads of the queues, the one paying most per
//!   unit of declared cost is served first (ties: earlier arrival).
//! - **Price.** `price = ceil(declared cost / cost_units_per_credit)`, at
//!   least 1 credit. A request may pay more than the price, to be served
//!   earlier; it may not pay less.
//! - **Capacity.** [`Load`] admits a program only while its complexity fits
//!   in capacity minus load; an instance shared by several leases counts once.

use std::collections::{BTreeMap, VecDeque};

/// The cost class of a declared cost.
pub fn cost_class(cost: u64) -> u32 {
    64 - cost.leading_zeros()
}

pub use vinet_proto::protocol::price;

struct Entry<J> {
    arrival: u64,
    pay: u64,
    cost: u64,
    job: J,
}

/// Per-class FIFO queues served by payment per cost.
pub struct Queues<J> {
    classes: BTreeMap<u32, VecDeque<Entry<J>>>,
    len: usize,
    max: usize,
}

impl<J> std::fmt::Debug for Queues<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").field("len", &self.len).finish_non_exhaustive()
    }
}

impl<J> Queues<J> {
    /// Empty queues holding at most `max` requests in all.
    pub fn new(max: usize) -> Queues<J> {
        Queues { classes: BTreeMap::new(), len: 0, max }
    }

    /// Enqueue; gives the job back when the queues are full.
    pub fn push(&mut self, arrival: u64, pay: u64, cost: u64, job: J) -> Result<(), J> {
        if self.len >= self.max {
            return Err(job);
        }
        let q = self.classes.entry(cost_class(cost)).or_default();
        // Arrival stamps are increasing, so pushing at the back keeps each
        // queue ordered; insert in order anyway if a caller ever stamps late.
        let at = q.iter().rposition(|e| e.arrival <= arrival).map_or(0, |p| p + 1);
        q.insert(at, Entry { arrival, pay, cost, job });
        self.len += 1;
        Ok(())
    }

    /// The next request to serve: the head with the highest pay per cost.
    pub fn pop(&mut self) -> Option<J> {
        let mut best: Option<(u32, u64, u64, u64)> = None;
        for (&c, q) in &self.classes {
            let Some(h) = q.front() else { continue };
            let better = match best {
                None => true,
                Some((_, pay, cost, arrival)) => {
                    // h.pay / h.cost > pay / cost, exactly (cost 0 counts as 1).
                    let lhs = u128::from(h.pay) * u128::from(cost.max(1));
                    let rhs = u128::from(pay) * u128::from(h.cost.max(1));
                    lhs > rhs || (lhs == rhs && h.arrival < arrival)
                }
            };
            if better {
                best = Some((c, h.pay, h.cost, h.arrival));
            }
        }
        let (c, ..) = best?;
        let q = self.classes.get_mut(&c)?;
        let e = q.pop_front()?;
        if q.is_empty() {
            self.classes.remove(&c);
        }
        self.len -= 1;
        Some(e.job)
    }

    /// Requests waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Requests waiting per class.
    pub fn lengths(&self) -> Vec<(u32, u64)> {
        self.classes.iter().map(|(&c, q)| (c, q.len() as u64)).collect()
    }
}

/// The router's capacity and load (cost units per window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Capacity.
    pub capacity: u64,
    /// Sum of the complexities of the distinct running instances.
    pub load: u64,
}

impl Load {
    /// Whether a new instance of `complexity` fits.
    pub fn fits(&self, complexity: u64) -> bool {
        complexity <= self.capacity.saturating_sub(self.load)
    }
    /// Add an instance (the caller checked [`Load::fits`]).
    pub fn add(&mut self, complexity: u64) {
        debug_assert!(self.fits(complexity));
        self.load += complexity;
    }
    /// Release an instance.
    pub fn release(&mut self, complexity: u64) {
        debug_assert!(complexity <= self.load);
        self.load = self.load.saturating_sub(complexity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_prices() {
        assert_eq!(cost_class(0), 0);
        assert_eq!(cost_class(1), 1);
        assert_eq!((cost_class(1023), cost_class(1024)), (10, 11));
        assert_eq!(price(176_947_200, 1_000_000), 177);
        assert_eq!(price(1, 1_000_000), 1);
        assert_eq!(price(0, 1_000_000), 1);
        assert_eq!(price(2_000_000, 1_000_000), 2);
    }

    #[test]
    fn fifo_within_a_class_priority_across() {
        let mut q = Queues::new(10);
        // Two cheap requests (class of 1000) paying 1 per 1000; one dear
        // request paying 10 per 1_000_000 (less per cost); one cheap paying 5.
        q.push(1, 1, 1000, "a").unwrap();
        q.push(2, 10, 1_000_000, "dear").unwrap();
        q.push(3, 1, 1000, "b").unwrap();
        q.push(4, 5, 1001, "rich").unwrap(); // same class as a, b: waits behind them
        assert_eq!(q.lengths(), vec![(10, 3), (20, 1)]);
        assert_eq!(q.pop(), Some("a"));
        assert_eq!(q.pop(), Some("b"));
        assert_eq!(q.pop(), Some("rich"));
        assert_eq!(q.pop(), Some("dear"));
        assert_eq!(q.pop(), None);
        // Across classes the head paying more per cost goes first.
        q.push(5, 1, 1000, "cheap").unwrap();
        q.push(6, 2000, 1_000_000, "generous").unwrap();
        assert_eq!(q.pop(), Some("generous"));
        // Equal ratios: earlier arrival.
        q.push(7, 1000, 1_000_000, "later").unwrap();
        assert_eq!(q.pop(), Some("cheap"));
        assert_eq!(q.pop(), Some("later"));
        assert!(q.is_empty());
    }

    #[test]
    fn bounded_and_late_stamps() {
        let mut q = Queues::new(2);
        q.push(5, 1, 8, 5).unwrap();
        q.push(3, 1, 8, 3).unwrap();
        assert_eq!(q.push(9, 1, 8, 9), Err(9));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), Some(5));
    }

    #[test]
    fn load() {
        let mut l = Load { capacity: 3000, load: 0 };
        assert!(l.fits(3000));
        l.add(1024);
        l.add(1024);
        assert!(!l.fits(1024));
        assert!(l.fits(952));
        l.release(1024);
        assert!(l.fits(1024));
        assert_eq!(l.load, 1024);
    }
}
