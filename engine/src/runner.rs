//! The router's window runner: frames in, verdicts and generated packets out.
//!
//! `push` parses each frame into the current window; when the window is full
//! (W packets, its frame cap) or the next frame is T ms later than its first,
//! the window is closed: the dispatch table runs every installed program over
//! its client's bucket, and the window's output (forwarded frames in arrival
//! order, then generated packets) goes to the sink. `flush` closes the
//! current window at the end of input.
//!
//! Between the programs' verdicts and the output, the later fragments of an
//! IPv6 datagram get the verdict of its first fragment ([`crate::fragments`]):
//! this runner is the one place, for pcap replay and the live router alike,
//! where a window's effects become per-frame verdicts.

use crate::dispatch::Dispatch;
use crate::fragments::FragmentVerdicts;
use crate::pcap::Frame;
use crate::stream::{note_window, Streams};
use crate::window::{FrameKind, FrameMeta, Sink, Window, WindowConfig};

/// Runner-wide counters. Every frame is accounted for:
/// `frames_in = forwarded + discarded`, and `forwarded` includes the
/// `unparsed` and `not_ip` frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Frames received.
    pub frames_in: u64,
    /// IP packets (IPv4 and IPv6) among them: the windows' packets.
    pub packets_in: u64,
    /// Frames forwarded.
    pub forwarded: u64,
    /// Frames dropped by some program.
    pub discarded: u64,
    /// Packets generated.
    pub generated: u64,
    /// Frames that did not parse (forwarded).
    pub unparsed: u64,
    /// Frames that parsed but are not packets of the window (forwarded):
    /// neither IPv4 nor IPv6, or IPv6 with an IPv4-mapped address.
    pub not_ip: u64,
    /// Windows closed.
    pub windows: u64,
    /// Program runs.
    pub runs: u64,
    /// Program runs that faulted.
    pub faults: u64,
    /// Later IPv6 fragments given the verdict of their datagram's first
    /// fragment ([`crate::fragments`]).
    pub fragment_verdicts: u64,
    /// GENERATEs that emitted nothing: source and destination of different families.
    pub skipped_generations: u64,
}

impl std::ops::AddAssign for RunnerStats {
    /// The counters of two runners together (a router's lanes).
    fn add_assign(&mut self, b: RunnerStats) {
        let a = self;
        a.frames_in += b.frames_in;
        a.packets_in += b.packets_in;
        a.forwarded += b.forwarded;
        a.discarded += b.discarded;
        a.generated += b.generated;
        a.unparsed += b.unparsed;
        a.not_ip += b.not_ip;
        a.windows += b.windows;
        a.runs += b.runs;
        a.faults += b.faults;
        a.fragment_verdicts += b.fragment_verdicts;
        a.skipped_generations += b.skipped_generations;
    }
}

/// Frames whose headers [`Runner::push_slab`] reads ahead in one go, from a
/// slab of at least [`BATCH_SLAB`] bytes (a power of two).
const PREFETCH: usize = 64;

/// Slabs from this size on are larger than any last-level cache: their
/// frames come from memory, whose latency only many loads in flight at once
/// hide, so that their headers are read [`PREFETCH`] frames at a time. The
/// frames of a smaller slab (a receive ring, which the NIC writes into the
/// cache) are read one at a time, [`NEAR`] frames ahead: that read's
/// latency is then hidden under the parses in between, where a batch of
/// reads would stall the parse once per batch for nothing.
const BATCH_SLAB: usize = 64 << 20;

/// How far ahead frames of a smaller slab are read.
const NEAR: usize = 6;

/// The bytes of a frame's headers that parsing reads: Ethernet, IPv6 and
/// TCP without options (IPv4 needs 20 fewer; an 802.1Q tag, UDP and ICMP
/// fewer still; extension headers more).
const HEADERS: usize = 74;

/// Read the first and the last header byte of every frame of `frames` (so
/// that the one or two cache lines of its headers are on their way when it
/// is parsed: a prefetch in safe code). The loads are independent and come
/// one after the other, so that their misses overlap; a load per frame
/// between the parses of frames would stall the parse once for each.
fn touch_headers(frames: &[Frame<'_>]) -> u8 {
    let mut t = 0u8;
    for f in frames {
        let d = f.data;
        t ^= d.first().copied().unwrap_or(0);
        t ^= d.get(d.len().min(HEADERS).wrapping_sub(1)).copied().unwrap_or(0);
    }
    t
}

/// A router: one window, one dispatch table.
#[derive(Debug)]
pub struct Runner {
    /// Sink of the reads that pull frames into the cache ahead of parsing.
    touch: u8,
    cfg: WindowConfig,
    window: Window,
    dispatch: Dispatch,
    frags: FragmentVerdicts,
    stats: RunnerStats,
    pub(crate) streams: Streams,
}

impl Runner {
    /// A router with windows of `cfg` (its W must be the policy's
    /// `window_packets`: programs checked for smaller windows are refused at
    /// install).
    pub fn new(cfg: WindowConfig) -> Runner {
        Runner {
            touch: 0,
            cfg,
            window: Window::new(),
            dispatch: Dispatch::new(cfg.packets),
            frags: FragmentVerdicts::new(),
            stats: RunnerStats::default(),
            streams: Streams::default(),
        }
    }

    /// The dispatch table (install, remove, list).
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// The dispatch table, to change.
    pub fn dispatch_mut(&mut self) -> &mut Dispatch {
        &mut self.dispatch
    }

    /// Counters.
    pub fn stats(&self) -> RunnerStats {
        self.stats
    }

    /// The window configuration.
    pub fn config(&self) -> WindowConfig {
        self.cfg
    }

    /// Take one frame; closes the current window first if the frame does not
    /// belong to it.
    pub fn push(&mut self, frame: Frame<'_>, sink: &mut dyn Sink) {
        if !self.window.accepts(&self.cfg, frame.ts_ns) {
            self.close(sink);
        }
        self.stats.frames_in += 1;
        match self.window.push(frame.link, frame.ts_ns, frame.orig_len, frame.data) {
            FrameKind::Packet(_) => self.stats.packets_in += 1,
            FrameKind::NotIp => self.stats.not_ip += 1,
            FrameKind::Unparsed => self.stats.unparsed += 1,
        }
        if self.window.is_full(&self.cfg) {
            self.close(sink);
        }
    }

    /// Take many frames held in one buffer, `slab` (an in-memory capture, a
    /// receive ring), without copying them: windows that close within the
    /// call run over the slab itself, and only a window still open at the
    /// end is copied, so that it may go on with the next call. Frames whose
    /// bytes do not lie inside `slab` are copied as [`Runner::push`] does; so
    /// is everything when `slab` is 4 GiB or more (offsets are `u32`).
    /// Same windows, verdicts and output as pushing the frames one by one.
    pub fn push_slab(&mut self, slab: &[u8], frames: &[Frame<'_>], sink: &mut dyn Sink) {
        let base = slab.as_ptr() as usize;
        let usable = u32::try_from(slab.len()).is_ok();
        let span = self.cfg.millis.saturating_mul(1_000_000);
        // Frames whose headers are read ahead at a time, and how far ahead.
        let (batch, ahead) = if slab.len() >= BATCH_SLAB { (PREFETCH, PREFETCH) } else { (1, NEAR) };
        let mut touch = touch_headers(&frames[..frames.len().min(ahead)]);
        for (i, frame) in frames.iter().enumerate() {
            if i & (batch - 1) == 0 {
                let next = frames.get(i + ahead..).unwrap_or(&[]);
                touch ^= touch_headers(&next[..next.len().min(batch)]);
            }
            // `Window::accepts`, knowing that the window is never full here
            // (it is closed as soon as it fills).
            debug_assert!(!self.window.is_full(&self.cfg));
            if self.window.first_ts().is_some_and(|t| frame.ts_ns.saturating_sub(t) >= span) {
                self.close_with(slab, sink);
            }
            self.stats.frames_in += 1;
            // The frame's offset in the slab, if it lies inside it.
            let at = (frame.data.as_ptr() as usize).wrapping_sub(base);
            let inside = usable && at <= slab.len() && frame.data.len() <= slab.len() - at;
            let kind = if inside && (self.window.is_borrowed() || self.window.frame_count() == 0) {
                self.window.push_borrowed(slab, at, frame.data.len(), frame.link, frame.ts_ns, frame.orig_len)
            } else {
                self.window.internalize(slab);
                self.window.push(frame.link, frame.ts_ns, frame.orig_len, frame.data)
            };
            match kind {
                FrameKind::Packet(_) => self.stats.packets_in += 1,
                FrameKind::NotIp => self.stats.not_ip += 1,
                FrameKind::Unparsed => self.stats.unparsed += 1,
            }
            if self.window.is_full(&self.cfg) {
                self.close_with(slab, sink);
            }
        }
        self.window.internalize(slab);
        self.touch ^= touch;
        std::hint::black_box(self.touch);
    }

    /// Close the current window (end of input, or a timer).
    pub fn flush(&mut self, sink: &mut dyn Sink) {
        self.close(sink);
    }

    fn close(&mut self, sink: &mut dyn Sink) {
        self.close_with(&[], sink);
    }

    /// Close the window, whose frames may be borrowed from `slab`.
    fn close_with(&mut self, slab: &[u8], sink: &mut dyn Sink) {
        if self.window.frame_count() == 0 {
            return;
        }
        if self.dispatch.searches() {
            // TCP flows to clients that search for words, across windows.
            self.window.materialize();
            let d = &self.dispatch;
            note_window(&mut self.streams, &mut self.window, slab, &|dst, f| d.search_words(dst, f));
        }
        let rep = self.dispatch.run_window_with(&mut self.window, slab);
        self.stats.runs += u64::from(rep.runs);
        self.stats.faults += u64::from(rep.faults);
        self.stats.skipped_generations += u64::from(rep.skipped_generations);
        self.stats.windows += 1;
        // Later fragments: their datagram's verdict.
        self.stats.fragment_verdicts += self.frags.apply(&mut self.window);
        // Counted from the window, not per frame through the sink: a
        // dropped frame is an IP packet marked in the drop bitmap.
        let dropped = u64::from(self.window.dropped_count());
        self.stats.discarded += dropped;
        self.stats.forwarded += self.window.frame_count() as u64 - dropped;
        self.stats.generated += self.window.generated_count() as u64;
        self.window.output_with(slab, sink);
        self.window.clear();
    }
}

/// A sink that discards everything (for counting and benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn forward(&mut self, _meta: &FrameMeta, _data: &[u8]) {}
    fn generated(&mut self, _ts_ns: u64, _packet: &[u8]) {}
}
