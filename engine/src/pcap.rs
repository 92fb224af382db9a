//! Capture files: read pcap (either byte order, micro- or nanosecond stamps)
//! streaming with pcap-file 2.x, and pcapng (per-interface link types and
//! timestamp resolutions) with the lenient reader of [`crate::pcapng`]
//! (pcap-file refuses pcapng files that tcpdump reads); write pcap; replay a
//! capture into windows.
//!
//! A damaged file is an error, never a panic: the frames before the damage
//! are delivered, then one `Err`, then the reader stops (pcap has no way to
//! resynchronise after a bad record header).

use std::borrow::Cow;
use std::fs::File;
use std::io::{Chain, Cursor, Read, Write};
use std::path::Path;

use pcap_file::pcap::{PcapHeader, PcapReader, PcapWriter, RawPcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::packet::LinkType;
use crate::window::{Window, WindowConfig};

/// One captured frame.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Its link type.
    pub link: LinkType,
    /// Capture time, ns since the epoch.
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` for truncated captures).
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// Why a capture could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a pcap or pcapng file.
    #[error("not a pcap or pcapng capture: {0}")]
    Format(String),
    /// The file is damaged after some frames.
    #[error("capture damaged after {frames} frames: {reason}")]
    Damaged {
        /// Frames read before the damage.
        frames: u64,
        /// What pcap-file reported.
        reason: String,
    },
    /// Writing failed.
    #[error("cannot write capture: {0}")]
    Write(String),
}

type Peeked<R> = Chain<Cursor<[u8; 4]>, R>;

enum Kind<R: Read> {
    Pcap { r: PcapReader<Peeked<R>>, link: LinkType, nano: bool },
    PcapNg { r: crate::pcapng::NgReader<Peeked<R>>, first_link: Option<LinkType> },
}

/// A streaming reader of pcap or pcapng, told apart by their magic numbers.
pub struct CaptureReader<R: Read> {
    kind: Kind<R>,
    frames: u64,
    last_ts: u64,
    done: bool,
}

impl CaptureReader<File> {
    /// Open a capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        CaptureReader::new(File::open(path)?)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Read a capture from any reader.
    pub fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        reader.read_exact(&mut magic).map_err(|_| CaptureError::Format("shorter than a file header".into()))?;
        let peeked = Cursor::new(magic).chain(reader);
        let kind = if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
            let r = crate::pcapng::NgReader::new(peeked).map_err(CaptureError::Format)?;
            Kind::PcapNg { r, first_link: None }
        } else {
            let r = PcapReader::new(peeked).map_err(|e| CaptureError::Format(e.to_string()))?;
            let h = r.header();
            let link = LinkType::from_raw(u32::from(h.datalink));
            Kind::Pcap { r, link, nano: h.ts_resolution == TsResolution::NanoSecond }
        };
        Ok(CaptureReader { kind, frames: 0, last_ts: 0, done: false })
    }

    /// The link type of a pcap file (pcapng: of its first interface, once read).
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.kind {
            Kind::Pcap { link, .. } => Some(*link),
            Kind::PcapNg { first_link, .. } => *first_link,
        }
    }

    /// Frames delivered so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// The next frame; `None` at the end, after an error, or forever after.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, CaptureError>> {
        if self.done {
            return None;
        }
        let frames = self.frames;
        let damaged = |e: pcap_file::PcapError| CaptureError::Damaged { frames, reason: e.to_string() };
        match &mut self.kind {
            Kind::Pcap { r, link, nano } => {
                let link = *link;
                let frac_ns = if *nano { 1 } else { 1000 };
                match r.next_raw_packet() {
                    None => {
                        self.done = true;
                        None
                    }
                    Some(Err(e)) => {
                        self.done = true;
                        Some(Err(damaged(e)))
                    }
                    Some(Ok(p)) => {
                        // Invalid fractions (timestamp_invalid_micro.pcap) are
                        // kept as they are: timestamps only shape windows.
                        let ts = u64::from(p.ts_sec) * 1_000_000_000 + u64::from(p.ts_frac) * frac_ns;
                        self.frames += 1;
                        self.last_ts = ts;
                        match p.data {
                            Cow::Borrowed(data) => Some(Ok(Frame { link, ts_ns: ts, orig_len: p.orig_len, data })),
                            Cow::Owned(_) => {
                                self.done = true;
                                Some(Err(CaptureError::Format("pcap-file returned an owned packet".into())))
                            }
                        }
                    }
                }
            }
            Kind::PcapNg { r, first_link } => match r.next() {
                None => {
                    self.done = true;
                    None
                }
                Some(Err(reason)) => {
                    self.done = true;
                    Some(Err(CaptureError::Damaged { frames, reason }))
                }
                Some(Ok(p)) => {
                    let ts = p.ts_ns.unwrap_or(self.last_ts);
                    first_link.get_or_insert(p.link);
                    self.frames += 1;
                    self.last_ts = ts;
                    Some(Ok(Frame { link: p.link, ts_ns: ts, orig_len: p.orig_len, data: r.data() }))
                }
            },
        }
    }
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// Frames read.
    pub frames: u64,
    /// Windows closed.
    pub windows: u64,
    /// The error that ended the replay early, if any (frames before it were replayed).
    pub error: Option<CaptureError>,
}

/// Replay a capture into windows of `cfg` (W packets or T ms of capture
/// time, whichever first), calling `on_window` on each full window and on the
/// last partial one. At most `max_frames` frames are read.
pub fn replay<R: Read>(
    reader: &mut CaptureReader<R>, cfg: &WindowConfig, max_frames: u64, window: &mut Window, mut on_window: impl FnMut(&mut Window),
) -> ReplayStats {
    let mut st = ReplayStats::default();
    window.clear();
    while st.frames < max_frames {
        let f = match reader.next_frame() {
            None => break,
            Some(Err(e)) => {
                st.error = Some(e);
                break;
            }
            Some(Ok(f)) => f,
        };
        if !window.accepts(cfg, f.ts_ns) {
            on_window(window);
            st.windows += 1;
            window.clear();
        }
        window.push(f.link, f.ts_ns, f.orig_len, f.data);
        st.frames += 1;
    }
    if window.frame_count() > 0 {
        on_window(window);
        st.windows += 1;
        window.clear();
    }
    st
}

/// Writes a pcap file (nanosecond stamps, native layout of pcap-file: big
/// endian header) of one link type. Generated IPv4 and IPv6 packets are
/// framed for that link type; forwarded frames are written untouched, and those of another
/// link type (a multi-interface pcapng) are written as they are and counted.
pub struct PcapOut<W: Write> {
    w: PcapWriter<W>,
    link: LinkType,
    /// Frames written.
    pub written: u64,
    /// Frames whose link type differs from the file's (and generated packets
    /// of the family a raw IPv4 or raw IPv6 file cannot carry, written as
    /// they are).
    pub link_mismatch: u64,
    buf: Vec<u8>,
}

/// Snap length written in the header; longer frames are still written whole.
const SNAPLEN: u32 = 262_144;

impl<W: Write> PcapOut<W> {
    /// A pcap writer for frames of `link`.
    pub fn new(w: W, link: LinkType) -> Result<Self, CaptureError> {
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: SNAPLEN,
            datalink: DataLink::from(link.to_raw()),
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let w = PcapWriter::with_header(w, header).map_err(|e| CaptureError::Write(e.to_string()))?;
        Ok(PcapOut { w, link, written: 0, link_mismatch: 0, buf: Vec::new() })
    }

    /// Write one frame as it is.
    pub fn write_frame(&mut self, link: LinkType, ts_ns: u64, orig_len: u32, data: &[u8]) -> Result<(), CaptureError> {
        if link != self.link {
            self.link_mismatch += 1;
        }
        let p = RawPcapPacket {
            ts_sec: u32::try_from(ts_ns / 1_000_000_000).unwrap_or(u32::MAX),
            ts_frac: (ts_ns % 1_000_000_000) as u32,
            incl_len: data.len() as u32,
            orig_len,
            data: Cow::Borrowed(data),
        };
        self.w.write_raw_packet(&p).map_err(|e| CaptureError::Write(e.to_string()))?;
        self.written += 1;
        Ok(())
    }

    /// Write a generated IPv4 or IPv6 packet (its version nibble tells),
    /// framed for the file's link type: ethertype 0x0800 or 0x86DD; BSD
    /// loopback address family 2 or 24 (AF_INET6 of NetBSD and OpenBSD, which
    /// every reader of NULL and LOOP captures takes).
    pub fn write_generated(&mut self, ts_ns: u64, packet: &[u8]) -> Result<(), CaptureError> {
        let v6 = packet.first().is_some_and(|b| b >> 4 == 6);
        let (ethertype, af) = if v6 { ([0x86, 0xdd], 24u32) } else { ([0x08, 0x00], 2) };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        match self.link {
            LinkType::Ethernet => {
                buf.extend_from_slice(&[0; 12]);
                buf.extend_from_slice(&ethertype);
            }
            LinkType::Null => buf.extend_from_slice(&af.to_ne_bytes()),
            LinkType::Loop => buf.extend_from_slice(&af.to_be_bytes()),
            LinkType::LinuxSll => {
                // outgoing (4), ARPHRD_NONE, no address, the protocol
                buf.extend_from_slice(&[0, 4, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                buf.extend_from_slice(&ethertype);
            }
            LinkType::LinuxSll2 => {
                buf.extend_from_slice(&ethertype);
                buf.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0xff, 0xfe, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            LinkType::Ipv4 if v6 => self.link_mismatch += 1,
            LinkType::Ipv6 if !v6 => self.link_mismatch += 1,
            _ => {}
        }
        buf.extend_from_slice(packet);
        let len = buf.len() as u32;
        let r = self.write_frame(self.link, ts_ns, len, &buf);
        self.buf = buf;
        r
    }

    /// Finish and return the writer.
    pub fn into_inner(self) -> W {
        self.w.into_writer()
    }
}

impl<W: Write> crate::window::Sink for PcapOut<W> {
    fn forward(&mut self, meta: &crate::window::FrameMeta, data: &[u8]) {
        // A write error is reported by the caller's next explicit write or
        // flush; the sink interface has no error channel.
        let _ = self.write_frame(meta.link, meta.ts_ns, meta.orig_len, data);
    }
    fn generated(&mut self, ts_ns: u64, packet: &[u8]) {
        let _ = self.write_generated(ts_ns, packet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::tests::{eth, ipv4_bytes, udp_bytes};

    fn pcap_bytes(link: LinkType, frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = PcapOut::new(Vec::new(), link).unwrap();
        for (ts, f) in frames {
            out.write_frame(link, *ts, f.len() as u32, f).unwrap();
        }
        out.into_inner()
    }

    #[test]
    fn pcap_round_trip_and_windows() {
        let f1 = eth(0x0800, &ipv4_bytes(1, 2, 17, &udp_bytes(1, 2, b"a")));
        let f2 = eth(0x0806, &[0; 28]);
        let bytes = pcap_bytes(LinkType::Ethernet, &[(1_000_000_123, &f1), (1_001_000_000, &f2), (1_500_000_000, &f1)]);
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        assert_eq!(r.link_type(), Some(LinkType::Ethernet));
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.ts_ns, f.data), (1_000_000_123, &f1[..]));
        let mut r = CaptureReader::new(&bytes[..]).unwrap();
        let mut sizes = Vec::new();
        let st = replay(&mut r, &WindowConfig::new(256, 100), u64::MAX, &mut Window::new(), |w| sizes.push(w.frame_count()));
        assert_eq!((st.frames, st.windows, sizes), (3, 2, vec![2, 1]));
        assert!(st.error.is_none());
    }

    #[test]
    fn byte_orders_and_microseconds() {
        // A little-endian microsecond pcap written by hand.
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&101u32.to_le_bytes());
        let ip = ipv4_bytes(1, 2, 17, &udp_bytes(1, 2, b"a"));
        for v in [5u32, 7, ip.len() as u32, ip.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&ip);
        let mut r = CaptureReader::new(&b[..]).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.link, f.ts_ns, f.data.len()), (LinkType::Raw, 5_000_007_000, ip.len()));
        // Truncated record: frames before it, then one error, then nothing.
        let cut = &b[..b.len() - 3];
        let mut r = CaptureReader::new(cut).unwrap();
        assert!(matches!(r.next_frame(), Some(Err(CaptureError::Damaged { frames: 0, .. }))));
        assert!(r.next_frame().is_none());
        // Garbage and short files are format errors.
        assert!(matches!(CaptureReader::new(&b"xy"[..]), Err(CaptureError::Format(_))));
        assert!(matches!(CaptureReader::new(&[7u8; 64][..]), Err(CaptureError::Format(_))));
    }

    #[test]
    fn generated_packets_are_framed_for_the_link() {
        use crate::packet::tests::{ipv6_bytes, A6, B6};
        let ip = ipv4_bytes(1, 2, 17, &udp_bytes(9910, 9910, b"g"));
        let ip6 = ipv6_bytes(A6, B6, 17, &udp_bytes(9910, 9910, b"g"));
        for (packet, dst) in [(&ip, vinet_checker::mapped(2)), (&ip6, B6)] {
            for link in [LinkType::Ethernet, LinkType::Raw, LinkType::Null, LinkType::Loop, LinkType::LinuxSll, LinkType::LinuxSll2] {
                let mut out = PcapOut::new(Vec::new(), link).unwrap();
                out.write_generated(9, packet).unwrap();
                assert_eq!(out.link_mismatch, 0);
                let bytes = out.into_inner();
                let mut r = CaptureReader::new(&bytes[..]).unwrap();
                let f = r.next_frame().unwrap().unwrap();
                let parsed = crate::packet::parse_frame(f.link, f.data);
                assert!(matches!(parsed, crate::packet::Parsed::Packet(p) if p.dst == dst), "{link:?}: {parsed:?}");
            }
        }
        // Raw IPv4 cannot carry IPv6, nor raw IPv6 IPv4: written, counted.
        for (link, packet) in [(LinkType::Ipv4, &ip6), (LinkType::Ipv6, &ip)] {
            let mut out = PcapOut::new(Vec::new(), link).unwrap();
            out.write_generated(9, packet).unwrap();
            assert_eq!((out.written, out.link_mismatch), (1, 1));
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn sample(ng: bool) -> Vec<u8> {
        if ng {
            // A pcapng: section header, interface (Ethernet, tsresol 9), one enhanced packet.
            let mut b = Vec::new();
            let shb = [0x0a0d0d0au32, 28, 0x1a2b3c4d, 0x0000_0001, 0xffff_ffff, 0xffff_ffff, 28];
            for v in shb {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&32u32.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0]); // if_tsresol = 9
            b.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
            b.extend_from_slice(&32u32.to_le_bytes());
            let data = [0xaau8; 20];
            b.extend_from_slice(&6u32.to_le_bytes());
            b.extend_from_slice(&52u32.to_le_bytes());
            for v in [0u32, 0, 1_000_000_007, 20, 20] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&data);
            b.extend_from_slice(&52u32.to_le_bytes());
            b
        } else {
            let mut out = PcapOut::new(Vec::new(), LinkType::Ethernet).unwrap();
            for i in 0..3u8 {
                out.write_frame(LinkType::Ethernet, 5, 30, &[i; 30]).unwrap();
            }
            out.into_inner()
        }
    }

    #[test]
    fn pcapng_sample_reads_with_its_resolution() {
        let b = sample(true);
        let mut r = CaptureReader::new(&b[..]).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.link, f.ts_ns, f.data.len(), f.orig_len), (LinkType::Ethernet, 1_000_000_007, 20, 20));
        assert!(r.next_frame().is_none());
        assert_eq!(r.frames_read(), 1);
    }

    proptest! {
        /// Corrupted pcap and pcapng files: errors, never panics, and a reader
        /// that stops.
        #[test]
        fn corrupted_captures_never_panic(ng in any::<bool>(), flips in prop::collection::vec((0usize..120, any::<u8>()), 1..8), cut in 0usize..140) {
            let mut b = sample(ng);
            for (i, x) in flips {
                if let Some(y) = b.get_mut(i) {
                    *y = x;
                }
            }
            b.truncate(cut);
            if let Ok(mut r) = CaptureReader::new(&b[..]) {
                let mut n = 0;
                while let Some(f) = r.next_frame() {
                    n += 1;
                    prop_assert!(n < 1000, "reader does not stop");
                    if f.is_err() {
                        prop_assert!(r.next_frame().is_none());
                        break;
                    }
                }
            }
        }
    }
}
