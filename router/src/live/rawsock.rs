//! Generated packets leave through raw sockets of `IPPROTO_RAW`, one a
//! family, so that the packet's own IP header is sent as the VM built it,
//! toward its destination, routed by the kernel like any packet the router
//! originates:
//!
//! - **IPv4**: `AF_INET`, `SOCK_RAW`, `IPPROTO_RAW` (which implies
//!   `IP_HDRINCL`); the kernel fills in the header checksum, and an
//!   identification left 0.
//! - **IPv6**: `AF_INET6`, `SOCK_RAW`, `IPPROTO_RAW`, which on Linux implies
//!   `IPV6_HDRINCL` (the kernel sends the 40-byte header and what follows
//!   as they are; the UDP checksum, mandatory over IPv6, is the VM's). The
//!   destination given to `sendto` is the header's, so the route is the
//!   packet's own. The kernel does not fragment such packets: one longer
//!   than the route's MTU is refused (`EMSGSIZE`), and counted as a failed
//!   generation by the caller.
//!
//! The IPv6 socket is opened beside the IPv4 one; on a kernel without IPv6
//! it cannot be, and an IPv6 packet is then refused like any other send
//! that fails.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_RAW.
const IPPROTO_RAW: i32 = 255;

/// A raw sender of IPv4 and IPv6 packets.
pub struct RawSender {
    v4: Socket,
    /// Why there is none, on a kernel without IPv6 (the error of a send).
    v6: Result<Socket, String>,
}

impl RawSender {
    /// Open the sockets (needs CAP_NET_RAW). The IPv4 one must open; the
    /// IPv6 one may not (a kernel without IPv6), and then IPv6 sends fail.
    pub fn open() -> std::io::Result<RawSender> {
        let v4 = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))?;
        let v6 = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(IPPROTO_RAW))).map_err(|e| e.to_string());
        Ok(RawSender { v4, v6 })
    }

    /// Send one IPv4 or IPv6 packet (by its version) to the destination in
    /// its header.
    pub fn send(&self, packet: &[u8]) -> std::io::Result<()> {
        let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
        match packet.first().map(|b| b >> 4) {
            Some(4) if packet.len() >= 20 => {
                let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
                self.v4.send_to(packet, &SockAddr::from(SocketAddrV4::new(dst, 0)))?;
                Ok(())
            }
            Some(6) if packet.len() >= 40 => {
                let v6 = self.v6.as_ref().map_err(|e| std::io::Error::other(format!("no raw IPv6 socket: {e}")))?;
                let dst: [u8; 16] = packet[24..40].try_into().map_err(|_| invalid("short IPv6 header"))?;
                // Port 0: a raw IPPROTO_RAW socket takes none (the header is ours).
                v6.send_to(packet, &SockAddr::from(SocketAddrV6::new(Ipv6Addr::from(dst), 0, 0, 0)))?;
                Ok(())
            }
            _ => Err(invalid("not an IPv4 or IPv6 packet")),
        }
    }
}
