//! Arbitrary bytes through the whole front end. Whatever the input: no
//! panic, no stack overflow; and an accepted program is a module that
//! validates and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vinet_checker::Module;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = vinet_lang::compile("fuzz.vinet", data, &[]) {
        c.module.validate().expect("an accepted program validates");
        let bytes = c.module.encode();
        assert_eq!(Module::decode(&bytes).expect("round trip"), c.module);
        assert_eq!(c.spans.len(), c.module.code.len());
    }
});
