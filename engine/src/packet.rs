//! Frame parsing: from a captured frame of some link type to the packet fields
//! of docs/SEMANTICS.md (`src`, `dst`, `proto`, `sport`, `dport`, `seq`,
//! `payload`).
//!
//! This is the hot path of the router, so it parses only what a program can
//! see: the link header (to find the network layer), the IPv4 header, and the
//! first bytes of a TCP or UDP header. It never allocates and never indexes a
//! slice unchecked. Headers are read by hand after length checks that are
//! exactly those of etherparse's `*HeaderSlice` types (which this code used
//! first; a property test holds the two to the same answers): the hand
//! version does the same checks in fewer instructions.
//!
//! Outcomes, as SEMANTICS "The window" defines them:
//! - [`Parsed::Ipv4`]: the frame is a packet of the window;
//! - [`Parsed::NotIpv4`]: a well-formed link layer carrying something else
//!   (IPv6, ARP, LLC, ...);
//! - [`Parsed::Unparsed`]: an unknown link type, or a header that is cut off
//!   or malformed.
//!
//! Choices the semantics leaves to the parser, made here once:
//! - **Truncation.** The IPv4 packet's bytes are the captured bytes, clipped to
//!   the header's total length (Ethernet padding is not payload). A payload cut
//!   short by the snap length is clipped; an IPv4 header cut short makes the
//!   frame `Unparsed`, but a TCP or UDP header cut short does not: a packet
//!   whose IPv4 header is valid is subject to its destination's programs
//!   whatever follows it, so it is a packet of the window, with `seq` 0, no
//!   payload and **no ports** ([`Fields::has_ports`] false; a firewall by
//!   address drops it; it carries no word past a spam filter). A packet
//!   without ports is never "port 0": GROUP_BY_SOURCE_PORT,
//!   GROUP_BY_DESTINATION_PORT and TCP_FLAGS never select it, and
//!   DISTINCT_DESTINATION_PORTS does not count it. The whole transport
//!   header must be captured: 8 bytes for UDP; for TCP 20 bytes and the whole
//!   header its data offset gives (a data offset below 5 means no ports).
//! - **Total length shorter than the IPv4 header is `Unparsed`**, 0 included.
//!   Linux GSO / BIG TCP captures write 0 for host-stack super-packets over
//!   64 KiB; tcpdump reads those as "as long as the capture", but such a
//!   packet never crosses a wire, and its payload could not be carried by a
//!   GENERATEd datagram, so vinet forwards it untouched instead. Every IPv4
//!   packet of a window thus has a payload of at most 65,515 bytes.
//! - **Fragments.** A non-first fragment (offset != 0) has no transport header:
//!   it has no ports and no TCP flags (`sport`, `dport`, `seq` and `tcp_flags`
//!   are 0), and its payload is the fragment's IP payload. A first fragment
//!   has ports when it holds the whole transport header, as any packet.
//! - **TCP flags** are byte 13 of a whole TCP header (FIN = 1 ... CWR = 128);
//!   a packet has flags exactly when it is TCP and has ports.
//! - **UDP** payload is bounded by the IP packet, not by the UDP length field.
//! - **Linux cooked capture (SLL, SLL2)** is read by hand: etherparse's
//!   `LinuxSllHeaderSlice` refuses hardware types (loopback, tun, PPP) that do
//!   carry IPv4 in real captures.

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

/// The fields of one IPv4 packet (SEMANTICS "The window"). The payload is a
/// byte range of the frame it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fields {
    /// Source address, host byte order.
    pub src: u32,
    /// Destination address, host byte order.
    pub dst: u32,
    /// IP protocol number.
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
    /// Offset of the payload in the frame.
    pub payload_start: u32,
    /// Length of the payload (clipped to the captured bytes).
    pub payload_len: u32,
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An IPv4 packet, in the window.
    Ipv4(Fields),
    /// A well-formed frame that does not carry IPv4.
    NotIpv4,
    /// A frame vinet cannot parse.
    Unparsed,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Most VLAN tags followed before a frame is given up as `Unparsed`.
const MAX_VLAN_TAGS: usize = 8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;

/// Parse a frame of link type `link`.
#[inline]
pub fn parse_frame(link: LinkType, frame: &[u8]) -> Parsed {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::Raw => match frame.first().map(|b| b >> 4) {
            Some(4) => ipv4(frame, 0),
            Some(6) => Parsed::NotIpv4,
            _ => Parsed::Unparsed,
        },
        LinkType::Ipv4 => ipv4(frame, 0),
        LinkType::Ipv6 => match frame.first().map(|b| b >> 4) {
            Some(6) => Parsed::NotIpv4,
            _ => Parsed::Unparsed,
        },
        LinkType::Null | LinkType::Loop => {
            let Some(fam) = frame.get(..4) else { return Parsed::Unparsed };
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            // LOOP is network order; NULL is the capturing host's order, so
            // either. AF_INET is 2 on every system.
            let inet = match link {
                LinkType::Loop => u32::from_be_bytes(fam) == 2,
                _ => u32::from_le_bytes(fam) == 2 || u32::from_be_bytes(fam) == 2,
            };
            if inet {
                ipv4(frame, 4)
            } else {
                Parsed::NotIpv4
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
    if hatype != ARPHRD_NETLINK && proto == ETHERTYPE_IPV4 {
        ipv4(frame, off)
    } else {
        Parsed::NotIpv4
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
    if ty == ETHERTYPE_IPV4 {
        ipv4(frame, off)
    } else {
        Parsed::NotIpv4
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parse the IPv4 packet that starts at `off` of `frame`. Headers are read
/// by hand, after exactly the length and content checks of etherparse's
/// header slices (which this replaced on the hot path; a property test holds
/// the two to the same answers).
/// A packet whose IPv4 header is valid but whose TCP or UDP header is cut
/// short: it is still a packet of the window (its destination's programs see
/// it, so a firewall drops it), without ports or flags, `seq` 0 and no payload.
fn no_transport(mut f: Fields, off: usize, ip_len: usize) -> Parsed {
    (f.sport, f.dport, f.seq, f.payload_len) = (0, 0, 0, 0);
    (f.has_ports, f.tcp_flags) = (false, 0);
    match u32::try_from(off + ip_len) {
        Ok(s) => {
            f.payload_start = s;
            Parsed::Ipv4(f)
        }
        Err(_) => Parsed::Unparsed,
    }
}

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
    let ip_len = total.min(ip.len());
    let proto = ip[9];
    let mut f = Fields { src: be32(ip, 12), dst: be32(ip, 16), proto, ..Fields::default() };
    let first_fragment = be16(ip, 6) & 0x1fff == 0;
    let l4 = &ip[hlen..ip_len];
    let mut start = hlen;
    if first_fragment && proto == PROTO_TCP {
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
    } else if first_fragment && proto == PROTO_UDP {
        if l4.len() < 8 {
            return no_transport(f, off, ip_len);
        }
        f.sport = be16(l4, 0);
        f.dport = be16(l4, 2);
        f.has_ports = true;
        start += 8;
    } else if first_fragment && proto == PROTO_GRE && l4.len() >= 8 {
        // Flags C (a checksum word before the key), K (a key), version 0.
        let flags = be16(l4, 0);
        let at = if flags & 0x8000 != 0 { 8 } else { 4 };
        if flags & 0x2000 != 0 && flags & 7 == 0 && l4.len() >= at + 4 {
            f.on_key = Some(be32(l4, at));
        }
    }
    // Frames are at most a few hundred KiB (the capture reader's buffer is
    // 8 MB), so offsets fit in u32; a frame that does not is refused.
    let (Ok(s), Ok(l)) = (u32::try_from(off + start), u32::try_from(ip_len - start)) else {
        return Parsed::Unparsed;
    };
    f.payload_start = s;
    f.payload_len = l;
    Parsed::Ipv4(f)
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

    fn fields(p: Parsed) -> Fields {
        match p {
            Parsed::Ipv4(f) => f,
            other => panic!("expected IPv4, got {other:?}"),
        }
    }

    const A: u32 = 0x0a00_0001;
    const B: u32 = 0x0a00_0002;

    #[test]
    fn ethernet_tcp() {
        let ip = ipv4_bytes(A, B, 6, &tcp_bytes(1234, 80, 77, b"hello"));
        let frame = eth(0x0800, &ip);
        let f = fields(parse_frame(LinkType::Ethernet, &frame));
        assert_eq!((f.src, f.dst, f.proto, f.sport, f.dport, f.seq), (A, B, 6, 1234, 80, 77));
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
        assert_eq!(f.dst, B);
        // A tag cut off is unparsed; IPv6 and ARP are not IPv4.
        assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x8100, &[0, 1])), Parsed::Unparsed);
        assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x86dd, &[0x60; 40])), Parsed::NotIpv4);
        assert_eq!(parse_frame(LinkType::Ethernet, &eth(0x0806, &[0; 28])), Parsed::NotIpv4);
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
        assert_eq!(fields(parse_frame(LinkType::Null, &null_le)).dst, B);
        let mut null_be = 2u32.to_be_bytes().to_vec();
        null_be.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::Null, &null_be)).dst, B);
        assert_eq!(fields(parse_frame(LinkType::Loop, &null_be)).dst, B);
        let mut v6 = 24u32.to_le_bytes().to_vec();
        v6.extend_from_slice(&[0x60; 40]);
        assert_eq!(parse_frame(LinkType::Null, &v6), Parsed::NotIpv4);
        let mut sll = vec![0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::LinuxSll, &sll)).src, A);
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        sll2.extend_from_slice(&ip);
        assert_eq!(fields(parse_frame(LinkType::LinuxSll2, &sll2)).src, A);
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
        assert_eq!((f.src, f.dst, f.proto, f.sport, f.dport, f.seq, f.payload_len), (A, B, 6, 0, 0, 0, 0));
        assert_eq!((f.has_ports, f.tcp_flags), (false, 0));
        let udp = ipv4_bytes(A, B, 17, &udp_bytes(1, 2, b"word"));
        let f = fields(parse_frame(LinkType::Raw, &udp[..24]));
        assert_eq!((f.src, f.proto, f.sport, f.payload_len, f.has_ports), (A, 17, 0, 0, false));
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
}

/// The parser before it was written by hand (etherparse's header slices):
/// the oracle of `hand_parser_equals_etherparse`.
#[cfg(test)]
mod oracle {
    use super::{Fields, Parsed, ETHERTYPE_IPV4, ETHERTYPE_VLAN, MAX_VLAN_TAGS, PROTO_GRE, PROTO_TCP, PROTO_UDP};
    use etherparse::{Ethernet2HeaderSlice, Ipv4HeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice, UdpHeaderSlice};

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
        if ty == ETHERTYPE_IPV4 {
            ipv4(frame, off)
        } else {
            Parsed::NotIpv4
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
        let [a, b, c, d] = h.source();
        let src = u32::from_be_bytes([a, b, c, d]);
        let [a, b, c, d] = h.destination();
        let dst = u32::from_be_bytes([a, b, c, d]);
        let proto = h.protocol().0;
        let mut f = Fields { src, dst, proto, ..Fields::default() };
        let first_fragment = h.fragments_offset().value() == 0;
        let l4 = &ip[hlen..];
        let mut start = hlen;
        if first_fragment && proto == PROTO_TCP {
            let Ok(t) = TcpHeaderSlice::from_slice(l4) else { return super::no_transport(f, off, ip_len) };
            f.sport = t.source_port();
            f.dport = t.destination_port();
            f.seq = t.sequence_number();
            // From etherparse's flag accessors, not the byte: an independent reading.
            let flags = [t.fin(), t.syn(), t.rst(), t.psh(), t.ack(), t.urg(), t.ece(), t.cwr()];
            f.tcp_flags = flags.iter().enumerate().fold(0u8, |b, (i, &on)| b | u8::from(on) << i);
            f.has_ports = true;
            start += t.slice().len();
        } else if first_fragment && proto == PROTO_UDP {
            let Ok(u) = UdpHeaderSlice::from_slice(l4) else { return super::no_transport(f, off, ip_len) };
            f.sport = u.source_port();
            f.dport = u.destination_port();
            f.has_ports = true;
            start += u.slice().len();
        } else if first_fragment && proto == PROTO_GRE {
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
        Parsed::Ipv4(f)
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
                let l4 = match proto {
                    6 => tests::tcp_bytes_with(1, 2, 3, flags, &vec![1; 4 * option_words], &payload),
                    17 => tests::udp_bytes(1, 2, &payload),
                    // GRE: the flag byte (C, K and the rest at random), version 0 or not, a
                    // checksum word, a key and a sequence number, then the payload.
                    47 => [&[flags, (option_words as u8) & 1, 0x08, 0x00][..], &[0, 0, 0, 0, 0, 0xc0, 0xff, 0xee, 0, 0, 0, 9], &payload]
                        .concat(),
                    _ => payload,
                };
                let mut inner = tests::ipv4_bytes(0x0102_0304, 0x0a00_0007, proto, &l4);
                inner[6..8].copy_from_slice(&fragment.to_be_bytes());
                for _ in 0..tags {
                    let mut t = vec![0, 42, 0x08, 0x00];
                    t.extend_from_slice(&inner);
                    inner = t;
                }
                let mut frame = tests::eth(if tags > 0 { 0x8100 } else { 0x0800 }, &inner);
                for (i, b) in flips {
                    if let Some(x) = frame.get_mut(i) {
                        *x = b;
                    }
                }
                frame.truncate(cut);
                frame
            })
    }

    proptest! {
        /// Any bytes, any link type: no panic, and the payload lies in the frame.
        #[test]
        fn any_bytes_parse_safely(data in prop::collection::vec(any::<u8>(), 0..120), link in prop::sample::select(vec![0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276, 105])) {
            if let Parsed::Ipv4(f) = parse_frame(LinkType::from_raw(link), &data) {
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
            if let Parsed::Ipv4(f) = parse_frame(LinkType::Ethernet, &frame) {
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
        }
    }

    /// And on every frame of the shared capture corpus (401 files, many
    /// malformed on purpose), at every offset of the first 64 bytes.
    #[test]
    fn hand_parser_equals_etherparse_on_the_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pcap");
        let mut frames = 0;
        for entry in std::fs::read_dir(&dir).expect("capture corpus") {
            let Ok(mut r) = crate::pcap::CaptureReader::open(entry.expect("entry").path()) else { continue };
            while let Some(Ok(f)) = r.next_frame() {
                frames += 1;
                assert_eq!(ethernet(f.data), oracle::ethernet(f.data));
                for off in 0..f.data.len().min(64) {
                    assert_eq!(ipv4(f.data, off), oracle::ipv4(f.data, off));
                }
            }
        }
        assert!(frames > 3000);
    }
}
