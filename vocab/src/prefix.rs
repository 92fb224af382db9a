//! Addresses and prefixes as text: `10.1.0.0/16`, `2001:db8::/32`, and a bare
//! address as its /32 (IPv4) or /128 (IPv6).
//!
//! vinet has one address space of 128 bits, IPv4 in it as IPv4-mapped IPv6
//! (`::ffff:a.b.c.d`, [`vinet_checker::mapped`]): an IPv4 prefix /n is the
//! /96+n of its mapped network. Text follows the families: an IPv4 address or
//! prefix is written and printed dotted (`10.1.0.0/16`), any other as RFC 5952
//! says (std's `Ipv6Addr` printer: lowercase, leading zeros dropped, the
//! longest run of two or more zero groups as `::`); IPv6 text that names an
//! IPv4-mapped address (`::ffff:10.1.0.7`) is that IPv4 address.
//!
//! One type, one parser, one printer. A prefix's network never has host bits
//! set: [`IpPrefix::new`] and the parser refuse them (the parser suggests
//! the prefix that was probably meant), so a value of the type is always
//! well formed and its fields are private.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use vinet_checker::bytecode::Const;
use vinet_checker::{mapped, netmask};

/// The IPv4 address of an IPv4-mapped address, if it is one.
pub fn v4_of(a: u128) -> Option<u32> {
    (a >> 32 == 0xffff).then_some(a as u32)
}

/// An address as text: IPv4 dotted, any other RFC 5952.
pub fn addr_text(a: u128) -> String {
    match v4_of(a) {
        Some(v4) => Ipv4Addr::from(v4).to_string(),
        None => Ipv6Addr::from(a).to_string(),
    }
}

/// An address from text, IPv4 (`a.b.c.d`) or IPv6 (any form RFC 4291 allows).
pub fn parse_addr(s: &str) -> Option<u128> {
    Some(match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => mapped(a.into()),
        IpAddr::V6(a) => a.into(),
    })
}

/// The canonical constant of an address: `Const::Addr` for IPv4, `Const::Addr6` for the rest.
pub fn addr_const(a: u128) -> Const {
    v4_of(a).map_or(Const::Addr6(a), Const::Addr)
}

/// A prefix of the 128-bit address space: a network address (host byte order,
/// host bits zero) and a length of 0 to 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpPrefix {
    net: u128,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The text is not an address or `address/len`.
    #[error("`{0}` is not an address or prefix (a.b.c.d/len or an IPv6 prefix such as 2001:db8::/32)")]
    Syntax(String),
    /// The length is past the family's (32 for IPv4, 128 for IPv6).
    #[error("`{0}`: the prefix length must be 0 to 32 for IPv4, 0 to 128 for IPv6")]
    Length(String),
    /// The network has bits set beyond the length.
    #[error("`{text}` has host bits set (did you mean {meant}?)")]
    HostBits {
        /// The prefix as given.
        text: String,
        /// The same length with the host bits cleared.
        meant: IpPrefix,
    },
}

impl IpPrefix {
    /// Every address, IPv4 and IPv6: `::/0`.
    pub const ALL: IpPrefix = IpPrefix { net: 0, len: 0 };
    /// Every IPv4 address: `0.0.0.0/0`, that is `::ffff:0:0/96`.
    pub const ALL_V4: IpPrefix = IpPrefix { net: mapped(0), len: 96 };

    /// The prefix `net/len` of the 128-bit space; refused if `len` is over 128 or `net` has host bits.
    pub fn new(net: u128, len: u8) -> Result<IpPrefix, PrefixError> {
        if len > 128 {
            return Err(PrefixError::Length(format!("{}/{len}", addr_text(net))));
        }
        let p = IpPrefix { net: net & netmask(len), len };
        if p.net != net {
            return Err(PrefixError::HostBits { text: IpPrefix { net, len }.to_string(), meant: p });
        }
        Ok(p)
    }

    /// The IPv4 prefix `net/len` (`len` 0 to 32).
    pub fn v4(net: u32, len: u8) -> Result<IpPrefix, PrefixError> {
        if len > 32 {
            return Err(PrefixError::Length(format!("{}/{len}", Ipv4Addr::from(net))));
        }
        IpPrefix::new(mapped(net), len + 96)
    }

    /// One address as a /128 (an IPv4 address's /32).
    pub fn host(addr: u128) -> IpPrefix {
        IpPrefix { net: addr, len: 128 }
    }

    /// The network address, host byte order.
    pub fn net(self) -> u128 {
        self.net
    }

    /// The length in the 128-bit space, 0 to 128 (an IPv4 /n is 96 + n).
    pub fn length(self) -> u8 {
        self.len
    }

    /// Whether this is an IPv4 prefix (inside `::ffff:0:0/96`, at least that long).
    pub fn is_v4(self) -> bool {
        IpPrefix::ALL_V4.covers(self)
    }

    /// The netmask of the length, host byte order.
    pub fn mask(self) -> u128 {
        netmask(self.len)
    }

    /// Whether `addr` (host byte order) is in the prefix.
    pub fn contains(self, addr: u128) -> bool {
        addr & self.mask() == self.net
    }

    /// Whether every address of `inner` is in this prefix.
    pub fn covers(self, inner: IpPrefix) -> bool {
        inner.len >= self.len && self.contains(inner.net)
    }

    /// The canonical constant: `Const::Prefix` for IPv4, `Const::Prefix6` for the rest.
    pub fn to_const(self) -> Const {
        match v4_of(self.net) {
            Some(n) if self.is_v4() => Const::Prefix(n, self.len - 96),
            _ => Const::Prefix6(self.net, self.len),
        }
    }

    /// The prefix of a prefix constant.
    pub fn of_const(c: &Const) -> Option<IpPrefix> {
        c.prefix().and_then(|(n, l)| IpPrefix::new(n, l).ok())
    }
}

impl From<IpPrefix> for (u128, u8) {
    fn from(p: IpPrefix) -> (u128, u8) {
        (p.net, p.len)
    }
}

impl TryFrom<(u128, u8)> for IpPrefix {
    type Error = PrefixError;
    fn try_from((net, len): (u128, u8)) -> Result<IpPrefix, PrefixError> {
        IpPrefix::new(net, len)
    }
}

impl fmt::Display for IpPrefix {
    /// `a.b.c.d/len` for IPv4, `2001:db8::/32` for the rest; always with the length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match v4_of(self.net) {
            Some(n) if self.is_v4() => write!(f, "{}/{}", Ipv4Addr::from(n), self.len - 96),
            _ => write!(f, "{}/{}", Ipv6Addr::from(self.net), self.len),
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// `address/len`, or a bare address as its /32 (IPv4) or /128 (IPv6). The
    /// length is one to three decimal digits; nothing else (no spaces, no
    /// sign) is accepted. IPv6 text in `::ffff:0:0/96` is IPv4: its length
    /// counts the 128 bits (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
    fn from_str(s: &str) -> Result<IpPrefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let (net, v4) = match a.parse::<IpAddr>().map_err(|_| PrefixError::Syntax(s.to_string()))? {
            IpAddr::V4(a) => (mapped(a.into()), true),
            IpAddr::V6(a) => (u128::from(a), false),
        };
        let max = if v4 { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) if (1..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| PrefixError::Length(s.to_string()))?
            }
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => return Err(PrefixError::Length(s.to_string())),
            Some(_) => return Err(PrefixError::Syntax(s.to_string())),
        };
        IpPrefix::new(net, if v4 { len + 96 } else { len }).map_err(|e| match e {
            PrefixError::HostBits { meant, .. } => PrefixError::HostBits { text: s.to_string(), meant },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<IpPrefix, PrefixError> {
        s.parse()
    }

    const DOC: u128 = 0x2001_0db8 << 96; // 2001:db8::

    #[test]
    fn parses_prefixes_and_bare_addresses() {
        assert_eq!(p("10.1.0.0/16").map(<(u128, u8)>::from), Ok((mapped(0x0a01_0000), 112)));
        assert_eq!(p("10.1.0.7"), Ok(IpPrefix::host(mapped(0x0a01_0007))));
        assert_eq!(p("10.1.0.7/32"), p("10.1.0.7"));
        assert_eq!(p("0.0.0.0/0"), Ok(IpPrefix::ALL_V4));
        assert_eq!(p("::/0"), Ok(IpPrefix::ALL));
        assert_eq!(p("255.255.255.255/32").unwrap().net(), mapped(u32::MAX));
        assert_eq!(p("2001:db8::/32").map(<(u128, u8)>::from), Ok((DOC, 32)));
        assert_eq!(p("2001:DB8:0:0::7"), Ok(IpPrefix::host(DOC | 7)));
        assert_eq!(p("::ffff:10.0.0.0/104"), p("10.0.0.0/8"), "IPv4-mapped text is IPv4");
    }

    #[test]
    fn prints_as_the_family_does() {
        for s in ["10.1.0.0/16", "0.0.0.0/0", "::/0", "2001:db8::/32", "2001:db8::7/128", "::fffe:0:0/95", "fe80::/10"] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
        // RFC 5952: lowercase, no leading zeros, the longest zero run compressed, a lone zero group kept.
        assert_eq!(p("2001:0DB8:0000:0000:0001:0000:0000:0001/128").unwrap().to_string(), "2001:db8::1:0:0:1/128");
        assert_eq!(p("2001:db8:0:1:1:1:1:1").unwrap().to_string(), "2001:db8:0:1:1:1:1:1/128");
        assert_eq!(addr_text(DOC | 9), "2001:db8::9");
        assert_eq!(addr_text(mapped(0xcb00_7109)), "203.0.113.9");
        assert_eq!(parse_addr("203.0.113.9"), Some(mapped(0xcb00_7109)));
        assert_eq!(parse_addr("2001:db8::9"), Some(DOC | 9));
        assert_eq!(parse_addr("2001:db8::9::1"), None);
        assert_eq!(addr_const(mapped(7)), Const::Addr(7));
        assert_eq!(addr_const(DOC), Const::Addr6(DOC));
        assert_eq!(p("10.0.0.0/8").unwrap().to_const(), Const::Prefix(0x0a00_0000, 8));
        assert_eq!(p("2001:db8::/32").unwrap().to_const(), Const::Prefix6(DOC, 32));
        assert_eq!(p("::/0").unwrap().to_const(), Const::Prefix6(0, 0));
        assert_eq!(IpPrefix::of_const(&Const::Prefix(0x0a00_0000, 8)), p("10.0.0.0/8").ok());
    }

    #[test]
    fn refusals_say_why() {
        let e = p("10.0.0.1/8").unwrap_err();
        assert_eq!(e.to_string(), "`10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)");
        let e = p("2001:db8::1/32").unwrap_err();
        assert_eq!(e.to_string(), "`2001:db8::1/32` has host bits set (did you mean 2001:db8::/32?)");
        assert_eq!(p("10.1.0.0/33").unwrap_err(), PrefixError::Length("10.1.0.0/33".into()));
        assert_eq!(p("10.1.0.0/100").unwrap_err(), PrefixError::Length("10.1.0.0/100".into()));
        assert_eq!(p("2001:db8::/129").unwrap_err(), PrefixError::Length("2001:db8::/129".into()));
        assert_eq!(p("2001:db8::/1000").unwrap_err(), PrefixError::Length("2001:db8::/1000".into()));
        for bad in ["ten", "", "/8", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/ 8", " 10.0.0.0/8", "10.0.0/8", "300.0.0.0/8", "10.0.0.0/8/8"] {
            assert_eq!(p(bad).unwrap_err(), PrefixError::Syntax(bad.into()), "{bad:?}");
        }
        for bad in ["2001:db8::1::/64", "2001:db8:::/64", "12345::/16", "2001:db8::g/64", "[2001:db8::]/32"] {
            assert_eq!(p(bad).unwrap_err(), PrefixError::Syntax(bad.into()), "{bad:?}");
        }
    }

    #[test]
    fn constructor_refuses_what_the_parser_refuses() {
        assert_eq!(IpPrefix::v4(0x0a00_0000, 8).map(IpPrefix::length), Ok(104));
        assert!(matches!(IpPrefix::v4(0x0a00_0001, 8), Err(PrefixError::HostBits { meant, .. }) if meant.net() == mapped(0x0a00_0000)));
        assert_eq!(IpPrefix::v4(0, 33), Err(PrefixError::Length("0.0.0.0/33".into())));
        assert_eq!(IpPrefix::new(0, 129), Err(PrefixError::Length("::/129".into())));
        assert_eq!(IpPrefix::try_from((mapped(0x0a01_0000), 112)), p("10.1.0.0/16"));
    }

    #[test]
    fn contains_and_covers() {
        let net = p("10.1.0.0/16").unwrap();
        assert!(net.contains(mapped(0x0a01_ffff)) && net.contains(mapped(0x0a01_0000)));
        assert!(!net.contains(mapped(0x0a02_0000)));
        assert!(!net.contains(0x0a01_0000), "::10.1.0.0 is not IPv4");
        assert!(IpPrefix::ALL.contains(mapped(0xdead_beef)) && IpPrefix::ALL.contains(DOC));
        assert!(IpPrefix::ALL_V4.contains(mapped(0xdead_beef)) && !IpPrefix::ALL_V4.contains(DOC));
        assert!(net.covers(p("10.1.3.0/24").unwrap()) && net.covers(net));
        assert!(!net.covers(p("10.0.0.0/8").unwrap()));
        assert!(!net.covers(p("10.2.0.0/24").unwrap()));
        assert_eq!(net.mask(), netmask(112));
        assert!(net.is_v4() && !p("2001:db8::/32").unwrap().is_v4() && !IpPrefix::ALL.is_v4());
        let v6 = p("2001:db8::/32").unwrap();
        assert!(v6.contains(DOC | 0xffff) && !v6.contains(DOC ^ 1 << 96));
    }

    proptest! {
        #[test]
        fn display_then_parse_is_the_identity(addr in any::<u128>(), len in 0u8..=128, v4 in any::<u32>(), len4 in 0u8..=32) {
            let q = IpPrefix::new(addr & netmask(len), len).unwrap();
            prop_assert_eq!(q.to_string().parse::<IpPrefix>(), Ok(q));
            prop_assert_eq!(IpPrefix::of_const(&q.to_const()), Some(q));
            let q = IpPrefix::v4(v4 & (u32::MAX.checked_shl(32 - len4 as u32).unwrap_or(0)), len4).unwrap();
            prop_assert_eq!(q.to_string().parse::<IpPrefix>(), Ok(q));
            prop_assert_eq!(parse_addr(&addr_text(addr)), Some(addr));
        }

        #[test]
        fn host_bits_are_refused_with_the_right_suggestion(addr in any::<u128>(), len in 0u8..128) {
            let s = format!("{}/{len}", Ipv6Addr::from(addr));
            match s.parse::<IpPrefix>() {
                Ok(q) => prop_assert_eq!(q.net(), addr),
                Err(PrefixError::HostBits { meant, .. }) => {
                    prop_assert!(addr & !netmask(len) != 0);
                    prop_assert!(meant.contains(addr) && meant.length() == len);
                }
                Err(e) => prop_assert!(false, "{s}: {e}"),
            }
        }
    }
}
