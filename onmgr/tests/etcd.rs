//! Several managers sharing their state in a real etcd (`serve --etcd`):
//! the real `vinet-onmgr` binary as two managers and four routers, and the
//! `etcd` binary (scripts/setup installs it; without it these tests fail,
//! they never skip). No test measures time: each waits for a state by
//! polling, a bounded number of times.
#![cfg(feature = "etcd")]

use ed25519_dalek::SigningKey;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vinet_onmgr::control::ask;
use vinet_onmgr::manager::{Control, ControlReply, OnStatus};
use vinet_onmgr::wire::{self, Channel, FromRouter, LeaseView, ToRouter};
use vinet_overlay::partition::Resources;

mod support;
use support::{free_port, poll, wait_listening, write_network, BIN, POLL, POLLS, ROUTERS};
const ASK: Duration = Duration::from_secs(60);

/// Kills a child and reaps it.
fn kill(c: &mut Option<Child>) {
    if let Some(mut c) = c.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A one-member etcd of the test's own, on free ports, in the test's directory.
struct Etcd {
    client: SocketAddr,
    child: Option<Child>,
}

impl Etcd {
    fn start(dir: &std::path::Path) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let spawned = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &format!("http://{client}")])
            .args(["--advertise-client-urls", &format!("http://{client}")])
            .args(["--listen-peer-urls", &format!("http://{peer}")])
            .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
            .args(["--initial-cluster", &format!("t=http://{peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("the etcd binary is not installed: run scripts/setup (as root) to install etcd-server")
            }
            Err(e) => panic!("starting etcd: {e}"),
        };
        let e = Etcd { client, child: Some(child) };
        assert!(poll(|| e.healthy()), "etcd never became healthy (see {})", dir.join("etcd.log").display());
        e
    }

    /// etcd's own `/health` over plain HTTP/1.0.
    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.client, POLL) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /health HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"health\":\"true\"")
    }

    fn url(&self) -> String {
        format!("http://{}", self.client)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

struct Manager {
    id: &'static str,
    addr: SocketAddr,
    child: Option<Child>,
}

/// Four routers, etcd and the managers that share it. Fields drop in
/// order: the managers before etcd.
struct Net {
    managers: Vec<Manager>,
    routers: BTreeMap<&'static str, (SocketAddr, Option<Child>)>,
    etcd: Etcd,
    dir: PathBuf,
    manager_key: SigningKey,
}

impl Net {
    fn new(name: &str, units: u64, managers: &[&'static str]) -> Net {
        let dir = std::env::temp_dir().join(format!("vinet-onmgr-etcd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let etcd = Etcd::start(&dir);
        // One key for every manager: a router answers one manager key.
        let capacity = format!("{{ bps = 100000000, pps = 100000, units = {units} }}");
        let (manager_key, routers) = write_network(&dir, &capacity, 30_000);
        let managers = managers.iter().map(|&id| Manager { id, addr: free_port(), child: None }).collect();
        let mut n = Net { managers, routers, etcd, dir, manager_key };
        for r in ROUTERS {
            let mut c = Command::new(BIN);
            c.args(["router", "--config"]).arg(n.dir.join(format!("{r}.toml"))).stdout(Stdio::null()).stderr(n.log(r));
            let e = n.routers.get_mut(r).unwrap();
            e.1 = Some(c.spawn().unwrap());
            wait_listening(e.0);
        }
        n
    }

    fn start_managers(&mut self) {
        for k in 0..self.managers.len() {
            self.start_manager(k, None);
        }
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap()
    }

    fn start_manager(&mut self, k: usize, crash: Option<&str>) {
        let mut c = Command::new(BIN);
        let m = &self.managers[k];
        c.args(["serve", "--etcd", &self.etcd.url(), "--manager-id", m.id, "--listen", &m.addr.to_string(), "--routers"])
            .arg(self.dir.join("routers.toml"))
            .arg("--key")
            .arg(self.dir.join("manager.key"))
            .args(["--refresh-ms", "30000", "--prepare-timeout-ms", "20000", "--retry-ms", "100"])
            .stdout(Stdio::null())
            .stderr(self.log(m.id));
        if let Some(p) = crash {
            c.env("VINET_ONMGR_CRASH_AT", p);
        }
        let child = c.spawn().unwrap();
        let addr = m.addr;
        self.managers[k].child = Some(child);
        wait_listening(addr);
    }

    fn request(&self, k: usize, access: [&str; 2], units: u64, redundant: bool) -> Result<u32, String> {
        request(self.managers[k].addr, access, units, redundant)
    }

    fn status(&self, k: usize) -> Option<Vec<OnStatus>> {
        match ask(self.managers[k].addr, &Control::Status, ASK).ok()? {
            ControlReply::Status(s) => Some(s),
            _ => None,
        }
    }

    /// A router's capacity and leases, asked of the router itself.
    fn leases(&self, r: &str) -> Option<(Resources, Vec<LeaseView>)> {
        let (addr, _) = self.routers[r];
        let key = wire::load_key(&self.dir.join(format!("{r}.key"))).ok()?.verifying_key();
        let mut ch = Channel::connect(addr, &self.manager_key, &key, Duration::from_secs(2)).ok()?;
        match ch.call(&ToRouter::Leases).ok()? {
            FromRouter::Leases { capacity, leases, .. } => Some((capacity, leases)),
            _ => None,
        }
    }

    /// flow -> routers holding it active; None while a tentative lease is left.
    fn held(&self) -> Option<BTreeMap<u32, BTreeSet<String>>> {
        let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for r in ROUTERS {
            for l in self.leases(r)?.1 {
                if !l.active {
                    return None;
                }
                out.entry(l.flow.0).or_default().insert(r.to_string());
            }
        }
        Some(out)
    }

    /// Waits until every manager reports the same ONs, all up, and the
    /// routers hold exactly those, each on the routers of its paths.
    fn settled(&self) -> (Vec<OnStatus>, BTreeMap<u32, BTreeSet<String>>) {
        let mut last = None;
        for _ in 0..POLLS {
            let all: Option<Vec<Vec<OnStatus>>> = (0..self.managers.len()).map(|k| self.status(k)).collect();
            if let (Some(all), Some(held)) = (all, self.held()) {
                let st = &all[0];
                let want: BTreeMap<u32, BTreeSet<String>> = st.iter().map(|o| (o.flow, o.routers.iter().cloned().collect())).collect();
                if all.iter().all(|s| s == st) && st.iter().all(|o| o.state == "up") && want == held {
                    return (st.clone(), held);
                }
                last = Some((all, held));
            }
            std::thread::sleep(POLL);
        }
        panic!("never settled: {last:?}");
    }

    /// No router holds more than its capacity, as the router itself says.
    fn assert_not_oversubscribed(&self) {
        for r in ROUTERS {
            let (cap, leases) = self.leases(r).unwrap();
            let mut sum = Resources::default();
            for l in &leases {
                let x = l.reservation.rates();
                sum = Resources { bps: sum.bps + x.bps, pps: sum.pps + x.pps, units: sum.units + x.units };
            }
            assert!(sum.bps <= cap.bps && sum.pps <= cap.pps && sum.units <= cap.units, "router {r} oversubscribed: {sum:?} > {cap:?}");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for m in &mut self.managers {
            kill(&mut m.child);
        }
        for r in self.routers.values_mut() {
            kill(&mut r.1);
        }
        kill(&mut self.etcd.child);
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn request(addr: SocketAddr, access: [&str; 2], units: u64, redundant: bool) -> Result<u32, String> {
    let c = Control::Request {
        access: [access[0].to_string(), access[1].to_string()],
        rates: Resources { bps: 10_000, pps: 10, units },
        redundant,
    };
    match ask(addr, &c, ASK)? {
        ControlReply::Flow(f) => Ok(f),
        ControlReply::Refused(why) => Err(why),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// The routers an ON's paths go through.
fn path_routers(o: &OnStatus) -> BTreeSet<String> {
    o.label.paths.iter().flatten().cloned().collect()
}

#[test]
fn two_managers_share_the_pool_and_the_rooms_through_etcd() {
    // 60 units a router, 1 unit an ON on three routers (four if
    // redundant): at most 80 of the 100 requests fit.
    let mut n = Net::new("share", 60, &["m1", "m2"]);
    n.start_managers();
    const THREADS: usize = 5;
    const EACH: usize = 10;
    let mut threads = Vec::new();
    for (k, m) in n.managers.iter().enumerate() {
        for t in 0..THREADS {
            let addr = m.addr;
            threads.push(std::thread::spawn(move || {
                (0..EACH)
                    .map(|i| {
                        let j = k * THREADS * EACH + t * EACH + i;
                        // Half from a to d, half from b to c; one in seven redundant.
                        let access = [["a", "d"], ["b", "c"]][j % 2];
                        (k, request(addr, access, 1, j % 7 == 6))
                    })
                    .collect::<Vec<_>>()
            }));
        }
    }
    let answers: Vec<(usize, Result<u32, String>)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(answers.len(), 100);
    let committed: Vec<(usize, u32)> = answers.iter().filter_map(|(k, r)| r.as_ref().ok().map(|f| (*k, *f))).collect();
    let refused: Vec<&String> = answers.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    eprintln!("{} committed, {} refused", committed.len(), refused.len());
    // Every refusal is admission's: with the rooms shared, no manager
    // prepares an ON that a router then refuses (which would abort it).
    for why in &refused {
        assert!(why.contains("no room") || why.contains("with room"), "{why}");
    }
    assert!(!refused.is_empty(), "100 requests cannot all fit");
    for k in 0..2 {
        assert!(committed.iter().any(|(m, _)| *m == k), "manager {k} committed nothing");
    }
    // No flow id was handed out twice, by one manager or by both.
    let ids: BTreeSet<u32> = committed.iter().map(|(_, f)| *f).collect();
    assert_eq!(ids.len(), committed.len(), "a flow id allocated twice: {committed:?}");

    let (st, held) = n.settled();
    // The managers agree (settled checks it), and report exactly the committed ONs.
    assert_eq!(st.iter().map(|o| o.flow).collect::<BTreeSet<_>>(), ids);
    // Every ON is held on every router of its paths and nowhere else.
    for o in &st {
        assert_eq!(held[&o.flow], path_routers(o), "ON {}", o.flow);
    }
    n.assert_not_oversubscribed();
}

#[test]
fn a_manager_killed_at_each_step_recovers_from_etcd() {
    for point in ["logged", "prepared", "decided", "committed"] {
        // 10 units a router, 4 an ON: two fit on a and d, whichever manager asks.
        let mut n = Net::new(&format!("crash-{point}"), 10, &["m1", "m2"]);
        n.start_manager(1, None);
        n.start_manager(0, Some(point));
        let r = n.request(0, ["a", "d"], 4, false);
        assert!(r.is_err(), "{point}: the manager should have crashed: {r:?}");
        let c = n.managers[0].child.as_mut().unwrap();
        assert!(poll(|| c.try_wait().unwrap().is_some()), "{point}: the manager did not abort");
        n.managers[0].child = None;
        // The restart claims its id once the crashed process's lease lapses,
        // and resolves its own log.
        n.start_manager(0, None);
        let (st, held) = n.settled();
        match point {
            "logged" | "prepared" => assert!(held.is_empty(), "{point}: undecided, so aborted: {st:?}"),
            _ => assert_eq!(held.values().collect::<Vec<_>>(), vec![&["a", "b", "d"].map(String::from).into_iter().collect()], "{point}"),
        }
        // Nothing leaked in etcd's rooms: the other manager fills them to exactly two ONs.
        for _ in held.len()..2 {
            n.request(1, ["a", "d"], 4, false).unwrap();
        }
        let r = n.request(1, ["a", "d"], 4, false);
        assert!(r.as_ref().is_err_and(|e| e.contains("no room")), "{point}: double-booked: {r:?}");
        assert_eq!(n.settled().0.len(), 2, "{point}");
        n.assert_not_oversubscribed();
    }
}

#[test]
fn a_second_process_with_a_live_manager_id_is_refused() {
    let mut n = Net::new("same-id", 10, &["m1"]);
    n.start_managers();
    let o = Command::new(BIN)
        .args(["serve", "--etcd", &n.etcd.url(), "--manager-id", "m1", "--listen", &free_port().to_string(), "--routers"])
        .arg(n.dir.join("routers.toml"))
        .arg("--key")
        .arg(n.dir.join("manager.key"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("held by a live manager"), "{err}");
    // And the live one still works.
    n.request(0, ["a", "d"], 4, false).unwrap();
}
