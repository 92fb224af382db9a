//! Arbitrary bytes as a capture file (pcap or pcapng) and each frame read
//! from it through the router's frame parser, and the bytes themselves as a
//! frame of every link type: errors and "unparsed" counts, never a panic or
//! a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinet_engine::packet::{parse_frame, LinkType};
use vinet_engine::pcap::CaptureReader;

fuzz_target!(|data: &[u8]| {
    for raw in [0u32, 1, 12, 14, 101, 108, 113, 228, 276, 9999] {
        let _ = parse_frame(LinkType::from_raw(raw), data);
    }
    if let Ok(mut r) = CaptureReader::new(data) {
        let mut n = 0;
        while let Some(Ok(f)) = r.next_frame() {
            let _ = parse_frame(f.link, f.data);
            n += 1;
            assert!(n <= data.len(), "more frames than bytes");
        }
    }
});
