//! Packets from the kernel through NFQUEUE, with the pure-Rust `nfq` crate
//! (netlink, no libnetfilter_queue). An iptables rule hands packets over,
//! for example on a router's forwarding path:
//!
//! ```text
//! iptables -I FORWARD -j NFQUEUE --queue-num 0
//! ```
//!
//! (nftables' own `queue` statement is not available on every kernel; the
//! iptables rule works with both the legacy and the nft back end.) Without
//! `--queue-bypass` the kernel drops the rule's packets while no vinetd
//! listens: the router fails closed, so a firewall holds across a restart.
//!
//! `nfq` reads blocking or non-blocking and offers no descriptor to poll, so
//! [`NfQueue::recv`] reads non-blocking and naps at most 200 µs when the
//! queue is empty: under load it never naps, when idle it adds at most that
//! much latency.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// A received packet awaiting its verdict.
pub struct Msg(nfq::Message);

impl Msg {
    /// The IPv4 packet.
    pub fn payload(&self) -> &[u8] {
        self.0.get_payload()
    }
    /// Its length on the wire.
    pub fn original_len(&self) -> usize {
        self.0.get_original_len()
    }
}

/// A bound queue.
pub struct NfQueue {
    q: nfq::Queue,
    num: u16,
}

impl NfQueue {
    /// Open and bind queue `num`. `fail_open`: while the queue is full, the
    /// kernel accepts packets instead of dropping them.
    pub fn open(num: u16, fail_open: bool) -> std::io::Result<NfQueue> {
        let mut q = nfq::Queue::open()?;
        q.bind(num)?;
        q.set_queue_max_len(num, 4096)?;
        if fail_open {
            q.set_fail_open(num, true)?;
        }
        q.set_nonblocking(true);
        Ok(NfQueue { q, num })
    }

    /// The next packet, waiting at most `wait`.
    pub fn recv(&mut self, wait: Duration) -> std::io::Result<Option<Msg>> {
        let start = Instant::now();
        loop {
            match self.q.recv() {
                Ok(m) => return Ok(Some(Msg(m))),
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                    let left = wait.saturating_sub(start.elapsed());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    std::thread::sleep(left.min(Duration::from_micros(200)));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Accept or drop a packet.
    pub fn verdict(&mut self, msg: Msg, accept: bool) -> std::io::Result<()> {
        let mut m = msg.0;
        m.set_verdict(if accept { nfq::Verdict::Accept } else { nfq::Verdict::Drop });
        self.q.verdict(m)
    }
}

impl Drop for NfQueue {
    fn drop(&mut self) {
        let _ = self.q.unbind(self.num);
    }
}
