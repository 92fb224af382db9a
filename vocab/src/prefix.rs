//! IPv4 prefixes: `10.1.0.0/16`, and a bare address as its /32.
//!
//! One type, one parser, one printer. A prefix's network never has host bits
//! set: [`Ipv4Prefix::new`] and the parser refuse them (the parser suggests
//! the prefix that was probably meant), so a value of the type is always
//! well formed and its fields are private.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use vinet_checker::netmask;

/// An IPv4 prefix: a network address (host byte order, host bits zero) and a
/// length of 0 to 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    net: u32,
    len: u8,
}

/// Why a prefix was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The text is not `a.b.c.d` or `a.b.c.d/len`.
    #[error("`{0}` is not an IPv4 address or prefix (a.b.c.d/len)")]
    Syntax(String),
    /// The length is not 0 to 32.
    #[error("`{0}`: the prefix length must be 0 to 32")]
    Length(String),
    /// The network has bits set beyond the length.
    #[error("`{text}` has host bits set (did you mean {meant}?)")]
    HostBits {
        /// The prefix as given.
        text: String,
        /// The same length with the host bits cleared.
        meant: Ipv4Prefix,
    },
}

impl Ipv4Prefix {
    /// Every address: `0.0.0.0/0`.
    pub const ALL: Ipv4Prefix = Ipv4Prefix { net: 0, len: 0 };

    /// The prefix `net/len`; refused if `len` is over 32 or `net` has host bits.
    pub fn new(net: u32, len: u8) -> Result<Ipv4Prefix, PrefixError> {
        let text = || format!("{}/{len}", Ipv4Addr::from(net));
        if len > 32 {
            return Err(PrefixError::Length(text()));
        }
        if net & !netmask(len) != 0 {
            return Err(PrefixError::HostBits { text: text(), meant: Ipv4Prefix { net: net & netmask(len), len } });
        }
        Ok(Ipv4Prefix { net, len })
    }

    /// One address as a /32.
    pub fn host(addr: u32) -> Ipv4Prefix {
        Ipv4Prefix { net: addr, len: 32 }
    }

    /// The network address, host byte order.
    pub fn net(self) -> u32 {
        self.net
    }

    /// The length, 0 to 32.
    pub fn length(self) -> u8 {
        self.len
    }

    /// The netmask of the length, host byte order.
    pub fn mask(self) -> u32 {
        netmask(self.len)
    }

    /// Whether `addr` (host byte order) is in the prefix.
    pub fn contains(self, addr: u32) -> bool {
        addr & self.mask() == self.net
    }

    /// Whether every address of `inner` is in this prefix.
    pub fn covers(self, inner: Ipv4Prefix) -> bool {
        inner.len >= self.len && self.contains(inner.net)
    }
}

impl From<Ipv4Prefix> for (u32, u8) {
    fn from(p: Ipv4Prefix) -> (u32, u8) {
        (p.net, p.len)
    }
}

impl TryFrom<(u32, u8)> for Ipv4Prefix {
    type Error = PrefixError;
    fn try_from((net, len): (u32, u8)) -> Result<Ipv4Prefix, PrefixError> {
        Ipv4Prefix::new(net, len)
    }
}

impl fmt::Display for Ipv4Prefix {
    /// `a.b.c.d/len`, always with the length (a /32 too).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.net), self.len)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;

    /// `a.b.c.d/len`, or a bare `a.b.c.d` as its /32. The length is one or
    /// two decimal digits; nothing else (no spaces, no sign) is accepted.
    fn from_str(s: &str) -> Result<Ipv4Prefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: Ipv4Addr = a.parse().map_err(|_| PrefixError::Syntax(s.to_string()))?;
        let len = match l {
            None => 32,
            Some(l) if (1..=2).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok().filter(|l| *l <= 32).ok_or_else(|| PrefixError::Length(s.to_string()))?
            }
            Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => return Err(PrefixError::Length(s.to_string())),
            Some(_) => return Err(PrefixError::Syntax(s.to_string())),
        };
        Ipv4Prefix::new(u32::from(addr), len).map_err(|e| match e {
            PrefixError::HostBits { meant, .. } => PrefixError::HostBits { text: s.to_string(), meant },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Ipv4Prefix, PrefixError> {
        s.parse()
    }

    #[test]
    fn parses_prefixes_and_bare_addresses() {
        assert_eq!(p("10.1.0.0/16").map(<(u32, u8)>::from), Ok((0x0a01_0000, 16)));
        assert_eq!(p("10.1.0.7"), Ok(Ipv4Prefix::host(0x0a01_0007)));
        assert_eq!(p("10.1.0.7/32"), p("10.1.0.7"));
        assert_eq!(p("0.0.0.0/0"), Ok(Ipv4Prefix::ALL));
        assert_eq!(p("255.255.255.255/32").unwrap().net(), u32::MAX);
    }

    #[test]
    fn refusals_say_why() {
        let e = p("10.0.0.1/8").unwrap_err();
        assert_eq!(e.to_string(), "`10.0.0.1/8` has host bits set (did you mean 10.0.0.0/8?)");
        assert_eq!(p("10.1.0.0/33").unwrap_err(), PrefixError::Length("10.1.0.0/33".into()));
        assert_eq!(p("10.1.0.0/100").unwrap_err(), PrefixError::Length("10.1.0.0/100".into()));
        for bad in ["ten", "", "/8", "10.0.0.0/", "10.0.0.0/+8", "10.0.0.0/ 8", " 10.0.0.0/8", "10.0.0/8", "300.0.0.0/8", "10.0.0.0/8/8"] {
            assert_eq!(p(bad).unwrap_err(), PrefixError::Syntax(bad.into()), "{bad:?}");
        }
        assert!(p("ten").unwrap_err().to_string().contains("a.b.c.d/len"));
    }

    #[test]
    fn constructor_refuses_what_the_parser_refuses() {
        assert_eq!(Ipv4Prefix::new(0x0a00_0000, 8).map(Ipv4Prefix::length), Ok(8));
        assert!(matches!(Ipv4Prefix::new(0x0a00_0001, 8), Err(PrefixError::HostBits { meant, .. }) if meant.net() == 0x0a00_0000));
        assert_eq!(Ipv4Prefix::new(0, 33), Err(PrefixError::Length("0.0.0.0/33".into())));
        assert_eq!(Ipv4Prefix::try_from((0x0a01_0000, 16)), p("10.1.0.0/16"));
    }

    #[test]
    fn contains_and_covers() {
        let net = p("10.1.0.0/16").unwrap();
        assert!(net.contains(0x0a01_ffff) && net.contains(0x0a01_0000));
        assert!(!net.contains(0x0a02_0000));
        assert!(Ipv4Prefix::ALL.contains(0xdead_beef));
        assert!(net.covers(p("10.1.3.0/24").unwrap()) && net.covers(net));
        assert!(!net.covers(p("10.0.0.0/8").unwrap()));
        assert!(!net.covers(p("10.2.0.0/24").unwrap()));
        assert_eq!(net.mask(), 0xffff_0000);
    }

    proptest! {
        #[test]
        fn display_then_parse_is_the_identity(addr in any::<u32>(), len in 0u8..=32) {
            let q = Ipv4Prefix::new(addr & netmask(len), len).unwrap();
            prop_assert_eq!(q.to_string().parse::<Ipv4Prefix>(), Ok(q));
        }

        #[test]
        fn host_bits_are_refused_with_the_right_suggestion(addr in any::<u32>(), len in 0u8..32) {
            let s = format!("{}/{len}", Ipv4Addr::from(addr));
            match s.parse::<Ipv4Prefix>() {
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
