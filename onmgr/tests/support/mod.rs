//! What the end-to-end tests share: the binary, the test network (four
//! routers a, b, c, d and their links), its files, free ports and polling.

use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Child;
use std::time::Duration;
use vinet_onmgr::wire::{self, public_hex};

pub const BIN: &str = env!("CARGO_BIN_EXE_vinet-onmgr");
pub const ROUTERS: [&str; 4] = ["a", "b", "c", "d"];
/// a-b-d is the shortest path from a to d, a-c-d the other disjoint one.
pub const LINKS: [(&str, &str, u64); 4] = [("a", "b", 1), ("b", "d", 1), ("a", "c", 2), ("c", "d", 2)];
pub const POLLS: usize = 600;
pub const POLL: Duration = Duration::from_millis(50);

/// Each router's participant address, and its process once started.
pub type Routers = BTreeMap<&'static str, (SocketAddr, Option<Child>)>;

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Writes the network's files into `dir`: the manager's key, each router's
/// key and config (`capacity` a TOML inline table, leases refreshed every
/// `refresh_ms`), and the manager's picture (`routers.toml`). Returns the
/// manager's key and the routers' addresses.
pub fn write_network(dir: &Path, capacity: &str, refresh_ms: u64) -> (SigningKey, Routers) {
    let mpub = wire::generate_key(&dir.join("manager.key")).unwrap();
    let manager_key = wire::load_key(&dir.join("manager.key")).unwrap();
    let mut file = String::new();
    let mut routers = BTreeMap::new();
    for (k, r) in ROUTERS.iter().enumerate() {
        let key = dir.join(format!("{r}.key"));
        let public = wire::generate_key(&key).unwrap();
        let addr = free_port();
        file += &format!(
            "[[router]]\nid = {}\nname = \"{r}\"\naddress = \"{addr}\"\nkey = \"{}\"\ncapacity = {capacity}\n\n",
            k + 1,
            public_hex(&public)
        );
        std::fs::write(
            dir.join(format!("{r}.toml")),
            format!(
                "id = {}\nlisten = \"{addr}\"\nstore = \"{}\"\nkey = \"{}\"\nmanager_key = \"{}\"\nrefresh_ms = {refresh_ms}\ncapacity = {capacity}\n",
                k + 1,
                dir.join(format!("{r}.db")).display(),
                key.display(),
                public_hex(&mpub)
            ),
        )
        .unwrap();
        routers.insert(*r, (addr, None));
    }
    for (a, b, w) in LINKS {
        file += &format!("[[link]]\na = \"{a}\"\nb = \"{b}\"\nweight = {w}\n");
    }
    std::fs::write(dir.join("routers.toml"), file).unwrap();
    (manager_key, routers)
}

/// Whether `f` holds within [`POLLS`] polls, [`POLL`] apart.
pub fn poll(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..POLLS {
        if f() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

pub fn wait_listening(a: SocketAddr) {
    assert!(poll(|| TcpStream::connect_timeout(&a, POLL).is_ok()), "nothing listens on {a}");
}
