//! The operator's channel: a Unix socket beside the database (or where the
//! config's `operator_socket` says), mode 0600, so that only the operator's
//! account (and root) can reach it. `vinetd ctl COMMAND` connects, writes
//! one line and reads the answer ([`crate::admission::Admission::operate`]).
//!
//! Wire: the client writes the command's words separated by spaces and a
//! newline; the router answers `ok` or `error: REASON` on the first line,
//! then the answer's lines, and closes. One command a connection, served one
//! at a time, each whole within 5 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::admission::Admission;

/// Serve operator commands on `path` (replacing a stale socket file).
pub fn serve(path: &Path, adm: Arc<Admission>) -> Result<(), String> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // A socket file left by a killed vinetd: nothing listens on it any more.
    if UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("cannot open the operator socket {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("vinet-operator".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                if BufReader::new((&mut s).take(4096)).read_line(&mut line).is_err() {
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                tracing::info!(command = %line.trim(), "operator command");
                let answer = match adm.operate(&words) {
                    Ok(text) => format!("ok\n{text}"),
                    Err(why) => format!("error: {why}\n"),
                };
                let _ = s.write_all(answer.as_bytes());
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `vinetd ctl`: send one command to the router at `path`; its answer, or
/// why there is none.
pub fn command(path: &Path, words: &[String]) -> Result<String, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!("cannot reach the router's operator socket {}: {e} (is vinetd running, and are you its operator?)", path.display())
    })?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    s.write_all(format!("{}\n", words.join(" ")).as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(|e| format!("no answer from the router: {e}"))?;
    match answer.split_once('\n') {
        Some(("ok", rest)) => Ok(rest.to_string()),
        Some((first, _)) => Err(first.strip_prefix("error: ").unwrap_or(first).to_string()),
        None => Err("the router closed the operator socket without an answer".into()),
    }
}
