//! Key files: a client's ed25519 key, and the router's Noise static key.
//!
//! The router's Noise static key lives in one file (created on first start,
//! mode 0600: `vinet-router-key-v1 <hex>`); its public half is written beside
//! it as `<key>.pub` (`vinet-router-public-v1 <hex>`) for the operator to
//! publish: clients pin it with `--router-key`. Secret files are written
//! readable by their owner only ([`write_private`]).

use std::path::{Path, PathBuf};

use crate::identity::{hex, unhex};
use crate::protocol;

const KEY_TAG: &str = "vinet-router-key-v1";
/// The tag of a router public key file.
pub const PUBLIC_TAG: &str = "vinet-router-public-v1";

/// Read the router's key, or create it. Returns (private, public).
pub fn router_key(path: &Path) -> Result<([u8; 32], [u8; 32]), String> {
    let private = match std::fs::read_to_string(path) {
        Ok(text) => {
            let h = text.trim().strip_prefix(KEY_TAG).ok_or_else(|| format!("{}: not a vinet router key", path.display()))?;
            unhex::<32>(h.trim()).map_err(|e| format!("{}: {e}", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (private, _) = protocol::generate_router_key()?;
            if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
            }
            write_private(path, &format!("{KEY_TAG} {}\n", hex(&private)))?;
            private
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let public = protocol::router_public_key(&private)?;
    let pubpath = public_key_path(path);
    let text = format!("{PUBLIC_TAG} {}\n", hex(&public));
    if std::fs::read_to_string(&pubpath).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&pubpath, text).map_err(|e| format!("{}: {e}", pubpath.display()))?;
    }
    Ok((private, public))
}

/// Where the public half of a router key file is written.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

/// Parse a router public key: `vinet-router-public-v1 <hex>` or bare hex.
pub fn parse_router_public(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    unhex::<32>(t.strip_prefix(PUBLIC_TAG).map(str::trim).unwrap_or(t))
}

/// Write a secret file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}
