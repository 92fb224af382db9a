//! The manager's control port: `request`, `release` and `status` from the
//! operator, one JSON line each way per connection.
//!
//! The port is not authenticated: bind it to loopback (the default), where
//! only the operator's own machine reaches it. A line longer than
//! [`MAX_LINE`] or one that does not parse is answered with a refusal.

use crate::manager::{Control, ControlReply, Manager};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vinet_overlay::twopc::Decision;
use vinet_overlay::FlowId;

/// The longest control line accepted.
pub const MAX_LINE: u64 = 64 * 1024;

/// Runs the manager: its timer every `tick`, and its control port on
/// `listener`. Returns only if the listener fails.
pub fn run(manager: Manager, listener: TcpListener, tick: Duration, wait: Duration) -> Result<(), String> {
    let shared = Arc::new(Mutex::new(manager));
    {
        let shared = shared.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(tick);
            let mut m = shared.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = m.tick() {
                eprintln!("vinet-onmgr: tick: {e}");
            }
        });
    }
    for s in listener.incoming() {
        let s = s.map_err(|e| format!("accept: {e}"))?;
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = connection(s, &shared, wait) {
                eprintln!("vinet-onmgr: control: {e}");
            }
        });
    }
    Ok(())
}

fn connection(s: TcpStream, shared: &Mutex<Manager>, wait: Duration) -> Result<(), String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new((&s).take(MAX_LINE)).read_line(&mut line).map_err(|e| e.to_string())?;
    let reply = match serde_json::from_str::<Control>(&line) {
        Ok(c) => answer(shared, c, wait),
        Err(e) => ControlReply::Refused(format!("malformed control line: {e}")),
    };
    let mut out = serde_json::to_string(&reply).map_err(|e| e.to_string())?;
    out.push('\n');
    (&s).write_all(out.as_bytes()).map_err(|e| e.to_string())
}

fn lock(m: &Mutex<Manager>) -> std::sync::MutexGuard<'_, Manager> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn answer(shared: &Mutex<Manager>, c: Control, wait: Duration) -> ControlReply {
    match c {
        Control::Request { access, rates, redundant } => {
            let begun = lock(shared).begin(&access, rates, redundant);
            let (flow, tx) = match begun {
                Ok(x) => x,
                Err(e) => return ControlReply::Refused(e),
            };
            // The timer resends and decides; wait (bounded) for the decision.
            let until = Instant::now() + wait;
            loop {
                match lock(shared).decision(tx) {
                    Ok(Some(Decision::Commit)) => return ControlReply::Flow(flow.0),
                    Ok(Some(Decision::Abort)) => {
                        return ControlReply::Refused(format!("aborted: a router of the path refused ON {} or did not answer", flow.0))
                    }
                    Ok(None) => {}
                    Err(e) => return ControlReply::Refused(e),
                }
                if Instant::now() >= until {
                    return ControlReply::Refused(format!("ON {} undecided after {wait:?}: see status", flow.0));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Control::Release(f) => match lock(shared).release(FlowId(f)) {
            Ok(()) => ControlReply::Releasing(f),
            Err(e) => ControlReply::Refused(e),
        },
        Control::Status => match lock(shared).status() {
            Ok(s) => ControlReply::Status(s),
            Err(e) => ControlReply::Refused(e),
        },
    }
}

/// Asks a running manager.
pub fn ask(addr: SocketAddr, c: &Control, timeout: Duration) -> Result<ControlReply, String> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("manager {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(c).map_err(|e| e.to_string())?;
    line.push('\n');
    (&s).write_all(line.as_bytes()).map_err(|e| format!("manager {addr}: {e}"))?;
    let mut back = String::new();
    BufReader::new((&s).take(16 << 20)).read_line(&mut back).map_err(|e| format!("manager {addr}: {e}"))?;
    serde_json::from_str(&back).map_err(|e| format!("manager {addr}: bad answer: {e}"))
}
