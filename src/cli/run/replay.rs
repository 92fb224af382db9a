//! Replaying a capture through the router: frames in, the router's output
//! (forwarded frames, then each window's generated packets) to a pcap, and a
//! progress bar for a large capture on a terminal.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use vinet_engine::packet::LinkType;
use vinet_engine::pcap::{CaptureError, CaptureReader, PcapOut};
use vinet_engine::runner::Runner;
use vinet_engine::window::{FrameMeta, Sink};

use crate::cli::Failure;

/// Counts bytes read, for the progress bar.
struct Counted<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// The output capture, opened at the first frame (whose link type it takes).
struct Out {
    path: Option<PathBuf>,
    w: Option<PcapOut<BufWriter<File>>>,
    error: Option<String>,
}

impl Out {
    fn writer(&mut self, link: LinkType) -> Option<&mut PcapOut<BufWriter<File>>> {
        if self.w.is_none() && self.error.is_none() {
            let path = self.path.as_ref()?;
            match File::create(path)
                .map_err(|e| e.to_string())
                .and_then(|f| PcapOut::new(BufWriter::new(f), link).map_err(|e| e.to_string()))
            {
                Ok(w) => self.w = Some(w),
                Err(e) => self.error = Some(format!("cannot write {}: {e}", path.display())),
            }
        }
        self.w.as_mut()
    }

    fn finish(mut self, link: LinkType, expected: u64) -> Result<(), String> {
        self.writer(link);
        if let Some(e) = self.error {
            return Err(e);
        }
        let Some(w) = self.w else { return Ok(()) };
        let written = w.written;
        let path = self.path.unwrap_or_default();
        w.into_inner().flush().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        if written != expected {
            return Err(format!("cannot write {}: {written} of {expected} frames written", path.display()));
        }
        Ok(())
    }
}

impl Sink for Out {
    fn forward(&mut self, meta: &FrameMeta, data: &[u8]) {
        if let Some(w) = self.writer(meta.link) {
            let _ = w.write_frame(meta.link, meta.ts_ns, meta.orig_len, data);
        }
    }
    fn generated(&mut self, ts_ns: u64, ipv4: &[u8]) {
        if let Some(w) = self.writer(LinkType::Ethernet) {
            let _ = w.write_generated(ts_ns, ipv4);
        }
    }
}

/// A capture at least this large gets a progress bar (on a terminal).
const PROGRESS_BYTES: u64 = 32 << 20;

/// What a replay did besides what the router counted.
pub(super) struct Replayed {
    /// How long the replay took.
    pub elapsed: Duration,
    /// The damage that ended the capture early, if any.
    pub capture_error: Option<CaptureError>,
    /// Whether the output capture was written in full.
    pub write_result: Result<(), String>,
}

/// Push every frame of `pcap` through `router`, then flush its last window;
/// the output goes to `out` if given.
pub(super) fn replay(router: &mut Runner, pcap: &Path, out: Option<PathBuf>) -> Result<Replayed, Failure> {
    let file = File::open(pcap).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", pcap.display())))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = Rc::new(Cell::new(0u64));
    let mut reader = CaptureReader::new(Counted { inner: file, n: Rc::clone(&read) })
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", pcap.display())))?;
    let bar = (size >= PROGRESS_BYTES && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(size);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} replaying [{bar:40}] {bytes}/{total_bytes} {msg} ({eta})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let mut out = Out { path: out, w: None, error: None };
    let mut link = reader.link_type().unwrap_or(LinkType::Ethernet);
    let mut capture_error: Option<CaptureError> = None;
    let started = Instant::now();
    loop {
        match reader.next_frame() {
            None => break,
            Some(Err(e)) => {
                capture_error = Some(e);
                break;
            }
            Some(Ok(f)) => {
                link = f.link;
                router.push(f, &mut out);
            }
        }
        if let Some(b) = &bar {
            if reader.frames_read() % 65_536 == 0 {
                b.set_position(read.get());
                b.set_message(format!("{} frames", reader.frames_read()));
            }
        }
    }
    router.flush(&mut out);
    let elapsed = started.elapsed();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let st = router.stats();
    let write_result = out.finish(link, st.forwarded + st.generated);
    Ok(Replayed { elapsed, capture_error, write_result })
}
