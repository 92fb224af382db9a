//! Arbitrary bytes through the bytecode decoder: an error, never a panic;
//! and what decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinet_checker::Module;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Module::decode(data) {
        assert_eq!(m.encode(), data);
    }
});
