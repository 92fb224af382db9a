//! The emulator's operating-system side: network namespaces, veth links, tc,
//! addresses and routes built from a [`Plan`], and the processes run inside
//! them. Each is a resource with an owner: [`Network`] deletes its namespaces
//! (after killing every process still inside them) when dropped, and
//! [`Procs`] kills its children when dropped. Every namespace of a run is
//! named `vemu<PID>-<node>`, where PID is the emulator's process id, so
//! [`clean`] finds what a crashed run left behind (the run's kernel rules,
//! vinetd's nftables table and iptables rules among them, live inside its
//! namespaces and go with them).

use std::io::Write;
use std::process::{Child, Command, Stdio};

use crate::topology::{Kind, Plan};

/// The prefix of every namespace the emulator makes.
pub const PREFIX: &str = "vemu";

/// A command failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OsError(pub String);

/// Run a command, returning its stdout, or an error with its stderr.
pub fn sh(args: &[&str]) -> Result<String, OsError> {
    let o =
        Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).output().map_err(|e| OsError(format!("{}: {e}", args.join(" "))))?;
    if !o.status.success() {
        return Err(OsError(format!("`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into())
}

/// Feed `script` to a command's stdin (`ip -batch -`, `nft -f -`).
pub fn sh_stdin(args: &[&str], script: &str) -> Result<(), OsError> {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| OsError(format!("{}: {e}", args.join(" "))))?;
    child.stdin.take().expect("piped").write_all(script.as_bytes()).map_err(|e| OsError(format!("{}: {e}", args.join(" "))))?;
    let o = child.wait_with_output().map_err(|e| OsError(format!("{}: {e}", args.join(" "))))?;
    if !o.status.success() {
        return Err(OsError(format!("`{}` refused:\n{}\n{script}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())));
    }
    Ok(())
}

/// Why this machine cannot build a network, if it cannot.
pub fn cannot_run() -> Option<String> {
    let uid = sh(&["id", "-u"]).unwrap_or_default();
    if uid.trim() != "0" {
        return Some(format!("it needs root (uid is {})", uid.trim()));
    }
    for (tool, arg) in [("ip", "-V"), ("tc", "-V"), ("nft", "--version"), ("iptables", "--version"), ("curl", "--version")] {
        if sh(&[tool, arg]).is_err() {
            return Some(format!("`{tool}` is missing (scripts/setup installs iproute2, nftables, iptables and curl)"));
        }
    }
    let probe = format!("{PREFIX}probe{}", std::process::id());
    if let Err(e) = sh(&["ip", "netns", "add", &probe]) {
        return Some(format!("network namespaces are unavailable: {e}"));
    }
    let _ = sh(&["ip", "netns", "del", &probe]);
    None
}

/// The namespace prefix of this process's run: `vemu<PID>-`.
pub fn run_prefix() -> String {
    format!("{PREFIX}{}-", std::process::id())
}

/// The namespaces of a run, deleted on drop (after SIGKILL to every process
/// inside them).
pub struct Network {
    /// The run's prefix.
    pub prefix: String,
    /// Namespace names, by node index.
    pub ns: Vec<String>,
    created: Vec<String>,
}

impl Network {
    /// The namespace of node `i`.
    pub fn of(&self, i: usize) -> &str {
        &self.ns[i]
    }

    /// Take a namespace made outside [`Network::build`] (the overlay's
    /// management namespace): removed with the others.
    pub fn adopt(&mut self, ns: String) {
        self.created.insert(0, ns);
    }

    /// Build the plan's network: namespaces, veth pairs, tc, addresses,
    /// routes, forwarding, and the per-class counters of every router.
    /// `stop` is polled between steps (an interrupted build is torn down by
    /// the drop).
    pub fn build(plan: &Plan, prefix: &str, classes: &[(String, u16)], stop: &dyn Fn() -> bool) -> Result<Network, OsError> {
        let ns: Vec<String> = plan.nodes.iter().map(|n| format!("{prefix}{}", n.name)).collect();
        let mut net = Network { prefix: prefix.to_string(), ns: ns.clone(), created: vec![] };
        let interrupted = || OsError("interrupted".into());
        for n in &ns {
            if stop() {
                return Err(interrupted());
            }
            sh(&["ip", "netns", "add", n])?;
            net.created.push(n.clone());
        }
        // Per namespace, one `ip -batch`: links it owns (side a), then addresses and routes after all exist.
        let mut create: Vec<String> = vec![String::new(); ns.len()];
        for l in &plan.links {
            create[l.a].push_str(&format!("link add {} type veth peer name {} netns {}\n", l.a_if, l.b_if, ns[l.b]));
        }
        for (i, node) in plan.nodes.iter().enumerate() {
            if node.kind == Kind::Edge {
                // The dead end of the unused part of the /24: its peer stays down, so what is routed there is dropped
                // after the forward hooks saw it.
                create[i].push_str("link add void0 type veth peer name void1\nlink set void0 arp off\nlink set void0 up\n");
                // The router's subnet address, also here so that it exists with no host (the source of its own packets).
                create[i].push_str(&format!("addr add {}/32 dev void0\n", node.addr.expect("edge address")));
            }
            create[i].push_str("link set lo up\n");
        }
        for (i, script) in create.iter().enumerate() {
            if stop() {
                return Err(interrupted());
            }
            sh_stdin(&["ip", "-n", &ns[i], "-batch", "-"], script)?;
        }
        let mut conf: Vec<String> = vec![String::new(); ns.len()];
        let mut tc: Vec<String> = vec![String::new(); ns.len()];
        for l in &plan.links {
            for (node, ifn, (addr, len)) in [(l.a, &l.a_if, l.a_addr), (l.b, &l.b_if, l.b_addr)] {
                conf[node].push_str(&format!("addr add {addr}/{len} dev {ifn}\nlink set {ifn} up\n"));
                if let Some(bits) = l.bandwidth {
                    // tbf: the rate, a burst of 10 ms of it (at least 2 full frames), 100 ms of queue.
                    let burst = (bits / 8 / 100).max(3200);
                    match priority_of(plan, node) {
                        Some((_, share)) => tc[node].push_str(&priority_shaper(ifn, bits, burst, share)),
                        None => tc[node].push_str(&format!("qdisc add dev {ifn} root tbf rate {bits}bit burst {burst} latency 100ms\n")),
                    }
                }
            }
        }
        for (i, rs) in plan.routes.iter().enumerate() {
            for r in rs {
                conf[i].push_str(&route_args(r).join(" "));
                conf[i].push('\n');
            }
        }
        for i in 0..ns.len() {
            if stop() {
                return Err(interrupted());
            }
            sh_stdin(&["ip", "-n", &ns[i], "-batch", "-"], &conf[i])?;
            if !tc[i].is_empty() {
                sh_stdin(&["tc", "-n", &ns[i], "-batch", "-"], &tc[i])?;
            }
            if plan.nodes[i].kind != Kind::Host {
                sh(&["ip", "netns", "exec", &ns[i], "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
                sh_stdin(&["ip", "netns", "exec", &ns[i], "nft", "-f", "-"], &counting_table(plan, i, classes))?;
            }
        }
        Ok(net)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for n in self.created.iter().rev() {
            remove_namespace(n);
        }
    }
}

/// With overlay priority, an overlay router's (mark, priority share).
fn priority_of(plan: &Plan, node: usize) -> Option<(u32, f64)> {
    let o = plan.overlay.as_ref()?;
    (o.spec.priority != crate::scenario::Priority::None && o.has(node)).then_some((o.spec.mark, o.spec.priority_share))
}

/// A shaped link with a priority class (an overlay router's, with
/// `[overlay] priority`): HTB at the link's rate, two classes that may each
/// borrow the whole link, the priority one (class 1:10) guaranteed `share`
/// of it and served first, the other (1:20, the default) the rest; each a
/// FIFO of 100 ms of full-sized (1,500-byte) packets at the link's rate,
/// counted in packets (so a small packet is as likely to find it full as a
/// large one, as with Linux's default queue). A packet goes to 1:10 when its priority says so: the
/// router's counting table sets it from the mark at postrouting (after
/// vinetd's verdict). (The kernel here has neither `prio` nor the `fw` and
/// u32-mark classifiers: HTB's class priorities and its classification by
/// `skb->priority` do the same.)
pub fn priority_shaper(ifn: &str, bits: u64, burst: u64, share: f64) -> String {
    let hi = ((bits as f64 * share) as u64).max(8_000);
    let lo = bits.saturating_sub(hi).max(8_000);
    let queue = (bits / 8 / 10 / 1_500).max(10);
    format!(
        "qdisc add dev {ifn} root handle 1: htb default 20\n\
         class add dev {ifn} parent 1: classid 1:1 htb rate {bits}bit ceil {bits}bit burst {burst} cburst {burst}\n\
         class add dev {ifn} parent 1:1 classid 1:10 htb rate {hi}bit ceil {bits}bit burst {burst} cburst {burst} prio 0\n\
         class add dev {ifn} parent 1:1 classid 1:20 htb rate {lo}bit ceil {bits}bit burst {burst} cburst {burst} prio 1\n\
         qdisc add dev {ifn} parent 1:10 handle 10: pfifo limit {queue}\n\
         qdisc add dev {ifn} parent 1:20 handle 20: pfifo limit {queue}\n"
    )
}

/// `route replace TO [via V] dev D [src S]`, for `ip` (batch or not).
pub fn route_args(r: &crate::topology::Route) -> Vec<String> {
    let mut a = vec!["route".to_string(), "replace".into(), r.to.clone()];
    if let Some(v) = r.via {
        a.extend(["via".into(), v.to_string()]);
    }
    a.extend(["dev".into(), r.dev.clone()]);
    if let Some(s) = r.src {
        a.extend(["src".into(), s.to_string()]);
    }
    a
}

/// The counters of a router: bytes and packets leaving each of its
/// interfaces, per traffic class (by UDP port) and in all, counted at
/// postrouting (after vinetd's verdicts: what is counted went onto the link).
/// Names: `c_<if>_<class>` and `c_<if>_all`.
fn counting_table(plan: &Plan, node: usize, classes: &[(String, u16)]) -> String {
    let mut s = String::from("table inet emu {\n");
    let ifs: Vec<&str> = plan
        .links
        .iter()
        .filter_map(|l| {
            if l.a == node {
                Some(l.a_if.as_str())
            } else if l.b == node {
                Some(l.b_if.as_str())
            } else {
                None
            }
        })
        .collect();
    for i in &ifs {
        for (c, _) in classes {
            s.push_str(&format!("  counter c_{i}_{c} {{}}\n"));
        }
        s.push_str(&format!("  counter c_{i}_all {{}}\n"));
    }
    s.push_str("  chain out {\n    type filter hook postrouting priority 300; policy accept;\n");
    if let Some((mark, _)) = priority_of(plan, node) {
        // The priority class of the overlay's shaped links (`priority_shaper`): by the mark.
        s.push_str(&format!("    meta mark & {mark:#x} == {mark:#x} meta priority set 1:10\n"));
    }
    for i in &ifs {
        for (c, port) in classes {
            s.push_str(&format!("    oifname \"{i}\" udp dport {port} counter name c_{i}_{c}\n"));
        }
        s.push_str(&format!("    oifname \"{i}\" counter name c_{i}_all\n"));
    }
    s.push_str("  }\n}\n");
    s
}

/// Every counter of a router's `inet emu` table: name -> (packets, bytes).
pub fn counters(ns: &str) -> Result<Vec<(String, u64, u64)>, OsError> {
    let out = sh(&["ip", "netns", "exec", ns, "nft", "-j", "list", "counters", "table", "inet", "emu"])?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| OsError(format!("nft -j: {e}")))?;
    let mut got = vec![];
    for item in v["nftables"].as_array().into_iter().flatten() {
        if let Some(c) = item.get("counter") {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            got.push((name, c["packets"].as_u64().unwrap_or(0), c["bytes"].as_u64().unwrap_or(0)));
        }
    }
    Ok(got)
}

/// Interface statistics of a namespace: name -> (rx bytes, rx packets, tx
/// bytes, tx packets, tx dropped), from `ip -s -j link` (the same figures as
/// /sys/class/net/*/statistics, read from inside the namespace).
pub fn link_stats(ns: &str) -> Result<Vec<(String, [u64; 5])>, OsError> {
    let out = sh(&["ip", "-n", ns, "-s", "-j", "link", "show"])?;
    let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| OsError(format!("ip -j: {e}")))?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            let s = &l["stats64"];
            let g = |a: &str, b: &str| s[a][b].as_u64().unwrap_or(0);
            (
                l["ifname"].as_str().unwrap_or_default().to_string(),
                [g("rx", "bytes"), g("rx", "packets"), g("tx", "bytes"), g("tx", "packets"), g("tx", "dropped")],
            )
        })
        .collect())
}

/// Kill every process in a namespace, then delete it.
pub fn remove_namespace(ns: &str) {
    kill_all_in(ns);
    let _ = Command::new("ip").args(["netns", "del", ns]).stdin(Stdio::null()).stderr(Stdio::null()).status();
}

/// SIGKILL every process in a namespace (`ip netns pids`).
pub fn kill_all_in(ns: &str) {
    for _ in 0..3 {
        let pids = sh(&["ip", "netns", "pids", ns]).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.is_empty() {
            return;
        }
        let mut args = vec!["kill", "-9"];
        args.extend(pids);
        let _ = Command::new(args[0]).args(&args[1..]).stdin(Stdio::null()).stderr(Stdio::null()).status();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The emulator's namespaces on this machine.
pub fn list() -> Vec<String> {
    sh(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// Remove what runs left behind: with `all`, every `vemu*` namespace;
/// otherwise those of runs whose emulator process is gone. Returns the
/// namespaces removed.
pub fn clean(all: bool) -> Vec<String> {
    let mut removed = vec![];
    for n in list() {
        let pid: Option<u32> = n[PREFIX.len()..].split('-').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|p| {
            p != std::process::id() && std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "vinet-emu")
        });
        if all || !alive {
            remove_namespace(&n);
            removed.push(n);
        }
    }
    removed
}

/// Child processes, killed (SIGKILL) and reaped on drop.
#[derive(Default)]
pub struct Procs {
    /// (label, child).
    pub list: Vec<(String, Child)>,
}

impl Procs {
    /// Keep a child.
    pub fn push(&mut self, label: impl Into<String>, c: Child) -> usize {
        self.list.push((label.into(), c));
        self.list.len() - 1
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.list {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
