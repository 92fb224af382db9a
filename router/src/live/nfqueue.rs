//! Packets from the kernel through NFQUEUE, spoken directly over netlink
//! (`NETLINK_NETFILTER`, the `nfnetlink_queue` subsystem), the protocol
//! libnetfilter_queue speaks:
//!
//! - **Batched reads.** One `recvmmsg` takes up to [`BATCH`] queued packets
//!   in one system call.
//! - **Batched verdicts.** A window's drops are sent one by one, then one
//!   `NFQNL_MSG_VERDICT_BATCH` accepts every packet of the window left
//!   (every still-queued packet whose id is at most the window's last).
//! - **Asleep when idle.** [`NfQueue::wait`] blocks in `poll` on the socket
//!   and on a wake-up descriptor that commands ring: no timer, no nap loop.
//!
//! - **Both families.** A queue takes what iptables' and ip6tables' rules
//!   send it: a queue number is one queue whatever the family (the kernel
//!   has ignored the family of a bind since Linux 3.8), so one lane reads
//!   its clients' IPv4 and IPv6 packets from one socket. Each payload is
//!   the packet from its IP header on, IPv4 or IPv6 by its version nibble,
//!   after the defragmenter (a whole datagram): the copy is at most the
//!   kernel's limit, 65,531 bytes, and a longer datagram (IPv6's payload
//!   may be 65,535 bytes behind its 40-byte header) is seen cut, with its
//!   length on the wire in [`Queued::original_len`]. A verdict never
//!   carries bytes: the kernel forwards the packet it holds, not the copy.
//!
//! The kernel hook that queues packets is vinetd's own (`hooks.rs`). A
//! queue nobody has bound yet behaves as the hook's `--queue-bypass` says:
//! without it the kernel drops what it would queue (fail-closed), with it
//! the packets pass. [`NfQueue::open`] only opens the socket;
//! [`NfQueue::bind`] starts the flow, once every stored lease is installed.

// The one module of the router that makes system calls itself (netlink,
// recvmmsg, poll): each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Packets one read takes at most.
pub const BATCH: usize = 64;
/// Bytes of a packet asked for: every byte of it (the kernel copies at most
/// 65,531, its NFQNL_MAX_COPY_RANGE: all of any IPv4 datagram's but its last
/// 4 bytes, and of the longest IPv6 datagrams' all but 44).
const COPY_RANGE: u32 = 0xffff;
/// A receive buffer: one netlink message with a whole datagram and its attributes.
const BUF: usize = COPY_RANGE as usize + 1024;
/// Packets the kernel holds for the queue before the queue is full.
const QUEUE_MAXLEN: u32 = 8192;
/// The socket's receive buffer (the kernel's queue can outgrow a default one).
const RCVBUF: libc::c_int = 16 << 20;

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_PAYLOAD: u16 = 10;
const NFQA_CAP_LEN: u16 = 13;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_CFG_CMD_UNBIND: u8 = 2;
const NFQNL_COPY_PACKET: u8 = 2;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_REPEAT: u32 = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;

/// A packet taken from the queue: its id (for the verdict), its length on
/// the wire, and where its bytes lie in the batch buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queued {
    /// The kernel's id of the packet in its queue.
    pub id: u32,
    /// Its length before the copy range cut it (`NFQA_CAP_LEN`, else the copy's).
    pub original_len: u32,
    slot: u16,
    start: u32,
    len: u32,
}

/// One NFQUEUE queue's netlink socket.
pub struct NfQueue {
    fd: OwnedFd,
    num: u16,
    bound: bool,
    bufs: Vec<Box<[u8]>>,
    seq: u32,
    /// Netlink messages that were not packets, or did not parse.
    pub malformed: u64,
}

impl std::fmt::Debug for NfQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfQueue").field("num", &self.num).field("bound", &self.bound).finish_non_exhaustive()
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Append a netlink attribute (4-byte aligned).
fn attr(msg: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(data);
    msg.resize(msg.len().next_multiple_of(4), 0);
}

/// The attributes of a netlink message body, as (type, value) pairs.
fn attrs(mut body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if body.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([body[0], body[1]]) as usize;
        let kind = u16::from_ne_bytes([body[2], body[3]]) & 0x3fff;
        if len < 4 || len > body.len() {
            return None;
        }
        let value = &body[4..len];
        body = &body[len.next_multiple_of(4).min(body.len())..];
        Some((kind, value))
    })
}

impl NfQueue {
    /// Open the socket for queue `num` (needs CAP_NET_ADMIN to bind). Nothing
    /// is queued to it before [`NfQueue::bind`].
    pub fn open(num: u16) -> io::Result<NfQueue> {
        // SAFETY: plain socket(2); the descriptor is owned at once.
        let fd = cvt(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_NETFILTER) })?;
        // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_nl is valid (pid 0: the kernel assigns one).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `addr` is a sockaddr_nl of the length given.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t) })?;
        let q =
            NfQueue { fd, num, bound: false, bufs: (0..BATCH).map(|_| vec![0u8; BUF].into_boxed_slice()).collect(), seq: 0, malformed: 0 };
        // A larger buffer than the default (SO_RCVBUFFORCE needs CAP_NET_ADMIN;
        // without it SO_RCVBUF takes what the system allows).
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            if q.setsockopt(libc::SOL_SOCKET, opt, RCVBUF).is_ok() {
                break;
            }
        }
        // Losing packets to a full socket is counted by the kernel
        // (/proc/net/netfilter/nfnetlink_queue); no ENOBUFS errors to us.
        q.setsockopt(libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1)?;
        Ok(q)
    }

    fn setsockopt(&self, level: libc::c_int, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
        // SAFETY: `value` is a c_int of the length given.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&raw const value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// The queue number.
    pub fn num(&self) -> u16 {
        self.num
    }

    /// Bind the queue and configure it: whole packets copied, a queue of
    /// [`QUEUE_MAXLEN`] packets; `queue_full_accept`: while it is full the
    /// kernel lets packets pass instead of dropping them.
    pub fn bind(&mut self, queue_full_accept: bool) -> io::Result<()> {
        let mut params = COPY_RANGE.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        let flags = if queue_full_accept { NFQA_CFG_F_FAIL_OPEN } else { 0 };
        // One message: the kernel binds, then applies the rest, before any
        // packet is copied with another configuration.
        self.config(&[
            (NFQA_CFG_CMD, &[NFQNL_CFG_CMD_BIND, 0, 0, 0]),
            (NFQA_CFG_PARAMS, &params),
            (NFQA_CFG_QUEUE_MAXLEN, &QUEUE_MAXLEN.to_be_bytes()),
            (NFQA_CFG_FLAGS, &flags.to_be_bytes()),
            (NFQA_CFG_MASK, &NFQA_CFG_F_FAIL_OPEN.to_be_bytes()),
        ])?;
        self.bound = true;
        Ok(())
    }

    fn header(&mut self, msg_type: u16, flags: u16) -> Vec<u8> {
        self.seq = self.seq.wrapping_add(1);
        let mut m = Vec::with_capacity(64);
        m.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `send`
        m.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg_type).to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family AF_UNSPEC, version 0, the queue number (big-endian).
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&self.num.to_be_bytes());
        m
    }

    fn send(&self, mut m: Vec<u8>) -> io::Result<()> {
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        // SAFETY: `m` is a buffer of the length given; the destination is
        // the kernel (an all-zero sockaddr_nl with its family).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Send a config message and wait for its acknowledgement. A packet
    /// the kernel queues meanwhile (the queue flows from the moment it is
    /// bound) is handed back with `NF_REPEAT`: the hook runs again and
    /// queues it anew, so nothing is lost or let through unseen.
    fn config(&mut self, parts: &[(u16, &[u8])]) -> io::Result<()> {
        let mut m = self.header(NFQNL_MSG_CONFIG, NLM_F_ACK);
        for (kind, data) in parts {
            attr(&mut m, *kind, data);
        }
        let seq = self.seq;
        self.send(m)?;
        for _ in 0..4 * BATCH {
            let buf = &mut self.bufs[0];
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let msg = &buf[..n as usize];
            if msg.len() >= NLMSG_HDRLEN + 4 {
                let kind = u16::from_ne_bytes([msg[4], msg[5]]);
                let got_seq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
                if kind == NLMSG_ERROR && got_seq == seq {
                    let errno = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
                    return if errno == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(-errno)) };
                }
            }
            if let Some((id, ..)) = parse_packet(msg) {
                self.verdict_msg(NFQNL_MSG_VERDICT, id, NF_REPEAT, None)?;
            }
        }
        Err(io::Error::other("the kernel did not acknowledge the NFQUEUE configuration"))
    }

    /// Wait until the queue has packets or `wake` is readable, at most
    /// `timeout` (None: without limit). Returns whether `wake` rang.
    pub fn wait(&self, wake: RawFd, timeout: Option<Duration>) -> io::Result<bool> {
        let mut fds = [
            libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 },
        ];
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        // SAFETY: `fds` is an array of two pollfd.
        match unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) } {
            r if r < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            _ => Ok(fds[1].revents & libc::POLLIN != 0),
        }
    }

    /// Take what is queued, up to [`BATCH`] packets, without waiting; `out`
    /// is cleared first. Each packet's bytes are [`NfQueue::payload`].
    pub fn recv_batch(&mut self, out: &mut Vec<Queued>) -> io::Result<()> {
        out.clear();
        // SAFETY: zeroed iovec/mmsghdr are valid; each points at one of our
        // buffers, which outlive the call.
        let mut iov: Vec<libc::iovec> =
            self.bufs.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: `msgs` holds BATCH valid headers.
        let n = unsafe {
            libc::recvmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e),
            };
        }
        for (slot, m) in msgs.iter().take(n as usize).enumerate() {
            let len = (m.msg_len as usize).min(BUF);
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                self.malformed += 1;
                continue;
            }
            match parse_packet(&self.bufs[slot][..len]) {
                Some((id, start, plen, cap)) => out.push(Queued {
                    id,
                    original_len: cap.unwrap_or(plen as u32),
                    slot: slot as u16,
                    start: start as u32,
                    len: plen as u32,
                }),
                None => self.malformed += 1,
            }
        }
        Ok(())
    }

    /// The bytes of a packet of the last batch (its IP header first).
    pub fn payload(&self, q: &Queued) -> &[u8] {
        self.bufs.get(q.slot as usize).and_then(|b| b.get(q.start as usize..(q.start + q.len) as usize)).unwrap_or(&[])
    }

    fn verdict_msg(&mut self, kind: u16, id: u32, verdict: u32, mark: Option<u32>) -> io::Result<()> {
        let m = self.verdict_bytes(kind, id, verdict, mark);
        self.send(m)
    }

    /// A verdict message.
    fn verdict_bytes(&mut self, kind: u16, id: u32, verdict: u32, mark: Option<u32>) -> Vec<u8> {
        let mut m = self.header(kind, 0);
        m.extend_from_slice(&verdict_attrs(id, verdict, mark));
        m
    }

    /// The verdict on one packet.
    pub fn verdict(&mut self, id: u32, accept: bool) -> io::Result<()> {
        self.verdict_msg(NFQNL_MSG_VERDICT, id, if accept { NF_ACCEPT } else { NF_DROP }, None)
    }

    /// Accept every packet still waiting for its verdict whose id is at most
    /// `id`, setting its netfilter mark to `mark` if one is given.
    pub fn accept_through(&mut self, id: u32, mark: Option<u32>) -> io::Result<()> {
        self.verdict_msg(NFQNL_MSG_VERDICT_BATCH, id, NF_ACCEPT, mark)
    }
}

/// A verdict's attributes: the verdict header (verdict, packet id), then
/// the mark if one is set (the kernel sets the packet's mark to it).
fn verdict_attrs(id: u32, verdict: u32, mark: Option<u32>) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    let mut v = verdict.to_be_bytes().to_vec();
    v.extend_from_slice(&id.to_be_bytes());
    attr(&mut m, NFQA_VERDICT_HDR, &v);
    if let Some(mark) = mark {
        attr(&mut m, NFQA_MARK, &mark.to_be_bytes());
    }
    m
}

/// A packet message: (packet id, payload offset, payload length, original length).
fn parse_packet(msg: &[u8]) -> Option<(u32, usize, usize, Option<u32>)> {
    if msg.len() < NLMSG_HDRLEN + NFGEN_HDRLEN {
        return None;
    }
    let len = u32::from_ne_bytes(msg[..4].try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET || len > msg.len() || len < NLMSG_HDRLEN + NFGEN_HDRLEN {
        return None;
    }
    let body_at = NLMSG_HDRLEN + NFGEN_HDRLEN;
    let (mut id, mut payload, mut cap) = (None, None, None);
    for (k, v) in attrs(&msg[body_at..len]) {
        match k {
            NFQA_PACKET_HDR if v.len() >= 4 => id = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            NFQA_PAYLOAD => payload = Some((v.as_ptr() as usize - msg.as_ptr() as usize, v.len())),
            NFQA_CAP_LEN if v.len() >= 4 => cap = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
            _ => {}
        }
    }
    let (start, plen) = payload.unwrap_or((len, 0));
    Some((id?, start, plen, cap))
}

impl Drop for NfQueue {
    fn drop(&mut self) {
        if self.bound {
            let _ = self.config(&[(NFQA_CFG_CMD, &[NFQNL_CFG_CMD_UNBIND, 0, 0, 0])]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet message as the kernel writes it, built by hand.
    fn packet_msg(id: u32, payload: &[u8], cap: Option<u32>) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET).to_ne_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[0x08, 0x00, 2]);
        attr(&mut m, NFQA_PACKET_HDR, &hdr);
        attr(&mut m, NFQA_PAYLOAD, payload);
        if let Some(c) = cap {
            attr(&mut m, NFQA_CAP_LEN, &c.to_be_bytes());
        }
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    /// A verdict carries the mark only when one is given, as NFQA_MARK
    /// (big-endian, after the verdict header).
    #[test]
    fn verdicts_carry_the_mark_when_given() {
        let read = |m: &[u8]| attrs(m).map(|(k, v)| (k, v.to_vec())).collect::<Vec<_>>();
        let plain = read(&verdict_attrs(7, NF_ACCEPT, None));
        assert_eq!(plain, vec![(NFQA_VERDICT_HDR, [1u32.to_be_bytes(), 7u32.to_be_bytes()].concat())]);
        let marked = read(&verdict_attrs(7, NF_ACCEPT, Some(0x10)));
        assert_eq!(marked.len(), 2);
        assert_eq!(marked[1], (NFQA_MARK, 0x10u32.to_be_bytes().to_vec()));
    }

    #[test]
    fn packet_messages_parse() {
        let m = packet_msg(77, &[0x45, 1, 2, 3, 4], Some(1500));
        let (id, start, len, cap) = parse_packet(&m).unwrap();
        assert_eq!((id, len, cap), (77, 5, Some(1500)));
        assert_eq!(&m[start..start + len], &[0x45, 1, 2, 3, 4]);
    }

    #[test]
    fn malformed_messages_are_refused_not_read_past() {
        let m = packet_msg(9, &[1, 2, 3], None);
        // Cut anywhere: never a panic, never an id without its header.
        for cut in 0..m.len() {
            let mut short = m[..cut].to_vec();
            if short.len() >= 4 {
                short[..4].copy_from_slice(&(m.len() as u32).to_ne_bytes());
            }
            assert_eq!(parse_packet(&short), None, "cut at {cut}");
        }
        // An attribute claiming more than the message holds ends the walk.
        let mut bad = m.clone();
        bad[NLMSG_HDRLEN + NFGEN_HDRLEN..NLMSG_HDRLEN + NFGEN_HDRLEN + 2].copy_from_slice(&9999u16.to_ne_bytes());
        assert_eq!(parse_packet(&bad), None);
        // Another message type is not a packet.
        let mut other = m;
        other[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG).to_ne_bytes());
        assert_eq!(parse_packet(&other), None);
    }
}
