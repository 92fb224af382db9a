//! The router's control plane under abuse (issue 11), end to end over
//! loopback TCP against the real vinetd. Each test reproduces an attack of
//! the issue and fails on the router as it was before the fix.

mod router_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use router_support::*;

/// Send one byte every half second of a Noise handshake (a slowloris). The
/// router used to time out each read (5 s here), not the request, so the
/// connection stayed open for as long as the dribble went on; it must be cut
/// off once the whole-request deadline (5 s) has passed, long before 40 bytes
/// (20 s) have been sent.
#[test]
fn a_dribbled_handshake_is_cut_off_at_the_request_deadline() {
    let env = Env::new("router-dribble");
    let cfg = env.config(&Settings::default());
    let _d = Vinetd::start(&cfg, &env.listen, env.dir.path("vinetd.log"));
    let mut s = TcpStream::connect(&env.listen).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    // A 2-byte length announcing a 48-byte handshake message, then its bytes.
    let hello: Vec<u8> = [0u8, 48].into_iter().chain(std::iter::repeat_n(7u8, 48)).collect();
    let mut sent = 0;
    let mut closed = false;
    for b in &hello[..40] {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("the router answered half a handshake"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the router kept a dribbled handshake open for all {sent} bytes");
    assert!(sent < 40, "cut off only after {sent} bytes");
    // The router counts it, and goes on serving real clients.
    wait_for("the disconnect to be counted", HANG, || env.metric("vinet_disconnects_total") >= 1.0);
    let c = env.client("c", "10.0.5.1");
    assert!(env.status(&c)["leases"].as_array().is_some());
}
