//! Generated packets leave through a raw IPv4 socket (`IPPROTO_RAW`, so the
//! packet's own IPv4 header is sent as built by the VM) toward their
//! destination, routed by the kernel like any packet the router originates.

use std::net::{Ipv4Addr, SocketAddrV4};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_RAW.
const IPPROTO_RAW: i32 = 255;

/// A raw sender.
pub struct RawSender(Socket);

impl RawSender {
    /// Open the socket (needs CAP_NET_RAW).
    pub fn open() -> std::io::Result<RawSender> {
        Ok(RawSender(Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))?))
    }

    /// Send one IPv4 packet to the destination in its header.
    pub fn send(&self, ipv4: &[u8]) -> std::io::Result<()> {
        if ipv4.len() < 20 || ipv4[0] >> 4 != 4 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not an IPv4 packet"));
        }
        let dst = Ipv4Addr::new(ipv4[16], ipv4[17], ipv4[18], ipv4[19]);
        self.0.send_to(ipv4, &SockAddr::from(SocketAddrV4::new(dst, 0)))?;
        Ok(())
    }
}
