//! End to end on loopback: the real `vinet-onmgr` binary as manager and as
//! participant servers, killed and restarted. No test measures time: each
//! waits for a state by polling, a bounded number of times.

use ed25519_dalek::SigningKey;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use vinet_onmgr::manager::OnStatus;
use vinet_onmgr::wire::{self, public_hex, Channel, FromRouter, LeaseView, ToRouter};

mod support;
use support::{free_port, poll, wait_listening, write_network, BIN, POLL, POLLS, ROUTERS};

struct Net {
    dir: PathBuf,
    manager_key: SigningKey,
    manager_addr: SocketAddr,
    routers: BTreeMap<&'static str, (SocketAddr, Option<Child>)>,
    manager: Option<Child>,
    refresh_ms: u64,
}

impl Net {
    fn new(name: &str, refresh_ms: u64) -> Net {
        let dir = std::env::temp_dir().join(format!("vinet-onmgr-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (manager_key, routers) = write_network(&dir, "{ bps = 1000000, pps = 1000, units = 10 }", refresh_ms);
        let mut n = Net { dir, manager_key, manager_addr: free_port(), routers, manager: None, refresh_ms };
        for r in ROUTERS {
            n.start_router(r, None);
        }
        n
    }

    fn start_router(&mut self, r: &'static str, crash: Option<&str>) {
        let mut c = Command::new(BIN);
        c.args(["router", "--config"]).arg(self.dir.join(format!("{r}.toml"))).stdout(Stdio::null()).stderr(self.log(r));
        if let Some(p) = crash {
            c.env("VINET_ONMGR_ROUTER_CRASH_AT", p);
        }
        let child = c.spawn().unwrap();
        let e = self.routers.get_mut(r).unwrap();
        e.1 = Some(child);
        wait_listening(e.0);
    }

    /// Appends a process's standard error to a log beside its files (kept
    /// if the test fails).
    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap()
    }

    fn kill_router(&mut self, r: &str) {
        if let Some(mut c) = self.routers.get_mut(r).unwrap().1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (bounded) for a router started with a crash point to abort.
    fn router_exited(&mut self, r: &str) -> bool {
        let c = self.routers.get_mut(r).unwrap().1.as_mut().unwrap();
        poll(|| c.try_wait().unwrap().is_some())
    }

    fn start_manager(&mut self, crash: Option<&str>) {
        let mut c = Command::new(BIN);
        c.arg("serve")
            .arg("--db")
            .arg(self.dir.join("manager.db"))
            .arg("--listen")
            .arg(self.manager_addr.to_string())
            .arg("--routers")
            .arg(self.dir.join("routers.toml"))
            .arg("--key")
            .arg(self.dir.join("manager.key"))
            .args(["--refresh-ms", &self.refresh_ms.to_string(), "--prepare-timeout-ms", "1500", "--retry-ms", "100"])
            .stdout(Stdio::null())
            .stderr(self.log("manager"));
        if let Some(p) = crash {
            c.env("VINET_ONMGR_CRASH_AT", p);
        }
        self.manager = Some(c.spawn().unwrap());
        wait_listening(self.manager_addr);
    }

    fn kill_manager(&mut self) {
        if let Some(mut c) = self.manager.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn manager_exited(&mut self) -> bool {
        let c = self.manager.as_mut().unwrap();
        poll(|| c.try_wait().unwrap().is_some())
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(args).args(["--manager", &self.manager_addr.to_string()]).output().unwrap()
    }

    fn request(&self, extra: &[&str]) -> Result<u32, String> {
        let mut args = vec!["request", "--access", "a,d", "--bps", "400000", "--pps", "400", "--units", "4"];
        args.extend_from_slice(extra);
        let o = self.cli(&args);
        if o.status.success() {
            Ok(String::from_utf8(o.stdout).unwrap().trim().parse().unwrap())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
        }
    }

    fn status(&self) -> Option<Vec<OnStatus>> {
        let o = self.cli(&["status", "--json"]);
        o.status.success().then(|| serde_json::from_slice(&o.stdout).unwrap())
    }

    fn leases(&self, r: &str) -> Option<Vec<LeaseView>> {
        let (addr, _) = self.routers[r];
        let key = wire::parse_public(&router_public(&self.dir, r)).ok()?;
        let mut ch = Channel::connect(addr, &self.manager_key, &key, Duration::from_secs(2)).ok()?;
        match ch.call(&ToRouter::Leases).ok()? {
            FromRouter::Leases { leases, .. } => Some(leases),
            _ => None,
        }
    }

    /// flow -> routers holding it active; panics on a tentative lease left.
    fn held(&self) -> Option<BTreeMap<u32, BTreeSet<String>>> {
        let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for r in ROUTERS {
            for l in self.leases(r)? {
                if !l.active {
                    return None;
                }
                out.entry(l.flow.0).or_default().insert(r.to_string());
            }
        }
        Some(out)
    }

    /// Waits until the manager has settled (every ON up, nothing preparing,
    /// committing or releasing) and the routers hold exactly what it says.
    fn settled(&self) -> BTreeMap<u32, BTreeSet<String>> {
        let mut last = None;
        for _ in 0..POLLS {
            if let (Some(st), Some(held)) = (self.status(), self.held()) {
                if st.iter().all(|o| o.state == "up") {
                    let want: BTreeMap<u32, BTreeSet<String>> = st.iter().map(|o| (o.flow, o.routers.iter().cloned().collect())).collect();
                    if want == held {
                        return held;
                    }
                }
                last = Some((st, held));
            }
            std::thread::sleep(POLL);
        }
        panic!("never settled: {last:?}");
    }
}

fn router_public(dir: &Path, r: &str) -> String {
    let k = wire::load_key(&dir.join(format!("{r}.key"))).unwrap();
    public_hex(&k.verifying_key())
}

impl Drop for Net {
    fn drop(&mut self) {
        self.kill_manager();
        for r in ROUTERS {
            self.kill_router(r);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_on_is_committed_on_its_path_and_release_returns_it() {
    let mut n = Net::new("commit", 30_000);
    n.start_manager(None);
    let f = n.request(&[]).unwrap();
    let held = n.settled();
    assert_eq!(held, BTreeMap::from([(f, set(&["a", "b", "d"]))]));
    let st = n.status().unwrap();
    assert_eq!(st[0].label.paths, vec![vec!["a".to_string(), "b".into(), "d".into()]]);
    // Redundant: two disjoint paths; a second one fits (4 + 4 <= 10 units), a third does not on a and d.
    let g = n.request(&["--redundant"]).unwrap();
    assert_ne!(f, g);
    let held = n.settled();
    assert_eq!(held[&g], set(&["a", "b", "c", "d"]));
    let refused = n.request(&[]).unwrap_err();
    assert!(refused.contains("no room"), "{refused}");
    // Release returns the resources: the same request fits again.
    assert!(n.cli(&["release", &f.to_string()]).status.success());
    assert!(poll(|| n.status().is_some_and(|s| s.len() == 1)), "release never finished");
    assert_eq!(n.settled().keys().copied().collect::<Vec<_>>(), vec![g]);
    let h = n.request(&[]).unwrap();
    assert_ne!(h, f, "a freed id is not handed out again before the pool wraps");
    assert_eq!(n.settled().len(), 2);
    let o = n.cli(&["release", "999"]);
    assert!(!o.status.success());
}

#[test]
fn leases_lapse_when_the_manager_stops_refreshing() {
    let mut n = Net::new("lapse", 200);
    n.start_manager(None);
    let f = n.request(&[]).unwrap();
    assert_eq!(n.settled()[&f], set(&["a", "b", "d"]));
    n.kill_manager();
    assert!(poll(|| n.held().is_some_and(|h| h.is_empty())), "leases never lapsed");
    // A manager that comes back finds its ON gone from the routers and revokes it.
    n.start_manager(None);
    assert!(poll(|| n.status().is_some_and(|s| s.is_empty())), "the restarted manager kept a lapsed ON");
    let g = n.request(&[]).unwrap();
    assert_eq!(n.settled()[&g], set(&["a", "b", "d"]));
}

#[test]
fn a_live_manager_keeps_leases_refreshed() {
    let mut n = Net::new("refresh", 200);
    n.start_manager(None);
    let f = n.request(&[]).unwrap();
    let first = n.leases("b").unwrap()[0].expires_ns;
    // The expiry moves forward: refreshes arrive.
    assert!(poll(|| n.leases("b").is_some_and(|l| l.first().is_some_and(|l| l.expires_ns > first))));
    assert_eq!(n.settled()[&f], set(&["a", "b", "d"]));
}

#[test]
fn the_coordinator_killed_at_each_step_recovers_all_or_nothing() {
    for point in ["logged", "prepared", "decided", "committed"] {
        let mut n = Net::new(&format!("coord-{point}"), 30_000);
        n.start_manager(Some(point));
        let r = n.request(&[]);
        assert!(r.is_err(), "{point}: the manager should have crashed: {r:?}");
        assert!(n.manager_exited(), "{point}: the manager did not abort");
        n.manager = None;
        n.start_manager(None);
        let held = n.settled();
        match point {
            "logged" | "prepared" => assert!(held.is_empty(), "{point}: undecided, so aborted: {held:?}"),
            _ => assert_eq!(held.values().collect::<Vec<_>>(), vec![&set(&["a", "b", "d"])], "{point}"),
        }
        // Nothing leaked: two more ONs fit (4 + 4 <= 10), whatever happened.
        let have = held.len();
        for _ in have..2 {
            n.request(&[]).unwrap();
        }
        assert_eq!(n.settled().len(), 2, "{point}");
        assert!(n.request(&[]).is_err(), "{point}: double-booked");
    }
}

#[test]
fn a_router_killed_at_each_step_restarts_from_its_store() {
    for point in ["before-prepare", "after-prepare", "before-commit", "after-commit"] {
        let mut n = Net::new(&format!("router-{point}"), 30_000);
        n.kill_router("b");
        n.start_router("b", Some(point));
        n.start_manager(None);
        // The request waits for its decision while b is down: run it aside.
        let mut req = Command::new(BIN)
            .args(["request", "--access", "a,d", "--bps", "400000", "--pps", "400", "--units", "4", "--manager"])
            .arg(n.manager_addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(n.router_exited("b"), "{point}: router b did not abort");
        n.routers.get_mut("b").unwrap().1 = None;
        n.start_router("b", None);
        let _ = req.wait();
        let held = n.settled();
        assert!(held.is_empty() || held.values().all(|r| *r == set(&["a", "b", "d"])), "{point}: {held:?}");
        let have = held.len();
        for _ in have..2 {
            n.request(&[]).unwrap();
        }
        assert_eq!(n.settled().len(), 2, "{point}");
    }
}

#[test]
fn strangers_and_garbage_are_refused() {
    let n = Net::new("strangers", 30_000);
    let (addr, _) = n.routers["a"];
    let stranger = SigningKey::from_bytes(&[7; 32]);
    let key = wire::parse_public(&router_public(&n.dir, "a")).unwrap();
    let r = Channel::connect(addr, &stranger, &key, Duration::from_secs(2)).and_then(|mut c| c.call::<_, FromRouter>(&ToRouter::Leases));
    assert!(r.is_err(), "a router answered a stranger: {r:?}");
    // Garbage, then a good client still works.
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(&[0, 0, 0, 3, 1, 2, 3, 0xff, 0xff]);
    drop(s);
    assert!(n.leases("a").is_some_and(|l| l.is_empty()));
}
