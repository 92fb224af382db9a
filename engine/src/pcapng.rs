//! A lenient, streaming pcapng reader.
//!
//! pcap-file's pcapng reader refuses files whose option lists end at the end
//! of their block without an explicit `opt_endofopt`, which tcpdump and
//! Wireshark read (tcpdump's own test suite has such files, e.g.
//! `ospf-sr2.pcapng`). pcapng's framing is simple, so the runtime reads it
//! here: blocks are `type, total length, body, total length`, and only what
//! a router needs is decoded (interface link types and timestamp resolution,
//! enhanced, simple and obsolete packet blocks). Unknown blocks and options
//! are skipped. A block that is cut short or lies about its length is an
//! error; nothing is allocated beyond what the file actually holds.

use std::io::Read;

use crate::packet::LinkType;

/// Largest block accepted (a frame is at most 256 KiB in practice).
const MAX_BLOCK: u32 = 64 << 20;

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const OPB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER: u32 = 0x1a2b_3c4d;

/// Timestamp resolution of an interface (`if_tsresol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resol {
    /// 10^-n seconds.
    Dec(u8),
    /// 2^-n seconds.
    Bin(u8),
}

impl Resol {
    /// Nanoseconds of `units` ticks.
    pub(crate) fn to_ns(self, units: u64) -> u64 {
        let units = u128::from(units);
        let ns = match self {
            Resol::Dec(n) if n <= 9 => units * 10u128.pow(u32::from(9 - n)),
            Resol::Dec(n) => units / 10u128.pow(u32::from(n.min(38) - 9)),
            Resol::Bin(n) => (units * 1_000_000_000) >> n.min(127),
        };
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

/// One packet: its interface's link type, capture time (ns; `None` when the
/// block has none) and length on the wire. The bytes are in [`NgReader::data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NgPacket {
    pub link: LinkType,
    pub ts_ns: Option<u64>,
    pub orig_len: u32,
}

/// Streaming pcapng reader.
pub(crate) struct NgReader<R: Read> {
    r: R,
    big: bool,
    ifaces: Vec<(LinkType, Resol, u32)>,
    body: Vec<u8>,
    data: std::ops::Range<usize>,
}

impl<R: Read> NgReader<R> {
    /// Start reading; the first block must be a section header.
    pub(crate) fn new(r: R) -> Result<Self, String> {
        let mut ng = NgReader { r, big: false, ifaces: vec![], body: vec![], data: 0..0 };
        match ng.block()? {
            Some(SHB) => Ok(ng),
            Some(t) => Err(format!("the first block is of type {t:#x}, not a section header")),
            None => Err("empty".into()),
        }
    }

    /// The bytes of the packet last returned.
    pub(crate) fn data(&self) -> &[u8] {
        &self.body[self.data.clone()]
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.body.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    fn u16_at(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.body.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    /// Read one block into `body`; its type, or `None` at a clean end of file.
    fn block(&mut self) -> Result<Option<u32>, String> {
        let mut head = [0u8; 8];
        match read_full(&mut self.r, &mut head)? {
            0 => return Ok(None),
            8 => {}
            n => return Err(format!("a block header cut short after {n} bytes")),
        }
        let raw_type = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let mut len_bytes: [u8; 4] = head[4..].try_into().expect("4 bytes");
        let mut prefix = vec![];
        if raw_type == SHB {
            // The byte-order magic decides how this section's numbers read.
            let mut magic = [0u8; 4];
            if read_full(&mut self.r, &mut magic)? != 4 {
                return Err("a section header cut short".into());
            }
            self.big = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
                (BYTE_ORDER, _) => false,
                (_, BYTE_ORDER) => true,
                _ => return Err("a section header with no byte-order magic".into()),
            };
            self.ifaces.clear();
            prefix.extend_from_slice(&magic);
        }
        let ty = if self.big { u32::from_be_bytes(head[..4].try_into().expect("4 bytes")) } else { raw_type };
        let ty = if raw_type == SHB { SHB } else { ty };
        if self.big {
            len_bytes.reverse();
        }
        let total = u32::from_le_bytes(len_bytes);
        if !(12 + prefix.len() as u32..=MAX_BLOCK).contains(&total) {
            return Err(format!("a block of type {ty:#x} claims {total} bytes"));
        }
        let rest = total as usize - 8 - prefix.len();
        self.body.clear();
        self.body.extend_from_slice(&prefix);
        let got = (&mut self.r).take(rest as u64).read_to_end(&mut self.body).map_err(|e| e.to_string())?;
        if got != rest {
            return Err(format!("a block of type {ty:#x} cut short ({got} of {rest} bytes)"));
        }
        self.body.truncate(self.body.len() - 4); // the trailing copy of the length
        Ok(Some(ty))
    }

    /// The next packet, skipping other blocks; `None` at the end of the file.
    pub(crate) fn next(&mut self) -> Option<Result<NgPacket, String>> {
        loop {
            let ty = match self.block() {
                Ok(Some(t)) => t,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let bad = |what: &str| Some(Err(format!("a malformed {what} block")));
            match ty {
                IDB => {
                    let (Some(link), Some(snap)) = (self.u16_at(0), self.u32_at(4)) else { return bad("interface description") };
                    self.ifaces.push((LinkType::from_raw(u32::from(link)), self.tsresol(8), snap));
                }
                EPB | OPB => {
                    let (iface, hi, lo, cap, orig, at) = if ty == EPB {
                        match (self.u32_at(0), self.u32_at(4), self.u32_at(8), self.u32_at(12), self.u32_at(16)) {
                            (Some(i), Some(h), Some(l), Some(c), Some(o)) => (i as usize, h, l, c, o, 20),
                            _ => return bad("enhanced packet"),
                        }
                    } else {
                        match (self.u16_at(0), self.u32_at(4), self.u32_at(8), self.u32_at(12), self.u32_at(16)) {
                            (Some(i), Some(h), Some(l), Some(c), Some(o)) => (usize::from(i), h, l, c, o, 20),
                            _ => return bad("packet"),
                        }
                    };
                    let end = at + (cap as usize).min(self.body.len().saturating_sub(at));
                    self.data = at..end;
                    let (link, res) = self.iface(iface);
                    let units = (u64::from(hi) << 32) | u64::from(lo);
                    return Some(Ok(NgPacket { link, ts_ns: Some(res.to_ns(units)), orig_len: orig }));
                }
                SPB => {
                    let Some(orig) = self.u32_at(0) else { return bad("simple packet") };
                    let snap = self.ifaces.first().map_or(u32::MAX, |i| i.2);
                    let cap = orig.min(if snap == 0 { u32::MAX } else { snap }) as usize;
                    self.data = 4..4 + cap.min(self.body.len().saturating_sub(4));
                    let (link, _) = self.iface(0);
                    return Some(Ok(NgPacket { link, ts_ns: None, orig_len: orig }));
                }
                _ => {}
            }
        }
    }

    fn iface(&self, i: usize) -> (LinkType, Resol) {
        self.ifaces.get(i).map_or((LinkType::Other(u32::MAX), Resol::Dec(6)), |x| (x.0, x.1))
    }

    /// The `if_tsresol` option of an interface description's options at `at`.
    fn tsresol(&self, mut at: usize) -> Resol {
        let mut res = Resol::Dec(6);
        while let (Some(code), Some(len)) = (self.u16_at(at), self.u16_at(at + 2)) {
            if code == 0 {
                break;
            }
            if code == 9 && len >= 1 {
                if let Some(&v) = self.body.get(at + 4) {
                    res = if v & 0x80 == 0 { Resol::Dec(v) } else { Resol::Bin(v & 0x7f) };
                }
            }
            at += 4 + usize::from(len).div_ceil(4) * 4;
        }
        res
    }
}

/// Read until `buf` is full or the input ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, String> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn corpus() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/pcap")
    }

    /// On every pcapng capture pcap-file reads, the same packets (bytes and
    /// lengths); and it reads the ones pcap-file refuses for a missing
    /// `opt_endofopt`.
    #[test]
    fn agrees_with_pcap_file_and_reads_more() {
        let mut files = 0;
        let mut rescued = vec![];
        for entry in std::fs::read_dir(corpus()).expect("capture corpus") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|x| x != "pcapng") {
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            let mut ours = vec![];
            let mut ng = match NgReader::new(&bytes[..]) {
                Ok(r) => r,
                Err(e) => panic!("{}: {e}", path.display()),
            };
            while let Some(p) = ng.next() {
                match p {
                    Ok(p) => ours.push((ng.data().to_vec(), p.orig_len)),
                    Err(_) => break,
                }
            }
            let mut theirs = vec![];
            let mut complete = true;
            match PcapNgReader::new(&bytes[..]) {
                Ok(mut r) => loop {
                    match r.next_block() {
                        None => break,
                        Some(Err(_)) => {
                            complete = false;
                            break;
                        }
                        Some(Ok(Block::EnhancedPacket(p))) => theirs.push((p.data.to_vec(), p.original_len)),
                        Some(Ok(Block::SimplePacket(p))) => theirs.push((p.data.to_vec(), p.original_len)),
                        Some(Ok(Block::Packet(p))) => theirs.push((p.data.to_vec(), p.original_len)),
                        Some(Ok(_)) => {}
                    }
                },
                Err(_) => complete = false,
            }
            if complete {
                assert_eq!(ours.len(), theirs.len(), "{}", path.display());
                assert!(ours == theirs, "{}: different packets", path.display());
            } else if ours.len() > theirs.len() {
                rescued.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
        assert!(files >= 20, "only {files} pcapng files");
        assert!(rescued.iter().any(|f| f == "ospf-sr2.pcapng"), "rescued: {rescued:?}");
    }

    #[test]
    fn hostile_lengths_are_errors() {
        // A section header, then a block claiming 1 GiB.
        let mut v = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        v.extend_from_slice(&[0xff; 8]);
        v.extend_from_slice(&[28, 0, 0, 0]);
        let mut r = NgReader::new(&v[..]).unwrap();
        assert!(r.next().is_none());
        v.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0x40]);
        let mut r = NgReader::new(&v[..]).unwrap();
        assert!(matches!(r.next(), Some(Err(_))));
        for cut in 0..v.len() {
            if let Ok(mut r) = NgReader::new(&v[..cut]) {
                while let Some(Ok(_)) = r.next() {}
            }
        }
    }
}
