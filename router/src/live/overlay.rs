//! The ON lane (`[overlay]`): the thread that reads the queue of forwarded
//! GRE packets, IPv4 and IPv6 (`hooks.rs` queues them there), and gives
//! each its verdict by its ON's reservation (`crate::overlay::DataPlane`):
//! within the contract it passes, above it it is dropped, whether or not the
//! router is busy (Birman's strict service); a packet of no ON in force is
//! served by the unreserved share. ON packets are GRE in IPv4
//! (`vinet_overlay::gre`): GRE over IPv6 is classified as of no ON (counted
//! unclassified) and served by the unreserved share, never by a client's
//! program.
//!
//! Per batch: one read (up to `nfqueue::BATCH` packets), one lock of the
//! data plane for all of them (`Partition::serve_batch`, which overlaps the
//! batch's lookups), then the drops one by one and a single verdict that
//! accepts the rest. With `[overlay] mark`, what a reservation passed is
//! accepted with that mark (the rest of the passed, served by the
//! unreserved share, one by one without it first), so that an egress qdisc
//! can give the ONs priority. Per packet: a GRE decode of fixed size, a
//! hash lookup and two token buckets; nothing is allocated (packets and
//! verdicts are kept in fixed arrays).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use vinet_overlay::partition::{Packet, Served, Verdict};

use super::nfqueue::{self, NfQueue};
use crate::overlay::{mono_ns, DataPlane};

/// What the packet path asks of the ON lane.
pub(super) enum Command {
    /// Bind the queue: packets start to flow.
    Bind { queue_full_accept: bool, ack: Sender<Result<(), String>> },
    /// Stop the thread.
    Stop,
}

/// The lane's own counters (the per-ON ones are the data plane's).
#[derive(Debug, Default)]
pub struct LaneStats {
    /// Packets received from the queue.
    pub received: AtomicU64,
    /// Verdicts the kernel refused.
    pub verdict_errors: AtomicU64,
    /// Netlink messages that were not whole packets.
    pub malformed: AtomicU64,
}

/// The running ON lane.
pub(super) struct OverlayLane {
    tx: Sender<Command>,
    wake: std::os::unix::net::UnixDatagram,
    pub(super) stats: Arc<LaneStats>,
    thread: Option<JoinHandle<()>>,
}

impl OverlayLane {
    /// Opens queue `num` (not bound) and starts the thread.
    pub(super) fn start(num: u16, data: Arc<DataPlane>) -> std::io::Result<OverlayLane> {
        let q = NfQueue::open(num)?;
        let (tx, rx) = mpsc::channel();
        let (wake, wake_rx) = std::os::unix::net::UnixDatagram::pair()?;
        wake_rx.set_nonblocking(true)?;
        wake.set_nonblocking(true)?;
        let stats = Arc::new(LaneStats::default());
        let st = Arc::clone(&stats);
        let thread = std::thread::Builder::new().name("vinet-overlay".into()).spawn(move || run(rx, q, wake_rx, &data, &st))?;
        Ok(OverlayLane { tx, wake, stats, thread: Some(thread) })
    }

    pub(super) fn send(&self, c: Command) -> bool {
        let ok = self.tx.send(c).is_ok();
        let _ = self.wake.send(&[1]);
        ok
    }
}

impl Drop for OverlayLane {
    fn drop(&mut self) {
        self.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(rx: Receiver<Command>, mut q: NfQueue, wake: std::os::unix::net::UnixDatagram, data: &DataPlane, stats: &LaneStats) {
    let mut batch = Vec::with_capacity(nfqueue::BATCH);
    let mut packets = [Packet::default(); nfqueue::BATCH];
    let mut verdicts = [Served::default(); nfqueue::BATCH];
    let mark = data.mark();
    let mut drain = [0u8; 64];
    loop {
        loop {
            match rx.try_recv() {
                Ok(Command::Bind { queue_full_accept, ack }) => {
                    let _ = ack.send(q.bind(queue_full_accept).map_err(|e| format!("cannot bind NFQUEUE {}: {e}", q.num())));
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        // The timeout only bounds how late a command is seen if a wake-up
        // were lost; packets and commands both wake the poll.
        match q.wait(wake.as_raw_fd(), Some(Duration::from_secs(1))) {
            Ok(true) => while wake.recv(&mut drain).is_ok() {},
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "overlay: waiting on NFQUEUE failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Read until the queue is empty: a full batch means more is waiting.
        loop {
            if let Err(e) = q.recv_batch(&mut batch) {
                tracing::error!(error = %e, "overlay: NFQUEUE receive failed");
                std::thread::sleep(Duration::from_millis(10));
                break;
            }
            stats.malformed.store(q.malformed, Ordering::Relaxed);
            if batch.is_empty() {
                break;
            }
            stats.received.fetch_add(batch.len() as u64, Ordering::Relaxed);
            let n = batch.len();
            for (p, m) in packets.iter_mut().zip(batch.iter()) {
                *p = data.classify(q.payload(m), u64::from(m.original_len));
            }
            data.lock().serve_batch(&packets[..n], mono_ns(), &mut verdicts);
            // Drops (and, with a mark, the unmarked passes) one by one, then
            // one verdict for the rest: every packet of this queue up to the
            // batch's last id has had its verdict.
            let mut last = None;
            for (m, v) in batch.iter().zip(verdicts.iter()) {
                let alone = match v.verdict {
                    Verdict::Drop => Some(false),
                    Verdict::Pass if mark.is_some() && !v.reserved => Some(true),
                    Verdict::Pass => None,
                };
                match alone {
                    Some(accept) => {
                        if q.verdict(m.id, accept).is_err() {
                            stats.verdict_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => last = Some(m.id),
                }
            }
            if let Some(id) = last {
                if q.accept_through(id, mark).is_err() {
                    stats.verdict_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            if batch.len() < nfqueue::BATCH {
                break;
            }
        }
    }
}
