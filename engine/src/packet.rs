//! Frame parsing: from a captured frame of some link type to the packet fields
//! of docs/SEMANTICS.md (`src`, `dst`, `proto`, `sport`, `dport`, `seq`,
//! `payload`), for IPv4 and IPv6 alike.
//!
//! This is the hot path of the router, so it parses only what a program can
//! see: the link header (to find the network layer), the IPv4 header or the
//! IPv6 header and its chain of extension headers, and the first bytes of a
//! TCP or UDP header. It never allocates and never indexes a slice
//! unchecked. Headers are read by hand after length checks that are exactly
//! those of etherparse's `*HeaderSlice` types (which this code used first; a
//! property test holds the two to the same answers): the hand version does
//! the same checks in fewer instructions.
//!
//! **Addresses** are 128-bit, host byte order: an IPv4 packet's are the
//! IPv4-mapped `::ffff:a.b.c.d` ([`vinet_checker::mapped`]), so that one
//! address space holds both families and every program, grouping and table
//! treats them alike. [`Fields::v6`] tells the family.
//!
//! Outcomes, as SEMANTICS "The window" defines them:
//! - [`Parsed::Packet`]: the frame is an IPv4 or IPv6 packet of the window;
//! - [`Parsed::NotIp`]: a well-formed link layer carrying something that is
//!   not a packet of the window: neither IPv4 nor IPv6 (ARP, LLC, ...), or an
//!   IPv6 packet with an IPv4-mapped source or destination (below);
//! - [`Parsed::Unparsed`]: an unknown link type, or a header that is cut off
//!   or malformed.
//!
//! Choices the semantics leaves to the parser, made here once:
//! - **Truncation.** The IP packet's bytes are the captured bytes, clipped to
//!   the header's total length (IPv4) or 40 + payload length (IPv6): Ethernet
//!   padding is not payload. A payload cut short by the snap length is
//!   clipped; an IP header (for IPv6: the fixed header or an extension header
//!   before the upper layer) cut short makes the frame `Unparsed`, but a TCP
//!   or UDP header cut short does not: a packet whose IP header is valid is
//!   subject to its destination's programs whatever follows it, so it is a
//!   packet of the window, with `seq` 0, no payload and **no ports**
//!   ([`Fields::has_ports`] false; a firewall by address drops it; it carries
//!   no word past a spam filter). A packet without ports is never "port 0":
//!   GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT and TCP_FLAGS never
//!   select it, and DISTINCT_DESTINATION_PORTS does not count it. The whole
//!   transport header must be captured: 8 bytes for UDP; for TCP 20 bytes and
//!   the whole header its data offset gives (a data offset below 5 means no
//!   ports).
//! - **IPv4 total length shorter than the IPv4 header is `Unparsed`**, 0
//!   included. Linux GSO / BIG TCP captures write 0 for host-stack
//!   super-packets over 64 KiB; tcpdump reads those as "as long as the
//!   capture", but such a packet never crosses a wire, and its payload could
//!   not be carried by a GENERATEd datagram, so vinet forwards it untouched
//!   instead. Every IPv4 packet of a window thus has a payload of at most
//!   65,515 bytes.
//! - **IPv6 payload length 0 is `Unparsed`**: a jumbogram (RFC 2675, a
//!   Hop-by-Hop option carries the real length) or a host-stack BIG TCP
//!   super-packet, for the same reasons.
//! - **IPv6 extension headers.** Hop-by-Hop Options (0, first only, as RFC
//!   8200 4.1 requires), Routing (43), Destination Options (60), Fragment (44)
//!   and Authentication (51) are followed, each length-checked against the
//!   packet's bytes, at most [`MAX_EXT_HEADERS`] of them. A longer chain, a
//!   Hop-by-Hop header after the first, an AH whose length field is 0, or an
//!   extension header that runs past the packet's bytes stops the chain
//!   there: the packet is still a packet of the window (its addresses are
//!   valid, and hosts accept such chains), **without ports**, its `proto` the
//!   header where the chain stops, so a firewall by address drops it and
//!   nothing reads its bytes as a header. Any other next header is the upper layer: TCP (6) and UDP
//!   (17) have ports as for IPv4, GRE (47) its key, and ICMPv6 (58), No Next
//!   Header (59), ESP (50) and every other number are a `proto` without ports,
//!   whose payload is the rest of the packet.
//! - **IPv4-mapped addresses on the wire.** An IPv6 packet whose source or
//!   destination lies in `::ffff:0:0/96` is never valid on a link (RFC 4291
//!   2.5.5.2, RFC 6890): it would alias an IPv4 client's address, so it is
//!   `NotIp`, counted and forwarded untouched, never a packet of the window.
//! - **Fragments.** A non-first fragment (IPv4 offset != 0; an IPv6 Fragment
//!   header with offset != 0) has no transport header: it has no ports and no
//!   TCP flags (`sport`, `dport`, `seq` and `tcp_flags` are 0), its payload is
//!   the fragment's data, and for IPv6 its `proto` is the Fragment header's
//!   next header. A first fragment has ports when it holds the whole transport
//!   header, as any packet; RFC 7112 requires a first IPv6 fragment to hold
//!   the whole header chain; one whose chain is cut off by the fragment's
//!   end is, as any packet whose chain stops, a packet without ports.
//!   [`Fields::fragment`] records the identification and offset of every
//!   fragment (an "atomic" IPv6 fragment, offset 0 and no more fragments, is
//!   a whole datagram and is none); the runner gives the later fragments of
//!   an IPv6 datagram the verdict of its first ([`crate::fragments`]).
//! - **TCP flags** are byte 13 of a whole TCP header (FIN = 1 ... CWR = 128);
//!   a packet has flags exactly when it is TCP and has ports.
//! - **UDP** payload is bounded by the IP packet, not by the UDP length field.
//! - **Link types.** Ethernet (ethertypes 0x0800 and 0x86DD, behind any number
//!   of VLAN tags up to [`MAX_VLAN_TAGS`]), raw IP (the version nibble
//!   decides), raw IPv4 and raw IPv6, BSD loopback (AF_INET 2; AF_INET6 10
//!   (Linux), 24, 28 or 30 (the BSDs)), Linux cooked captures (protocol
//!   0x0800 or 0x86DD).
//! - **Linux cooked capture (SLL, SLL2)** is read by hand: etherparse's
//!   `LinuxSllHeaderSlice` refuses hardware types (loopback, tun, PPP) that do
//!   carry IP in real captures.

use vinet_checker::mapped;

/// The link-layer types vinet reads (tcpdump.org LINKTYPE_ values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// 0: BSD loopback, address family in the capturing host's byte order.
    Null,
    /// 1: Ethernet II, with any number of 802.1Q / 802.1ad tags.
    Ethernet,
    /// 101 (and DLT 12, 14): raw IP, version from the first nibble.
    Raw,
    /// 108: OpenBSD loopback, address family in network byte order.
    Loop,
    /// 113: Linux cooked capture v1.
    LinuxSll,
    /// 228: raw IPv4.
    Ipv4,
    /// 229: raw IPv6.
    Ipv6,
    /// 276: Linux cooked capture v2.
    LinuxSll2,
    /// Anything else: every frame is `Unparsed`.
    Other(u32),
}

impl LinkType {
    /// The link type of a pcap header or pcapng interface value.
    pub fn from_raw(v: u32) -> LinkType {
        match v {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }

    /// The LINKTYPE_ value to write in a capture file.
    pub fn to_raw(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
            LinkType::Other(v) => v,
        }
    }
}

/// A fragment of an IP datagram: what [`Fields::fragment`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Fragment {
    /// The datagram's identification (IPv4: 16 bits; IPv6: the Fragment
    /// header's 32 bits).
    pub id: u32,
    /// The fragment offset, in 8-byte units (0: the first fragment).
    pub offset: u16,
    /// The "more fragments" flag.
    pub more: bool,
}

/// The fields of one IP packet (SEMANTICS "The window"). The payload is a
/// byte range of the frame it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fields {
    /// Source address, host byte order; IPv4 as IPv4-mapped (`::ffff:a.b.c.d`).
    pub src: u128,
    /// Destination address, host byte order; IPv4 as IPv4-mapped.
    pub dst: u128,
    /// IP protocol number; for IPv6 the upper-layer protocol (the next
    /// header that ends the extension-header chain).
    pub proto: u8,
    /// TCP/UDP source port; 0 when the packet has no ports.
    pub sport: u16,
    /// TCP/UDP destination port; 0 when the packet has no ports.
    pub dport: u16,
    /// Whether the packet has ports: TCP or UDP, not a non-first fragment,
    /// and its whole transport header captured (see the module
    /// documentation). A packet without ports is never "port 0".
    pub has_ports: bool,
    /// The TCP flags byte (FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16,
    /// URG = 32, ECE = 64, CWR = 128); 0 unless the packet is TCP with ports
    /// (it then *has flags*).
    pub tcp_flags: u8,
    /// TCP sequence number; 0 for other protocols.
    pub seq: u32,
    /// The overlay-network flow id the packet carries: the key of a GRE
    /// header (RFC 2890; protocol 47, version 0, the K bit set) that starts
    /// the payload of a first (or only) fragment; `None` for any other packet.
    pub on_key: Option<u32>,
    /// An IPv6 packet (else IPv4).
    pub v6: bool,
    /// For a fragment of a datagram (not an atomic IPv6 fragment): its
    /// identification and offset.
    pub fragment: Option<Fragment>,
    /// Offset of the payload in the frame.
    pub payload_start: u32,
    /// Length of the payload (clipped to the captured bytes).
    pub payload_len: u32,
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An IPv4 or IPv6 packet, in the window.
    Packet(Fields),
    /// A well-formed frame whose content is not a packet of the window:
    /// neither IPv4 nor IPv6 (ARP, LLC, ...), or IPv6 with an IPv4-mapped
    /// address.
    NotIp,
    /// A frame vinet cannot parse.
    Unparsed,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Most VLAN tags followed before a frame is given up as `Unparsed`.
pub const MAX_VLAN_TAGS: usize = 8;
/// Most IPv6 extension headers followed before a frame is given up as
/// `Unparsed`.
pub const MAX_EXT_HEADERS: usize = 8;
/// The BSD loopback address families of IPv6: Linux, NetBSD/OpenBSD, FreeBSD, macOS.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
const EXT_HOP_BY_HOP: u8 = 0;
const EXT_ROUTING: u8 = 43;
const EXT_FRAGMENT: u8 = 44;
const EXT_AUTH: u8 = 51;
const EXT_DEST_OPTS: u8 = 60;

/// Whether `a` lies in `::ffff:0:0/96` (an IPv4 address, as vinet holds it).
#[inline]
pub fn is_mapped(a: u128) -> bool {
    a >> 32 == 0xffff
}

/// Parse a frame of link type `link`.
#[inline]
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Parsed {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => ipv4(frame, 0),
            Some(6) => ipv6(frame, 0),
            _ => Parsed::Unparsed,
        },
        LinkType::Ipv4 => ipv4(frame, 0),
        LinkType::Ipv6 => ipv6(frame, 0),
        LinkType::Null | LinkType::Loop => {
            let Some(fam) = frame.get(..4) else { return Parsed::Unparsed };
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            // LOOP is network order; NULL is the capturing host's order, so
            // either. AF_INET is 2 on every system; AF_INET6 is not.
            let (be, le) = (u32::from_be_bytes(fam), u32::from_le_bytes(fam));
            let is = |v: &[u32]| match link {
                LinkType::Loop => v.contains(&be),
                _ => v.contains(&le) || v.contains(&be),
            };
            if is(&[2]) {
                ipv4(frame, 4)
            } else if is(&AF_INET6) {
                ipv6(frame, 4)
            } else {
                Parsed::NotIp
            }
        }
        LinkType::LinuxSll => {
            // packet type (2), ARPHRD (2), address length (2), address (8), protocol (2)
            let Some(h) = frame.get(..16) else { return Parsed::Unparsed };
            let hatype = u16::from_be_bytes([h[2], h[3]]);
            let proto = u16::from_be_bytes([h[14], h[15]]);
            sll_next(hatype, proto, frame, 16)
        }
        LinkType::LinuxSll2 => {
            // protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1), address length (1), address (8)
            let Some(h) = frame.get(..20) else { return Parsed::Unparsed };
            let proto = u16::from_be_bytes([h[0], h[1]]);
            let hatype = u16::from_be_bytes([h[8], h[9]]);
            sll_next(hatype, proto, frame, 20)
        }
        LinkType::Other(_) => Parsed::Unparsed,
    }
}

fn sll_next(hatype: u16, proto: u16, frame: &[u8], off: usize) -> Parsed {
    const ARPHRD_NETLINK: u16 = 824;
    match proto {
        _ if hatype == ARPHRD_NETLINK => Parsed::NotIp,
        ETHERTYPE_IPV4 => ipv4(frame, off),
        ETHERTYPE_IPV6 => ipv6(frame, off),
        _ => Parsed::NotIp,
    }
}

#[inline]
fn ethernet(frame: &[u8]) -> Parsed {
    let Some(&[t0, t1]) = frame.get(12..14) else { return Parsed::Unparsed };
    let mut ty = u16::from_be_bytes([t0, t1]);
    let mut off = 14;
    let mut tags = 0;
    while ETHERTYPE_VLAN.contains(&ty) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Parsed::Unparsed;
        }
        // A tag: priority and VLAN id (2 bytes), then the next type.
        let Some(&[_, _, a, b]) = frame.get(off..off + 4) else { return Parsed::Unparsed };
        ty = u16::from_be_bytes([a, b]);
        off += 4;
    }
    match ty {
        ETHERTYPE_IPV4 => ipv4(frame, off),
        ETHERTYPE_IPV6 => ipv6(frame, off),
        _ => Parsed::NotIp,
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be128(b: &[u8], at: usize) -> u128 {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[at..at + 16]);
    u128::from_be_bytes(x)
}

/// A packet whose IP header is valid but whose TCP or UDP header (or, in a
/// first IPv6 fragment, whose header chain) is cut short: it is still a
/// packet of the window (its destination's programs see it, so a firewall
/// drops it), without ports or flags, `seq` 0 and no payload.
fn no_transport(mut f: Fields, off: usize, ip_len: usize) -> Parsed {
    (f.sport, f.dport, f.seq, f.payload_len) = (0, 0, 0, 0);
    (f.has_ports, f.tcp_flags) = (false, 0);
    match u32::try_from(off + ip_len) {
        Ok(s) => {
            f.payload_start = s;
            Parsed::Packet(f)
        }
        Err(_) => Parsed::Unparsed,
    }
}

/// Parse the IPv4 packet that starts at `off` of `frame`. Headers are read
/// by hand, after exactly the length and content checks of etherparse's
/// header slices (which this replaced on the hot path; a property test holds
/// the two to the same answers).
#[inline]
fn ipv4(frame: &[u8], off: usize) -> Parsed {
    let Some(ip) = frame.get(off..) else { return Parsed::Unparsed };
    // Version 4, a header of at least 5 words, all of it captured.
    let Some(&v) = ip.first() else { return Parsed::Unparsed };
    let hlen = usize::from(v & 0xf) * 4;
    if ip.len() < 20 || v >> 4 != 4 || hlen < 20 || ip.len() < hlen {
        return Parsed::Unparsed;
    }
    let total = usize::from(be16(ip, 2));
    if total < hlen {
        return Parsed::Unparsed;
    }
    let ip = &ip[..total.min(ip.len())];
    let frag = be16(ip, 6);
    let (offset, more) = (frag & 0x1fff, frag & 0x2000 != 0);
    let fragment = (offset != 0 || more).then(|| Fragment { id: u32::from(be16(ip, 4)), offset, more });
    let f = Fields { src: mapped(be32(ip, 12)), dst: mapped(be32(ip, 16)), proto: ip[9], fragment, ..Fields::default() };
    upper(f, off, ip, hlen, offset == 0)
}

/// Parse the IPv6 packet that starts at `off` of `frame`: the fixed header,
/// the extension headers (see the module documentation), the upper layer.
#[inline]
fn ipv6(frame: &[u8], off: usize) -> Parsed {
    let Some(ip) = frame.get(off..) else { return Parsed::Unparsed };
    if ip.len() < 40 || ip[0] >> 4 != 6 {
        return Parsed::Unparsed;
    }
    let plen = usize::from(be16(ip, 4));
    if plen == 0 {
        return Parsed::Unparsed;
    }
    let ip = &ip[..(40 + plen).min(ip.len())];
    let (src, dst) = (be128(ip, 8), be128(ip, 24));
    if is_mapped(src) || is_mapped(dst) {
        return Parsed::NotIp;
    }
    let mut f = Fields { src, dst, v6: true, ..Fields::default() };
    let mut next = ip[6];
    let mut at = 40;
    let mut headers = 0;
    loop {
        // A chain vinet does not follow (below) leaves a packet without ports,
        // its `proto` the header where the chain stops: its addresses are
        // valid, so it is its destination's all the same.
        let stop = |mut f: Fields, next: u8| {
            f.proto = next;
            no_transport(f, off, ip.len())
        };
        let len = match next {
            EXT_HOP_BY_HOP if headers > 0 => return stop(f, next),
            EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS => ip.get(at + 1).map(|&l| (8, (usize::from(l) + 1) * 8)),
            EXT_FRAGMENT => Some((8, 8)),
            // AH counts 4-byte words, minus 2; a length field of 0 is malformed.
            EXT_AUTH => match ip.get(at + 1) {
                Some(0) if ip.len() >= at + 12 => return stop(f, next),
                l => l.map(|&l| (12, (usize::from(l) + 2) * 4)),
            },
            _ => break,
        };
        headers += 1;
        let whole = len.is_some_and(|(min, len)| ip.len() >= at + min.max(len));
        if headers > MAX_EXT_HEADERS || !whole {
            return stop(f, next);
        }
        let len = len.map_or(8, |(_, l)| l);
        let this = next;
        next = ip[at];
        if this == EXT_FRAGMENT {
            let w = be16(ip, at + 2);
            let (offset, more) = (w >> 3, w & 1 != 0);
            if offset != 0 || more {
                f.fragment = Some(Fragment { id: be32(ip, at + 4), offset, more });
            }
            if offset != 0 {
                // A later fragment: its data is no header.
                f.proto = next;
                return upper(f, off, ip, at + len, false);
            }
        }
        at += len;
    }
    f.proto = next;
    upper(f, off, ip, at, true)
}

/// The upper layer of an IP packet: `ip` is the packet's bytes (clipped to
/// its length), starting at `off` of the frame; the upper layer starts at
/// `at` of it; `first` unless it is a non-first fragment. Reads the ports,
/// sequence number and flags of TCP and UDP and the key of GRE, and the
/// payload's range.
#[inline]
fn upper(mut f: Fields, off: usize, ip: &[u8], at: usize, first: bool) -> Parsed {
    let ip_len = ip.len();
    let l4 = ip.get(at..).unwrap_or(&[]);
    let mut start = at;
    if first && f.proto == PROTO_TCP {
        // 20 bytes at least, and the whole header its data offset gives.
        let tlen = l4.get(12).map_or(0, |b| usize::from(b & 0xf0) >> 2);
        if l4.len() < 20 || tlen < 20 || l4.len() < tlen {
            return no_transport(f, off, ip_len);
        }
        f.sport = be16(l4, 0);
        f.dport = be16(l4, 2);
        f.seq = be32(l4, 4);
        f.tcp_flags = l4[13];
        f.has_ports = true;
        start += tlen;
    } else if first && f.proto == PROTO_UDP {
        if l4.len() < 8 {
            return no_transport(f, off, ip_len);
        }
        f.sport = be16(l4, 0);
        f.dport = be16(l4, 2);
        f.has_ports = true;
        start += 8;
    } else if first && f.proto == PROTO_GRE && l4.len() >= 8 {
        // Flags C (a checksum word before the key), K (a key), version 0.
        let flags = be16(l4, 0);
        let k = if flags & 0x8000 != 0 { 8 } else { 4 };
        if flags & 0x2000 != 0 && flags & 7 == 0 && l4.len() >= k + 4 {
            f.on_key = Some(be32(l4, k));
        }
    }
    // Frames are at most a few hundred KiB (the capture reader's buffer is
    // 8 MB), so offsets fit in u32; a frame that does not is refused.
    let (Ok(s), Ok(l)) = (u32::try_from(off + start), u32::try_from(ip_len.saturating_sub(start))) else {
        return Parsed::Unparsed;
    };
    f.payload_start = s;
    f.payload_len = l;
    Parsed::Packet(f)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An IPv4 packet (header checksum not filled: the parser does not check it).
    pub(crate) fn ipv4_bytes(src: u32, dst: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
        let total = 20 + l4.len();
        let mut v = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, proto, 0, 0];
        v.extend_from_slice(&src.to_be_bytes());
        v.extend_from_slice(&dst.to_be_bytes());
        v.extend_from_slice(l4);
        v
    }

    pub(crate) fn tcp_bytes(sport: u16, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        tcp_bytes_with(sport, dport, seq, 0x18, &[], payload)
    }

    /// A TCP header with flags byte `flags` and `options` (a multiple of 4
    /// bytes long: the data offset is 5 + its words), then `payload`.
    pub(crate) fn tcp_bytes_with(sport: u16, dport: u16, seq: u32, flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(options.len().is_multiple_of(4) && options.len() <= 40);
        let offset = (5 + options.len() / 4) as u8;
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, offset << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(options);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn udp_bytes(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = 8 + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    pub(crate) fn eth(ethertype: u16, inner: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        v.extend_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(inner);
        v
    }

    /// An IPv6 packet: the fixed header (payload length that of `rest`, next
    /// header `next`, hop limit 64), then `rest` (extension headers and the
    /// upper layer).
    pub(crate) fn ipv6_bytes(src: u128, dst: u128, next: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&src.to_be_bytes());
        v.extend_from_slice(&dst.to_be_bytes());
        v.extend_from_slice(rest);
        v
    }

    /// An IPv6 Fragment header.
    pub(crate) fn fragment_header(next: u8, offset: u16, more: bool, id: u32) -> Vec<u8> {
        let mut v = vec![next, 0];
        v.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
        v.extend_from_slice(&id.to_be_bytes());
        v
    }

    /// An IPv6 extension header of type `kind` whose next header is `next`:
    /// Hop-by-Hop, Routing and Destination Options `8 * (1 + words)` bytes
    /// (Pad1 options), AH `4 * (2 + words)` bytes (`words` at least 1), a
    /// Fragment header of an atomic fragment.
    pub(crate) fn ext_header(kind: u8, next: u8, words: u8) -> Vec<u8> {
        match kind {
            EXT_FRAGMENT => fragment_header(next, 0, false, 0),
            EXT_AUTH => {
                let w = words.max(1);
                let mut v = vec![next, w];
                v.resize((usize::from(w) + 2) * 4, 0);
                v
            }
            _ => {
                let mut v = vec![next, words];
                v.resize((usize::from(words) + 1) * 8, 0);
                v
            }
        }
    }

    /// An IPv6 packet with extension headers of types `kinds` (in order),
    /// then the upper layer `proto` with bytes `l4`.
    pub(crate) fn ipv6_chain(src: u128, dst: u128, kinds: &[u8], proto: u8, l4: &[u8]) -> Vec<u8> {
        let (mut next, mut rest) = (proto, l4.to_vec());
        for &k in kinds.iter().rev() {
            rest = [ext_header(k, next, 0), rest].concat();
            next = k;
        }
        ipv6_bytes(src, dst, next, &rest)
    }

    /// An IP packet in the family of its addresses: IPv4 when both are
    /// IPv4-mapped, else IPv6.
    pub(crate) fn ip_bytes(src: u128, dst: u128, proto: u8, l4: &[u8]) -> Vec<u8> {
        if is_mapped(src) && is_mapped(dst) {
            ipv4_bytes(src as u32, dst as u32, proto, l4)
        } else {
            ipv6_bytes(src, dst, proto, l4)
        }
    }

    pub(crate) fn fields(p: Parsed) -> Fields {
        match p {
            Parsed::Packet(f) => f,
            other => panic!("expected a packet, got {other:?}"),
        }
    }

    const A: u32 = 0x0a00_0001;
    const B: u32 = 0x0a00_0002;
    /// 2001:db8::1 and 2001:db8:1::2 (RFC 3849 documentation addresses).
    pub(crate) const A6: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    pub(crate) const B6: u128 = 0x2001_0db8_0001_0000_0000_0000_0000_0002;

    #[test]
    fn ethernet_tcp() {
        let ip = ipv4_bytes(A, B, 6, &tcp_bytes(1234, 80, 77, b"hello"));
        let frame = eth(0x0800, &ip);
        let f = fields(parse_frame(LinkType::Ethernet, &frame));
        assert_eq!((f.src, f.dst, f.proto, f.sport, f.dport, f.seq), (mapped(A), mapped(B), 6, 1234, 80, 77));
        assert_eq!((f.has_ports, f.tcp_flags), (true, 0x18), "PSH ACK");
        let p = &frame[f.payload_start as usize..][..f.payload_len as usize];
        assert_eq!(p, b"hello");
    }

    /// The overlay-network flow id: a GRE key (RFC 2890), after the checksum word when
    /// there is one; none without the K bit, in another GRE version, in a header cut
    /// short, in a non-first fragment, or in another protocol.
    #[test]
    fn gre_keys_are_flow_ids() {
        let key = |l4: &[u8]| fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 47, l4))).on_key;
        let k = [0x00, 0xc0, 0xff, 0xee];
        assert_eq!(key(&[&[0x20, 0, 0x08, 0][..], &k].concat()), Some(0x00c0_ffee));
        assert_eq!(key(&[&[0xa0, 0, 0x08, 0][..], &[0xde, 0xad, 0, 0], &k].concat()), Some(0x00c0_ffee), "after a checksum");
        assert_eq!(key(&[&[0x30, 0, 0x08, 0][..], &k, &[0, 0, 0, 1]].concat()), Some(0x00c0_ffee), "with a sequence number");
        assert_eq!(key(&[&[0, 0, 0x08, 0][..], &k].concat()), None, "no K bit");
        assert_eq!(key(&[&[0x20, 1, 0x88, 0x0b][..], &k].concat()), None, "version 1 (PPTP)");
        assert_eq!(key(&[0x20, 0, 0x08, 0, 0, 0xc0, 0xff]), None, "cut short");
        assert_eq!(key(&[0xa0, 0, 0x08, 0, 0, 0, 0, 0]), None, "checksum, no room for the key");
        let mut frag = ipv4_bytes(A, B, 47, &[&[0x20, 0, 0x08, 0][..], &k].concat());
        frag[6..8].copy_from_slice(&[0, 1]);
        assert_eq!(fields(parse_frame(LinkType::Raw, &frag)).on_key, None, "a non-first fragment");
        let udp = ipv4_bytes(A, B, 17, &[&[0x20, 0, 0x08, 0][..], &k].concat());
        assert_eq!(fields(parse_frame(LinkType::Raw, &udp)).on_key, None, "UDP");
    }

    #[test]
    fn vlan_and_qinq() {
        let ip = ipv4_bytes(A, B, 17, &udp_bytes(53, 5353, b"q"));
        let mut tagged = vec![0, 5];
        tagged.extend_from_slice(&0x0800u16.to_be_bytes());
        tagged.extend_from_slice(&ip);
        let f = fields(parse_frame(LinkType::Ethernet, &eth(0x8100, &tagged)));
        assert_eq!((f.sport, f.dport, f.payload_len, f.has_ports, f.tcp_flags), (53, 5353, 1, true, 0));
        let mut outer = vec![0, 7, 0x81, 0x00];
        outer.extend_from_slice(&tagged);
        let f = fields(parse_frame(LinkType::Ethernet, &eth(0x88a8, &outer)));
        assert_eq!(f.dst, mapped(B));
        // A tag cut off is unparsed; IPv6 behind tags is a packet; ARP is not IP.
        assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x8100, &[0, 1])), Parsed::Unparsed);
        let v6 = ipv6_bytes(A6, B6, 17, &udp_bytes(53, 5353, b"q"));
        let f = fields(parse_frame(LinkType::Ethernet, &eth(0x8100, &[&[0, 5, 0x86, 0xdd][..], &v6].concat())));
        assert_eq!((f.src, f.dst, f.v6, f.sport, f.dport, f.payload_len), (A6, B6, true, 53, 5353, 1));
        assert_eq!(fields(parse_frame(LinkType::Ethernet, &eth(0x86dd, &[0x60; 40]))).proto, 0x60, "next header 0x60: an upper layer");
        assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x0806, &[0; 28])), Parsed::NotIp);
    }

    #[test]
    fn other_link_types() {
        let ip = ipv4_bytes(A, B, 1, &[8, 0, 0, 0, 1, 2, 3, 4]);
        let f = fields(parse_frame(LinkType::Raw, &ip));
        assert_eq!((f.proto, f.sport, f.payload_len, f.has_ports, f.tcp_flags), (1, 0, 8, false, 0));
        assert_eq!(parse_frame(LinkType::from_raw(12), &ip), parse_frame(LinkType::Raw, &ip));
        assert_eq!(parse_frame(LinkType::from_raw(14), &ip), parse_frame(LinkType::Raw, &ip));
        let mut null_le = 2u32.to_le_bytes().to_vec();
        null_le.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::Null, &null_le)).dst, mapped(B));
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::Null, &null_be)).dst, mapped(B));
        assert_eq!(fields(parse_frame(LinkType::Loop, &null_be)).dst, mapped(B));
        let mut other = 7u32.to_le_bytes().to_vec();
        other.extend_from_slice(&ip);
        assert_eq!(parse_frame(LinkType::Null, &other), Parsed::NotIp, "AF 7");
        assert_eq!(parse_frame(LinkType::Loop, &null_le), Parsed::NotIp, "LOOP is network order");
        let mut sll = vec![0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::LinuxSll, &sll)).src, mapped(A));
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::LinuxSll2, &sll2)).src, mapped(A));
        assert_eq!(parse_frame(LinkType::Other(105), &ip), Parsed::Unparsed);
    }

    #[test]
    fn truncation_and_malformed() {
        let ip = ipv4_bytes(A, B, 6, &tcp_bytes(1, 2, 3, b"0123456789"));
        // Payload cut by the snap length: clipped.
        let f = fields(parse_frame(LinkType::Raw, &ip[..ip.len() - 4]));
        assert_eq!(f.payload_len, 6);
        // TCP header cut off: still a packet of the window (its IPv4 header is
        // valid), with no ports and no payload; the same for UDP.
        let f = fields(parse_frame(LinkType::Raw, &ip[..30]));
        assert_eq!((f.src, f.dst, f.proto, f.sport, f.dport, f.seq, f.payload_len), (mapped(A), mapped(B), 6, 0, 0, 0, 0));
        assert_eq!((f.has_ports, f.tcp_flags), (false, 0));
        let udp = ipv4_bytes(A, B, 17, &udp_bytes(1, 2, b"word"));
        let f = fields(parse_frame(LinkType::Raw, &udp[..24]));
        assert_eq!((f.src, f.proto, f.sport, f.payload_len, f.has_ports), (mapped(A), 17, 0, 0, false));
        // IPv4 header cut off: unparsed.
        assert_eq!(parse_frame(LinkType::Raw, &ip[..12]), Parsed::Unparsed);
        // Total length shorter than the header: unparsed.
        let mut bad = ip.clone();
        bad[2] = 0;
        bad[3] = 10;
        assert_eq!(parse_frame(LinkType::Raw, &bad), Parsed::Unparsed);
        // Total length 0 (GSO super-packets): unparsed too.
        bad[3] = 0;
        assert_eq!(parse_frame(LinkType::Raw, &bad), Parsed::Unparsed);
        // Ethernet padding after the IP packet is not payload.
        let mut padded = eth(0x0800, &ip);
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(fields(parse_frame(LinkType::Ethernet, &padded)).payload_len, 10);
        // Every prefix of a frame parses without panic.
        let frame = eth(0x0800, &ip);
        for n in 0..frame.len() {
            let _ = parse_frame(LinkType::Ethernet, &frame[..n]);
        }
    }

    #[test]
    fn later_fragments_have_no_ports() {
        let mut ip = ipv4_bytes(A, B, 6, b"raw fragment data");
        ip[6] = 0x00;
        ip[7] = 0x10; // offset 16 * 8
        let f = fields(parse_frame(LinkType::Raw, &ip));
        assert_eq!((f.sport, f.dport, f.seq, f.payload_len), (0, 0, 0, 17));
        assert_eq!((f.has_ports, f.tcp_flags), (false, 0));
        assert_eq!((f.v6, f.fragment), (false, Some(Fragment { id: 0, offset: 16, more: false })));
        ip[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        ip[6] = 0x20; // more fragments, offset 16
        let f = fields(parse_frame(LinkType::Raw, &ip));
        assert_eq!(f.fragment, Some(Fragment { id: 0xbeef, offset: 16, more: true }));
        assert_eq!(fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 17, &udp_bytes(1, 2, b"")))).fragment, None, "not a fragment");
        // Even when the fragment's bytes look like a whole TCP or UDP header.
        for (proto, l4) in [(6, tcp_bytes(1, 2, 3, b"x")), (17, udp_bytes(1, 2, b"x"))] {
            for off in [1u16, 0x1fff] {
                let mut ip = ipv4_bytes(A, B, proto, &l4);
                ip[6..8].copy_from_slice(&off.to_be_bytes());
                let f = fields(parse_frame(LinkType::Raw, &ip));
                assert_eq!((f.has_ports, f.sport, f.dport, f.tcp_flags), (false, 0, 0, 0), "proto {proto} offset {off}");
                assert_eq!(f.payload_len as usize, l4.len());
            }
            // A first fragment (more fragments set, offset 0) has its ports.
            let mut ip = ipv4_bytes(A, B, proto, &l4);
            ip[6] = 0x20;
            let f = fields(parse_frame(LinkType::Raw, &ip));
            assert_eq!((f.has_ports, f.sport, f.dport), (true, 1, 2), "proto {proto}, first fragment");
        }
    }

    /// A TCP or UDP header cut short at every length has no ports, whatever
    /// its bytes say; the whole header has them. For TCP "whole" is the
    /// length its data offset gives (here 32 bytes, with options).
    #[test]
    fn transport_headers_cut_at_every_length() {
        let tcp = ipv4_bytes(A, B, 6, &tcp_bytes_with(443, 25, 9, 0x12, &[1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0], b"data"));
        for cut in 20..tcp.len() {
            let f = fields(parse_frame(LinkType::Raw, &tcp[..cut]));
            let whole = cut >= 20 + 32;
            assert_eq!(f.has_ports, whole, "TCP cut at {cut}");
            assert_eq!((f.sport, f.dport, f.tcp_flags), if whole { (443, 25, 0x12) } else { (0, 0, 0) }, "TCP cut at {cut}");
            assert_eq!(f.payload_len as usize, cut.saturating_sub(52), "TCP cut at {cut}");
        }
        let udp = ipv4_bytes(A, B, 17, &udp_bytes(53, 5353, b"q"));
        for cut in 20..udp.len() {
            let f = fields(parse_frame(LinkType::Raw, &udp[..cut]));
            assert_eq!((f.has_ports, f.tcp_flags), (cut >= 28, 0), "UDP cut at {cut}");
            assert_eq!((f.sport, f.dport), if cut >= 28 { (53, 5353) } else { (0, 0) }, "UDP cut at {cut}");
        }
        // The total length cuts as the capture does (the rest is padding).
        let mut short = tcp.clone();
        short[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert!(!fields(parse_frame(LinkType::Raw, &short)).has_ports);
        // An empty transport header (total length 20) has no ports either.
        for proto in [6, 17] {
            let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, proto, &[])));
            assert_eq!((f.proto, f.has_ports), (proto, false));
        }
    }

    /// A TCP data offset below 5 words is no header at all: no ports, no
    /// flags; 5 to 15 words need that many captured bytes.
    #[test]
    fn tcp_data_offsets() {
        for words in 0u8..16 {
            let mut l4 = tcp_bytes_with(7, 8, 1, 0xff, &[], &[0; 40]);
            l4[12] = words << 4;
            let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 6, &l4)));
            let ok = words >= 5;
            assert_eq!((f.has_ports, f.tcp_flags), (ok, if ok { 0xff } else { 0 }), "data offset {words}");
            assert_eq!(f.payload_len as usize, if ok { 60 - 4 * usize::from(words) } else { 0 }, "data offset {words}");
            // The header longer than what was captured: no ports.
            let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 6, &l4[..(4 * usize::from(words)).max(20) - 1])));
            assert!(!f.has_ports, "data offset {words}, one byte short");
        }
    }

    /// Every flags byte is read as it is, for TCP only.
    #[test]
    fn tcp_flags_byte() {
        for flags in 0..=255u8 {
            let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 6, &tcp_bytes_with(1, 2, 3, flags, &[], b""))));
            assert_eq!((f.has_ports, f.tcp_flags), (true, flags));
        }
        // UDP bytes where TCP's flags would be are not flags.
        let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, 17, &udp_bytes(1, 2, &[0xff; 20]))));
        assert_eq!((f.has_ports, f.tcp_flags), (true, 0));
        // Other protocols have neither.
        for proto in [0u8, 1, 2, 47, 50, 132, 255] {
            let f = fields(parse_frame(LinkType::Raw, &ipv4_bytes(A, B, proto, &tcp_bytes(1, 2, 3, b"x"))));
            assert_eq!((f.proto, f.has_ports, f.sport, f.dport, f.tcp_flags), (proto, false, 0, 0, 0));
        }
    }

    /// IPv6 TCP and UDP on every link type that carries IPv6.
    #[test]
    fn ipv6_on_every_link_type() {
        let ip = ipv6_bytes(A6, B6, 6, &tcp_bytes_with(443, 25, 77, 0x12, &[], b"hello"));
        let check = |p: Parsed, what: &str| {
            let f = fields(p);
            assert_eq!((f.src, f.dst, f.v6, f.proto, f.sport, f.dport, f.seq), (A6, B6, true, 6, 443, 25, 77), "{what}");
            assert_eq!((f.has_ports, f.tcp_flags, f.payload_len, f.fragment), (true, 0x12, 5, None), "{what}");
        };
        let frame = eth(0x86dd, &ip);
        check(parse_frame(LinkType::Ethernet, &frame), "Ethernet");
        let f = fields(parse_frame(LinkType::Ethernet, &frame));
        assert_eq!(&frame[f.payload_start as usize..][..f.payload_len as usize], b"hello");
        check(parse_frame(LinkType::Raw, &ip), "raw");
        check(parse_frame(LinkType::Ipv6, &ip), "raw IPv6");
        assert_eq!(parse_frame(LinkType::Ipv4, &ip), Parsed::Unparsed, "IPv6 on raw IPv4");
        assert_eq!(parse_frame(LinkType::Ipv6, &ipv4_bytes(A, B, 6, &tcp_bytes(1, 2, 3, b""))), Parsed::Unparsed, "IPv4 on raw IPv6");
        for af in [10u32, 24, 28, 30] {
            check(parse_frame(LinkType::Null, &[&af.to_le_bytes()[..], &ip].concat()), "NULL, host order");
            check(parse_frame(LinkType::Null, &[&af.to_be_bytes()[..], &ip].concat()), "NULL, network order");
            check(parse_frame(LinkType::Loop, &[&af.to_be_bytes()[..], &ip].concat()), "LOOP");
        }
        let mut sll = vec![0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x86, 0xdd];
        sll.extend_from_slice(&ip);
        check(parse_frame(LinkType::LinuxSll, &sll), "SLL");
        let mut sll2 = vec![0x86, 0xdd, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        check(parse_frame(LinkType::LinuxSll2, &sll2), "SLL2");
        // Netlink captures carry no IP.
        sll[2..4].copy_from_slice(&824u16.to_be_bytes());
        assert_eq!(parse_frame(LinkType::LinuxSll, &sll), Parsed::NotIp);
        let f = fields(parse_frame(LinkType::Raw, &ipv6_bytes(A6, B6, 17, &udp_bytes(53, 5353, b"query"))));
        assert_eq!((f.proto, f.sport, f.dport, f.has_ports, f.tcp_flags, f.payload_len), (17, 53, 5353, true, 0, 5));
        // An IPv6 header cut off: unparsed.
        for n in 0..40 {
            assert_eq!(parse_frame(LinkType::Raw, &ip[..n]), Parsed::Unparsed, "cut at {n}");
        }
    }

    /// The payload is the upper layer's, clipped to the payload length
    /// (padding is not payload) and to the capture; a transport header cut
    /// short has no ports.
    #[test]
    fn ipv6_payload_is_clipped() {
        let ip = ipv6_bytes(A6, B6, 17, &udp_bytes(1, 2, b"0123456789"));
        let mut padded = eth(0x86dd, &ip);
        padded.extend_from_slice(&[0xee; 9]);
        assert_eq!(fields(parse_frame(LinkType::Ethernet, &padded)).payload_len, 10);
        for cut in 40..ip.len() {
            let f = fields(parse_frame(LinkType::Raw, &ip[..cut]));
            assert_eq!(f.has_ports, cut >= 48, "cut at {cut}");
            assert_eq!(f.payload_len as usize, cut.saturating_sub(48), "cut at {cut}");
        }
        // A payload length shorter than the bytes: the rest is padding.
        let mut short = ip.clone();
        short[4..6].copy_from_slice(&12u16.to_be_bytes());
        let f = fields(parse_frame(LinkType::Raw, &short));
        assert_eq!((f.has_ports, f.payload_len), (true, 4));
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert!(!fields(parse_frame(LinkType::Raw, &short)).has_ports, "UDP header past the payload length");
    }

    /// Hop-by-Hop, Routing, Destination Options, AH and an atomic fragment
    /// before TCP: the ports are found; the chain of at most eight headers.
    #[test]
    fn ipv6_extension_headers() {
        let tcp = tcp_bytes_with(1234, 80, 9, 0x02, &[], b"syn");
        for kinds in [&[0u8][..], &[43], &[60], &[51], &[44], &[0, 60, 43, 44, 51, 60], &[0, 60, 60, 60, 43, 43, 51, 44]] {
            let ip = ipv6_chain(A6, B6, kinds, 6, &tcp);
            let f = fields(parse_frame(LinkType::Raw, &ip));
            assert_eq!((f.proto, f.sport, f.dport, f.tcp_flags, f.payload_len, f.fragment), (6, 1234, 80, 2, 3, None), "{kinds:?}");
            assert_eq!(&ip[f.payload_start as usize..], b"syn");
            // Cut anywhere inside the chain or TCP: no ports; inside the
            // payload: ports, and the payload clipped. Never unparsed: the
            // fixed header is whole.
            let chain = ip.len() - tcp.len();
            for cut in 41..ip.len() {
                let mut cut_ip = ip[..cut].to_vec();
                cut_ip[4..6].copy_from_slice(&((cut - 40) as u16).to_be_bytes());
                match parse_frame(LinkType::Raw, &cut_ip) {
                    Parsed::Packet(f) if cut < chain => {
                        assert!(!f.has_ports && f.proto != 6 && f.payload_len == 0, "{kinds:?} cut at {cut}: {f:?}")
                    }
                    Parsed::Packet(f) => {
                        assert!(f.has_ports == (cut >= chain + 20) && f.proto == 6, "{kinds:?} cut at {cut}: {f:?}");
                        assert_eq!(f.payload_len as usize, cut.saturating_sub(chain + 20), "{kinds:?} cut at {cut}");
                    }
                    other => panic!("{kinds:?} cut at {cut}: {other:?}"),
                }
            }
        }
        // Longer headers are skipped whole.
        let rest = [ext_header(60, 43, 3), ext_header(43, 51, 1), ext_header(51, 17, 4), udp_bytes(7, 8, b"u")].concat();
        let f = fields(parse_frame(LinkType::Raw, &ipv6_bytes(A6, B6, 60, &rest)));
        assert_eq!((f.proto, f.sport, f.dport, f.payload_len), (17, 7, 8, 1));
        // A chain vinet does not follow stops where it stops: a packet of its
        // destination without ports (an attacker's long chain does not get it
        // past a firewall by address, as it would if it were forwarded untouched).
        let stopped = |ip: &[u8], at: u8| {
            let f = fields(parse_frame(LinkType::Raw, ip));
            assert_eq!((f.src, f.dst, f.proto, f.has_ports, f.payload_len), (A6, B6, at, false, 0), "{f:?}");
        };
        // Nine headers.
        stopped(&ipv6_chain(A6, B6, &[0, 60, 60, 60, 60, 43, 43, 51, 60], 6, &tcp), 60);
        // Hop-by-Hop after the first header (RFC 8200 4.1).
        stopped(&ipv6_chain(A6, B6, &[60, 0], 6, &tcp), 0);
        // A length past the end of the packet.
        let mut long = ipv6_chain(A6, B6, &[60], 6, &tcp);
        long[41] = 200;
        stopped(&long, 60);
        // An AH length field of 0 is malformed.
        let mut ah = ipv6_chain(A6, B6, &[51], 6, &tcp);
        ah[41] = 0;
        stopped(&ah, 51);
    }

    /// Upper layers without ports: ICMPv6, ESP, No Next Header, any number.
    #[test]
    fn ipv6_upper_layers_without_ports() {
        for proto in [58u8, 50, 59, 132, 41, 4, 255] {
            let f = fields(parse_frame(LinkType::Raw, &ipv6_chain(A6, B6, &[60], proto, &tcp_bytes(1, 2, 3, b"x"))));
            assert_eq!((f.proto, f.has_ports, f.sport, f.dport, f.tcp_flags, f.seq, f.payload_len), (proto, false, 0, 0, 0, 0, 21));
        }
        // The GRE key, as over IPv4.
        let k = [0x00, 0xc0, 0xff, 0xee];
        let gre = [&[0x20, 0, 0x86, 0xdd][..], &k].concat();
        assert_eq!(fields(parse_frame(LinkType::Raw, &ipv6_chain(A6, B6, &[0], 47, &gre))).on_key, Some(0x00c0_ffee));
        let gre_sum = [&[0xa0, 0, 0x86, 0xdd][..], &[0xde, 0xad, 0, 0], &k].concat();
        assert_eq!(fields(parse_frame(LinkType::Raw, &ipv6_bytes(A6, B6, 47, &gre_sum))).on_key, Some(0x00c0_ffee));
        assert_eq!(fields(parse_frame(LinkType::Raw, &ipv6_bytes(A6, B6, 47, &gre[..7]))).on_key, None, "cut short");
        let later = ipv6_bytes(A6, B6, 44, &[fragment_header(47, 3, false, 1), gre.clone()].concat());
        assert_eq!(fields(parse_frame(LinkType::Raw, &later)).on_key, None, "a non-first fragment");
        let first = ipv6_bytes(A6, B6, 44, &[fragment_header(47, 0, true, 1), gre].concat());
        assert_eq!(fields(parse_frame(LinkType::Raw, &first)).on_key, Some(0x00c0_ffee), "a first fragment");
    }

    /// The Fragment header: a first fragment has the transport header and
    /// its ports; a later one has none, whatever its bytes; both record the
    /// identification and offset; an atomic fragment is a whole datagram.
    #[test]
    fn ipv6_fragments() {
        let tcp = tcp_bytes_with(1234, 25, 9, 0x18, &[], b"mail from");
        let first = ipv6_bytes(A6, B6, 60, &[ext_header(60, 44, 0), fragment_header(6, 0, true, 0xdead_beef), tcp.clone()].concat());
        let f = fields(parse_frame(LinkType::Raw, &first));
        assert_eq!((f.proto, f.sport, f.dport, f.has_ports, f.payload_len), (6, 1234, 25, true, 9));
        assert_eq!(f.fragment, Some(Fragment { id: 0xdead_beef, offset: 0, more: true }));
        for (offset, more) in [(1u16, true), (185, false), (0x1fff, true)] {
            let later = ipv6_bytes(A6, B6, 44, &[fragment_header(6, offset, more, 0xdead_beef), tcp.clone()].concat());
            let f = fields(parse_frame(LinkType::Raw, &later));
            assert_eq!((f.proto, f.has_ports, f.sport, f.dport, f.tcp_flags, f.seq), (6, false, 0, 0, 0, 0), "offset {offset}");
            assert_eq!(f.fragment, Some(Fragment { id: 0xdead_beef, offset, more }));
            assert_eq!(&later[f.payload_start as usize..], &tcp[..], "the fragment's data is its payload");
            // Its data is not read as headers: a later fragment "holding" ten extension headers is fine.
            let junk = ipv6_chain(A6, B6, &[44; 1], 60, &[60, 200, 0, 0]);
            let mut j = junk.clone();
            j[42..44].copy_from_slice(&(offset << 3).to_be_bytes());
            assert_eq!(fields(parse_frame(LinkType::Raw, &j)).proto, 60);
        }
        // Atomic: offset 0, no more fragments.
        let atomic = ipv6_bytes(A6, B6, 44, &[fragment_header(6, 0, false, 5), tcp.clone()].concat());
        let f = fields(parse_frame(LinkType::Raw, &atomic));
        assert_eq!((f.has_ports, f.fragment), (true, None));
        // A first fragment whose chain is cut off by its end (RFC 7112): a
        // packet without ports, its proto the header where the chain stops.
        let cut = ipv6_bytes(A6, B6, 44, &[fragment_header(60, 0, true, 7), vec![6, 4, 0, 0, 0, 0, 0, 0]].concat());
        let f = fields(parse_frame(LinkType::Raw, &cut));
        assert_eq!((f.proto, f.has_ports, f.payload_len), (60, false, 0));
        assert_eq!(f.fragment, Some(Fragment { id: 7, offset: 0, more: true }));
        // And its transport header cut off: no ports either.
        let short = ipv6_bytes(A6, B6, 44, &[fragment_header(6, 0, true, 7), tcp[..12].to_vec()].concat());
        assert!(!fields(parse_frame(LinkType::Raw, &short)).has_ports);
        // A Fragment header cut off is no fragment: a packet without ports, stopped at it.
        let f = fields(parse_frame(LinkType::Raw, &first[..40 + 8 + 5]));
        assert_eq!((f.proto, f.has_ports, f.fragment), (44, false, None));
    }

    /// Jumbograms and IPv4-mapped addresses are not packets of the window;
    /// other special addresses are.
    #[test]
    fn ipv6_jumbograms_and_mapped_addresses() {
        // A jumbogram: payload length 0 and a Jumbo Payload option.
        let mut hbh = vec![6, 0, 0xc2, 4];
        hbh.extend_from_slice(&100_000u32.to_be_bytes());
        let mut jumbo = ipv6_bytes(A6, B6, 0, &[hbh, tcp_bytes(1, 2, 3, b"x")].concat());
        jumbo[4..6].copy_from_slice(&[0, 0]);
        assert_eq!(parse_frame(LinkType::Raw, &jumbo), Parsed::Unparsed);
        let mapped_a = mapped(A);
        for (s, d) in [(mapped_a, B6), (A6, mapped_a), (mapped_a, mapped(B))] {
            let ip = ipv6_bytes(s, d, 17, &udp_bytes(1, 2, b"x"));
            assert_eq!(parse_frame(LinkType::Raw, &ip), Parsed::NotIp, "{s:#x} -> {d:#x}");
            assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x86dd, &ip)), Parsed::NotIp);
        }
        // ::1, ::, NAT64's 64:ff9b::/96 and IPv4-compatible ::a.b.c.d are IPv6.
        for a in [1u128, 0, 0x0064_ff9b << 96 | u128::from(A), u128::from(A), 0xfffe << 32 | u128::from(A)] {
            let f = fields(parse_frame(LinkType::Raw, &ipv6_bytes(a, B6, 17, &udp_bytes(1, 2, b"x"))));
            assert_eq!((f.src, f.v6), (a, true));
        }
        assert!(is_mapped(mapped(0)) && is_mapped(mapped(u32::MAX)) && !is_mapped(1 << 48 | mapped(1)));
    }

    /// Hostile frames: every cut and every byte value at every header
    /// position of a long chain, never a panic, payloads inside the frame.
    #[test]
    fn hostile_ipv6_frames_never_panic() {
        let base = ipv6_chain(A6, B6, &[0, 60, 43, 44, 51, 60], 6, &tcp_bytes(1, 2, 3, b"payload"));
        for i in 0..base.len().min(120) {
            for b in [0u8, 1, 6, 17, 43, 44, 51, 59, 60, 0x7f, 0x80, 0xff] {
                let mut x = base.clone();
                x[i] = b;
                for cut in [x.len(), x.len() - 3, 60, 41] {
                    let frame = &x[..cut.min(x.len())];
                    if let Parsed::Packet(f) = parse_frame(LinkType::Raw, frame) {
                        assert!(f.payload_start as usize + f.payload_len as usize <= frame.len());
                    }
                }
            }
        }
    }
}

/// The parser before it was written by hand (etherparse's header slices),
/// and its IPv6 counterpart on etherparse's IPv6 header slices under the
/// same rules: the oracle of `hand_parser_equals_etherparse`.
#[cfg(test)]
mod oracle {
    use super::{
        is_mapped, Fields, Fragment, Parsed, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN, MAX_EXT_HEADERS, MAX_VLAN_TAGS, PROTO_GRE,
        PROTO_TCP, PROTO_UDP,
    };
    use etherparse::ip_number::{AUTH, IPV6_DEST_OPTIONS, IPV6_FRAG, IPV6_HOP_BY_HOP, IPV6_ROUTE};
    use etherparse::{
        Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice,
        SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice,
    };
    use vinet_checker::mapped;

    pub(super) fn ethernet(frame: &[u8]) -> Parsed {
        let Ok(eth) = Ethernet2HeaderSlice::from_slice(frame) else { return Parsed::Unparsed };
        let mut ty = eth.ether_type().0;
        let mut off = eth.slice().len();
        let mut tags = 0;
        while ETHERTYPE_VLAN.contains(&ty) {
            tags += 1;
            if tags > MAX_VLAN_TAGS {
                return Parsed::Unparsed;
            }
            let Some(rest) = frame.get(off..) else { return Parsed::Unparsed };
            let Ok(vlan) = SingleVlanHeaderSlice::from_slice(rest) else { return Parsed::Unparsed };
            ty = vlan.ether_type().0;
            off += vlan.slice().len();
        }
        match ty {
            ETHERTYPE_IPV4 => ipv4(frame, off),
            ETHERTYPE_IPV6 => ipv6(frame, off),
            _ => Parsed::NotIp,
        }
    }

    /// The etherparse-based parser the hand-written one replaced.
    pub(super) fn ipv4(frame: &[u8], off: usize) -> Parsed {
        let Some(ip) = frame.get(off..) else { return Parsed::Unparsed };
        let Ok(h) = Ipv4HeaderSlice::from_slice(ip) else { return Parsed::Unparsed };
        let hlen = h.slice().len();
        let total = h.total_len() as usize;
        if total < hlen {
            return Parsed::Unparsed;
        }
        let ip_len = total.min(ip.len());
        let ip = &ip[..ip_len];
        let src = mapped(u32::from_be_bytes(h.source()));
        let dst = mapped(u32::from_be_bytes(h.destination()));
        let (offset, more) = (h.fragments_offset().value(), h.more_fragments());
        let fragment = (offset != 0 || more).then(|| Fragment { id: u32::from(h.identification()), offset, more });
        let f = Fields { src, dst, proto: h.protocol().0, fragment, ..Fields::default() };
        upper(f, off, ip, hlen, offset == 0)
    }

    /// IPv6 on etherparse's header slices, one extension header at a time
    /// (its `Ipv6ExtensionsSlice` has no bound on the chain and reads a later
    /// fragment's data as headers; vinet does neither).
    pub(super) fn ipv6(frame: &[u8], off: usize) -> Parsed {
        let Some(ip) = frame.get(off..) else { return Parsed::Unparsed };
        let Ok(h) = Ipv6HeaderSlice::from_slice(ip) else { return Parsed::Unparsed };
        let plen = usize::from(h.payload_length());
        if plen == 0 {
            return Parsed::Unparsed;
        }
        let ip = &ip[..(40 + plen).min(ip.len())];
        let (src, dst) = (u128::from_be_bytes(h.source()), u128::from_be_bytes(h.destination()));
        if is_mapped(src) || is_mapped(dst) {
            return Parsed::NotIp;
        }
        let mut f = Fields { src, dst, v6: true, ..Fields::default() };
        let mut next = h.next_header();
        let mut at = 40;
        let mut count = 0;
        /// Why a header was not read: cut off (a length error) or malformed.
        enum Bad {
            Cut,
            Malformed,
        }
        loop {
            let rest = &ip[at..];
            let header: Result<(usize, etherparse::IpNumber), Bad> = match next {
                IPV6_HOP_BY_HOP if count > 0 => Err(Bad::Malformed),
                IPV6_HOP_BY_HOP | IPV6_ROUTE | IPV6_DEST_OPTIONS => {
                    Ipv6RawExtHeaderSlice::from_slice(rest).map(|s| (s.slice().len(), s.next_header())).map_err(|_| Bad::Cut)
                }
                IPV6_FRAG => Ipv6FragmentHeaderSlice::from_slice(rest).map(|s| (s.slice().len(), s.next_header())).map_err(|_| Bad::Cut),
                AUTH => IpAuthHeaderSlice::from_slice(rest).map(|s| (s.slice().len(), s.next_header())).map_err(|e| match e {
                    etherparse::err::ip_auth::HeaderSliceError::Len(_) => Bad::Cut,
                    etherparse::err::ip_auth::HeaderSliceError::Content(_) => Bad::Malformed,
                }),
                _ => break,
            };
            count += 1;
            let (len, after) = match header {
                Ok(x) if count <= MAX_EXT_HEADERS => x,
                _ => {
                    f.proto = next.0;
                    return super::no_transport(f, off, ip.len());
                }
            };
            if next == IPV6_FRAG {
                let Ok(fh) = Ipv6FragmentHeaderSlice::from_slice(rest) else { return Parsed::Unparsed };
                let (offset, more) = (fh.fragment_offset().value(), fh.more_fragments());
                if offset != 0 || more {
                    f.fragment = Some(Fragment { id: fh.identification(), offset, more });
                }
                if offset != 0 {
                    f.proto = after.0;
                    return upper(f, off, ip, at + len, false);
                }
            }
            next = after;
            at += len;
        }
        f.proto = next.0;
        upper(f, off, ip, at, true)
    }

    /// The upper layer (as `super::upper`), on etherparse's TCP and UDP slices.
    fn upper(mut f: Fields, off: usize, ip: &[u8], at: usize, first: bool) -> Parsed {
        let ip_len = ip.len();
        let l4 = &ip[at..];
        let mut start = at;
        let proto = f.proto;
        if first && proto == PROTO_TCP {
            let Ok(t) = TcpHeaderSlice::from_slice(l4) else { return super::no_transport(f, off, ip_len) };
            f.sport = t.source_port();
            f.dport = t.destination_port();
            f.seq = t.sequence_number();
            // From etherparse's flag accessors, not the byte: an independent reading.
            let flags = [t.fin(), t.syn(), t.rst(), t.psh(), t.ack(), t.urg(), t.ece(), t.cwr()];
            f.tcp_flags = flags.iter().enumerate().fold(0u8, |b, (i, &on)| b | u8::from(on) << i);
            f.has_ports = true;
            start += t.slice().len();
        } else if first && proto == PROTO_UDP {
            let Ok(u) = UdpHeaderSlice::from_slice(l4) else { return super::no_transport(f, off, ip_len) };
            f.sport = u.source_port();
            f.dport = u.destination_port();
            f.has_ports = true;
            start += u.slice().len();
        } else if first && proto == PROTO_GRE {
            // RFC 2784 and 2890, read field by field: C, R, K, S, then the reserved bits and
            // the version (0); the key follows the checksum word when C is set.
            let (Some(&b0), Some(&b1)) = (l4.first(), l4.get(1)) else { return finish(f, off, start, ip_len) };
            let (checksum, key) = (b0 & 0b1000_0000 != 0, b0 & 0b0010_0000 != 0);
            let version = b1 & 0b0000_0111;
            let at = 4 + 4 * usize::from(checksum);
            if key && version == 0 {
                f.on_key = l4.get(at..at + 4).map(|k| u32::from_be_bytes([k[0], k[1], k[2], k[3]]));
            }
        }
        finish(f, off, start, ip_len)
    }

    fn finish(mut f: Fields, off: usize, start: usize, ip_len: usize) -> Parsed {
        // Frames are at most a few hundred KiB (the capture reader's buffer is
        // 8 MB), so offsets fit in u32; a frame that does not is refused.
        let (Ok(s), Ok(l)) = (u32::try_from(off + start), u32::try_from(ip_len - start)) else {
            return Parsed::Unparsed;
        };
        f.payload_start = s;
        f.payload_len = l;
        Parsed::Packet(f)
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Ethernet (0 to 2 VLAN tags) / IPv4 / TCP, UDP or other frames, some
    /// header bytes overwritten, then cut anywhere.
    fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![6u8, 17, 1, 47]),
            0usize..3,
            prop::collection::vec((0usize..80, any::<u8>()), 0..6),
            0usize..120,
            prop::collection::vec(any::<u8>(), 0..40),
            (any::<u8>(), 0usize..4, prop::sample::select(vec![0u16, 0, 0x2000, 1, 0x1fff])),
        )
            .prop_map(|(proto, tags, flips, cut, payload, (flags, option_words, fragment))| {
                let l4 = upper_bytes(proto, flags, option_words, payload);
                let mut inner = tests::ipv4_bytes(0x0102_0304, 0x0a00_0007, proto, &l4);
                inner[6..8].copy_from_slice(&fragment.to_be_bytes());
                mangle(tests::eth(if tags > 0 { 0x8100 } else { 0x0800 }, &tag(inner, tags, 0x0800)), flips, cut)
            })
    }

    /// The upper layer of a generated frame.
    fn upper_bytes(proto: u8, flags: u8, option_words: usize, payload: Vec<u8>) -> Vec<u8> {
        match proto {
            6 => tests::tcp_bytes_with(1, 2, 3, flags, &vec![1; 4 * option_words], &payload),
            17 => tests::udp_bytes(1, 2, &payload),
            // GRE: the flag byte (C, K and the rest at random), version 0 or not, a
            // checksum word, a key and a sequence number, then the payload.
            47 => [&[flags, (option_words as u8) & 1, 0x08, 0x00][..], &[0, 0, 0, 0, 0, 0xc0, 0xff, 0xee, 0, 0, 0, 9], &payload].concat(),
            _ => payload,
        }
    }

    /// `inner` behind `tags` VLAN tags (the innermost naming `ty`); the
    /// Ethernet type is then 0x8100 when there are tags.
    fn tag(mut inner: Vec<u8>, tags: usize, ty: u16) -> Vec<u8> {
        for k in 0..tags {
            let t = if k == 0 { ty } else { 0x8100 };
            inner = [&[0, 42][..], &t.to_be_bytes(), &inner].concat();
        }
        inner
    }

    fn mangle(mut frame: Vec<u8>, flips: Vec<(usize, u8)>, cut: usize) -> Vec<u8> {
        for (i, b) in flips {
            if let Some(x) = frame.get_mut(i) {
                *x = b;
            }
        }
        frame.truncate(cut);
        frame
    }

    /// An IPv6 chain: up to ten extension headers of random kinds and
    /// lengths (a Fragment header with a random offset and M flag), then an
    /// upper layer; sometimes a mapped address or payload length 0.
    fn v6_strategy() -> impl Strategy<Value = Vec<u8>> {
        let ext =
            (prop::sample::select(vec![0u8, 43, 60, 44, 51, 44, 60]), 0u8..3, prop::sample::select(vec![0u16, 0, 1, 90]), any::<bool>());
        (
            prop::sample::select(vec![6u8, 17, 47, 58, 59, 50, 1]),
            prop::collection::vec(ext, 0..11),
            (any::<u8>(), 0usize..4, prop::collection::vec(any::<u8>(), 0..40)),
            prop::sample::select(vec![0u8, 0, 0, 0, 1, 2, 3]),
        )
            .prop_map(|(proto, exts, (flags, option_words, payload), special)| {
                let (mut next, mut rest) = (proto, upper_bytes(proto, flags, option_words, payload));
                for &(kind, words, offset, more) in exts.iter().rev() {
                    let h = match kind {
                        44 => tests::fragment_header(next, offset, more, 0x0102_0304),
                        _ => tests::ext_header(kind, next, words),
                    };
                    rest = [h, rest].concat();
                    next = kind;
                }
                let (src, dst) = match special {
                    1 => (mapped(0x0a00_0001), tests::B6),
                    2 => (tests::A6, mapped(0x0a00_0001)),
                    _ => (tests::A6, tests::B6),
                };
                let mut ip = tests::ipv6_bytes(src, dst, next, &rest);
                if special == 3 {
                    ip[4..6].copy_from_slice(&[0, 0]);
                }
                ip
            })
    }

    /// Ethernet (0 to 2 VLAN tags) / IPv6 frames, mangled and cut.
    fn v6_frame_strategy() -> impl Strategy<Value = Vec<u8>> {
        (v6_strategy(), 0usize..3, prop::collection::vec((0usize..140, any::<u8>()), 0..5), 0usize..220).prop_map(
            |(ip, tags, flips, cut)| mangle(tests::eth(if tags > 0 { 0x8100 } else { 0x86dd }, &tag(ip, tags, 0x86dd)), flips, cut),
        )
    }

    proptest! {
        /// Any bytes, any link type: no panic, and the payload lies in the frame.
        #[test]
        fn any_bytes_parse_safely(data in prop::collection::vec(any::<u8>(), 0..120), link in prop::sample::select(vec![0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276, 105])) {
            if let Parsed::Packet(f) = parse_frame(LinkType::from_raw(link), &data) {
                prop_assert!(f.payload_start as usize + f.payload_len as usize <= data.len());
            }
        }

        /// Valid frames with random corruption of their headers.
        #[test]
        fn corrupted_frames_parse_safely(flips in prop::collection::vec((0usize..60, any::<u8>()), 1..6), cut in 0usize..80) {
            let ip = tests::ipv4_bytes(1, 2, 6, &tests::tcp_bytes(1, 2, 3, b"some payload bytes"));
            let mut frame = tests::eth(0x0800, &ip);
            for (i, b) in flips {
                if let Some(x) = frame.get_mut(i) {
                    *x = b;
                }
            }
            frame.truncate(cut.max(1));
            if let Parsed::Packet(f) = parse_frame(LinkType::Ethernet, &frame) {
                prop_assert!(f.payload_start as usize + f.payload_len as usize <= frame.len());
            }
        }

        /// The hand-written parser answers exactly as the etherparse one
        /// did, on mangled real-looking frames and on any bytes.
        #[test]
        fn hand_parser_equals_etherparse(frame in frame_strategy(), junk in prop::collection::vec(any::<u8>(), 0..70), off in 0usize..30) {
            prop_assert_eq!(ethernet(&frame), oracle::ethernet(&frame));
            prop_assert_eq!(ethernet(&junk), oracle::ethernet(&junk));
            prop_assert_eq!(ipv4(&frame, off), oracle::ipv4(&frame, off));
            prop_assert_eq!(ipv4(&junk, off), oracle::ipv4(&junk, off));
            prop_assert_eq!(ipv6(&junk, off), oracle::ipv6(&junk, off));
        }

        /// The same for IPv6: chains of every kind, mangled and cut.
        #[test]
        fn ipv6_hand_parser_equals_etherparse(frame in v6_frame_strategy(), off in 0usize..30) {
            let hand = ethernet(&frame);
            prop_assert_eq!(hand, oracle::ethernet(&frame));
            prop_assert_eq!(ipv6(&frame, off), oracle::ipv6(&frame, off));
            if let Parsed::Packet(f) = hand {
                prop_assert!(f.payload_start as usize + f.payload_len as usize <= frame.len());
            }
        }

        /// A whole IPv6 frame of at most eight extension headers, none a
        /// fragment, reads as etherparse's whole-packet slicer reads it.
        #[test]
        fn whole_ipv6_packets_read_as_etherparse_slices_them(ip in v6_strategy()) {
            let exts = ip[6];
            let Parsed::Packet(f) = ipv6(&ip, 0) else { return Ok(()) };
            let Ok(s) = etherparse::SlicedPacket::from_ip(&ip) else { return Ok(()) };
            let Some(etherparse::NetSlice::Ipv6(v6)) = &s.net else { return Err(TestCaseError::fail("not IPv6")) };
            // (A chain vinet stops at, a packet without ports whose proto is an extension header, it
            // reads no further than that; etherparse does.)
            let stopped = matches!(f.proto, EXT_HOP_BY_HOP | EXT_ROUTING | EXT_DEST_OPTS | EXT_FRAGMENT | EXT_AUTH);
            if v6.payload().fragmented || f.fragment.is_some() || stopped {
                return Ok(());
            }
            prop_assert_eq!(f.proto, v6.payload().ip_number.0, "next headers from {}", exts);
            prop_assert_eq!((f.src, f.dst), (u128::from_be_bytes(v6.header().source()), u128::from_be_bytes(v6.header().destination())));
            match &s.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => {
                    prop_assert_eq!((f.has_ports, f.sport, f.dport, f.seq), (true, t.source_port(), t.destination_port(), t.sequence_number()));
                    prop_assert_eq!(&ip[f.payload_start as usize..][..f.payload_len as usize], t.payload());
                }
                Some(etherparse::TransportSlice::Udp(u)) => {
                    prop_assert_eq!((f.has_ports, f.sport, f.dport), (true, u.source_port(), u.destination_port()));
                    prop_assert_eq!(&ip[f.payload_start as usize..][..f.payload_len as usize], u.payload());
                }
                _ => {
                    prop_assert!(!f.has_ports);
                    prop_assert_eq!(&ip[f.payload_start as usize..][..f.payload_len as usize], v6.payload().payload);
                }
            }
        }
    }

    /// And on every frame of the shared capture corpus (401 files, many
    /// malformed on purpose), at every offset of the first 64 bytes.
    #[test]
    fn hand_parser_equals_etherparse_on_the_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pcap");
        let (mut frames, mut v6) = (0, 0);
        for entry in std::fs::read_dir(&dir).expect("capture corpus") {
            let Ok(mut r) = crate::pcap::CaptureReader::open(entry.expect("entry").path()) else { continue };
            while let Some(Ok(f)) = r.next_frame() {
                frames += 1;
                assert_eq!(ethernet(f.data), oracle::ethernet(f.data));
                v6 += usize::from(matches!(parse_frame(f.link, f.data), Parsed::Packet(p) if p.v6));
                for off in 0..f.data.len().min(64) {
                    assert_eq!(ipv4(f.data, off), oracle::ipv4(f.data, off));
                    assert_eq!(ipv6(f.data, off), oracle::ipv6(f.data, off));
                }
            }
        }
        assert!(frames > 3000);
        assert!(v6 > 100, "{v6} IPv6 packets in the corpus");
    }
}
