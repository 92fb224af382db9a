//! The router's own directory entry (`vinetd --config R.toml announce`):
//! an announcement of where clients reach it, its Noise static public key,
//! the source prefixes it sits in front of and an expiry, signed with the
//! announcement key the config's `[announce]` names (CONTRACT section 9;
//! the format and the trust chain are `vinet_proto::directory`'s).
//!
//! The authority's secret key never comes near the router: the operator
//! issues an edge-router identity to the announcement key once, and the
//! router signs fresh announcements with that key as often as it likes.

use std::path::Path;

use vinet_proto::directory::{sign, Announcement, SignedAnnouncement, ANNOUNCEMENT_VERSION};
use vinet_proto::identity::{hex, parse_secret_key, SignedIdentity};
use vinet_proto::keyfile::router_key;

use crate::config::Config;

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("[announce] {what} {}: {e}", path.display()))
}

/// Sign this router's announcement, issued at `now` (seconds since the epoch).
pub fn announcement(cfg: &Config, now: u64) -> Result<SignedAnnouncement, String> {
    let Some(a) = &cfg.announce else {
        return Err("the config has no [announce] section: name the announcement key, its identity and the prefixes to announce".into());
    };
    let text = String::from_utf8(read(&a.key, "key")?).map_err(|_| format!("[announce] key {}: not a key file", a.key.display()))?;
    let key = parse_secret_key(&text).map_err(|e| format!("[announce] key {}: {e}", a.key.display()))?;
    let identity = SignedIdentity::from_file(&read(&a.identity, "identity")?)
        .map_err(|e| format!("[announce] identity {}: {e}", a.identity.display()))?;
    if identity.cert.subject.kind() != vinet_checker::policy::ClientKind::EdgeRouter {
        return Err(format!(
            "[announce] identity {} is an end user's ({}): issue one with --prefix NET/LEN --router-ip IP",
            a.identity.display(),
            identity.cert.subject
        ));
    }
    // Version 1 announcements carry IPv4 prefixes: an identity's IPv6 prefixes are not announced.
    let own: Vec<_> = identity.cert.subject.dests().into_iter().filter(|p| p.is_v4()).collect();
    if now >= identity.cert.not_after {
        return Err(format!("[announce] identity {} expired at {} (now {now})", a.identity.display(), identity.cert.not_after));
    }
    let (_, noise_key) = router_key(&cfg.router_key)?;
    let prefixes = if a.prefixes.is_empty() { own } else { a.prefixes.clone() };
    let announcement = Announcement {
        version: ANNOUNCEMENT_VERSION,
        address: u32::from(*a.address.ip()),
        port: a.address.port(),
        noise_key,
        prefixes,
        issued: now,
        expires: now.saturating_add(a.valid_for_secs).min(identity.cert.not_after),
    };
    sign(&key, identity, announcement).map_err(|e| format!("[announce] {e}"))
}

/// The lines `vinetd announce` prints: a comment saying what the entry is
/// (for people; nothing in it is trusted), then the entry.
pub fn lines(s: &SignedAnnouncement) -> String {
    let a = &s.announcement;
    let prefixes: Vec<String> = a.prefixes.iter().map(ToString::to_string).collect();
    format!(
        "# vinetd at {}:{} for {}, Noise key {}, announcement key {}, valid {}..{} (seconds since the epoch)\n{}",
        std::net::Ipv4Addr::from(a.address),
        a.port,
        prefixes.join(" "),
        hex(&a.noise_key),
        hex(&s.identity.cert.client[..8]),
        a.issued,
        a.expires,
        s.to_line()
    )
}
