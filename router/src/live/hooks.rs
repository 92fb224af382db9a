//! vinetd's own kernel hooks: an nftables table `inet vinet` and iptables
//! NFQUEUE rules in the mangle table's FORWARD chain, written from the
//! config and kept in step with the installed programs. Operators write no
//! rule by hand.
//!
//! ```text
//! table inet vinet {
//!     set blocked4 { type ipv4_addr; flags interval; }   sources dropped for everyone
//!     set window4_K { type ipv4_addr; flags interval; }  destinations on windowed lane K
//!     set local4   { type ipv4_addr; flags interval; }   destinations whose programs are all packet-local
//!     chain forward {
//!         type filter hook forward priority mangle - 10; policy accept;
//!         ip saddr @blocked4 counter name blocked drop
//!         meta nfproto ipv4 ip protocol gre meta mark set mark & ~OURS | OVERLAY counter name overlay accept   (with [overlay])
//!         ip daddr @window4_K meta mark set mark & ~OURS | WINDOW_K counter name window accept   (each K)
//!         ip daddr @local4 meta mark set mark & ~OURS | LOCAL counter name local accept
//!         meta nfproto ipv6 counter name ipv6 [drop]
//!     }
//! }
//! iptables -t mangle -A PREROUTING -m mark --mark BOTH/BOTH -m socket --nowildcard -j RETURN   (turns on the defragmenter)
//! iptables -t mangle -A FORWARD -m mark --mark LOCAL/LOCAL -j NFQUEUE --queue-balance Q:Q+n-1 [--queue-bypass]
//! iptables -t mangle -A FORWARD -m mark --mark WINDOW_K/WINDOW|SHARD -j NFQUEUE --queue-num Q+n+K [--queue-bypass]   (each K)
//! iptables -t mangle -A FORWARD -m mark --mark OVERLAY/OVERLAY -j NFQUEUE --queue-num Q+n+k [--queue-bypass]   (with [overlay])
//! ```
//!
//! - **Overlay networks.** With `[overlay]`, every forwarded IPv4 GRE packet
//!   (protocol 47; whole, after the defragmenter) goes to the ON lane, the
//!   queue after the windowed lanes', which serves it within its ON's
//!   reservation (`live::overlay`). It is matched before the destination
//!   sets: an ON's packets are the ON's, served by its partition, and client
//!   programs do not see the outer packets of tunnels that cross the router.
//!   Without `[overlay]` the table and the rules are exactly as they were.
//!
//! - **The fast path.** A packet to a destination with no program matches
//!   no set: it never leaves the kernel's forwarding path.
//! - **Fragments.** The PREROUTING rule's socket match makes the kernel
//!   reassemble IPv4 fragments before the forward hook (its defragmenter,
//!   with its limits: `net.ipv4.ipfrag_*`), without connection tracking, so
//!   a program sees and decides whole datagrams, and the kernel fragments
//!   them again on the way out.
//! - **Down.** The hooks outlive vinetd: after a crash, a kill -9 or a stop,
//!   packets to clients with programs meet a queue nobody reads, and the
//!   kernel drops them (`down = "closed"`) or lets them pass (`"open"`,
//!   iptables' `--queue-bypass`); blocked sources stay dropped either way.
//!   `vinetd unhook` removes the hooks.
//! - **Start.** vinetd installs every stored lease first, then replaces the
//!   table in one nftables transaction, and only then binds its queues.
//!
//! nftables' own `queue` statement needs `nft_queue`, which not every kernel
//! has (this one does not); iptables' NFQUEUE target works with both its
//! back ends, hence the mark. The mangle table's FORWARD chain runs before
//! the filter table's, so the operator's own filter rules still apply to
//! what vinetd accepts.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use vinet_engine::dispatch::Dest;

/// The elements of one of vinetd's nftables sets: (network, prefix length).
pub type Elements = BTreeSet<(u32, u8)>;

/// The mark bit of packets for the packet-local lanes.
pub const LOCAL_MARK: u32 = 0x1000_0000;
/// The mark bit of packets for the windowed lanes (the lane's shard in the
/// bits of [`SHARD_MASK`]).
pub const WINDOW_MARK: u32 = 0x2000_0000;
/// The bits of a windowed lane's shard in the mark.
pub const SHARD_MASK: u32 = 0x00ff_0000;
/// The mark bit of packets for the ON lane (with `[overlay]`).
pub const OVERLAY_MARK: u32 = 0x4000_0000;
/// Every bit of the mark vinetd sets (it keeps the others); with
/// `[overlay]`, [`OVERLAY_MARK`] too.
const OURS: u32 = LOCAL_MARK | WINDOW_MARK | SHARD_MASK;
/// Every bit vinetd's hooks use, [`OVERLAY_MARK`] included: an operator's
/// mark (`[overlay] mark`) must be clear of them.
pub const HOOK_BITS: u32 = OURS | OVERLAY_MARK;

/// The mark of windowed lane `k`'s packets.
fn window_mark(k: u16) -> u32 {
    WINDOW_MARK | (u32::from(k) << 16) & SHARD_MASK
}
/// The comment on vinetd's iptables rules (how it finds its own).
const COMMENT: &str = "vinetd";

/// What the hooks are made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookConfig {
    /// The first queue of the packet-local lanes.
    pub first_queue: u16,
    /// Packet-local lanes (queues `first_queue ..`); the windowed lanes'
    /// queues come after them.
    pub local_lanes: u16,
    /// Windowed lanes, at most 256.
    pub window_lanes: u16,
    /// While vinetd is down, let packets to clients with programs pass.
    pub down_open: bool,
    /// Drop forwarded IPv6 (else forward it untouched); counted either way.
    pub ipv6_drop: bool,
    /// Queue forwarded IPv4 GRE to the ON lane (`[overlay]`), the queue
    /// after the windowed lanes'.
    pub overlay: bool,
}

impl HookConfig {
    /// Windowed lane `k`'s queue.
    pub fn window_queue(&self, k: u16) -> u16 {
        self.first_queue + self.local_lanes.max(1) + k
    }

    /// The ON lane's queue (with `[overlay]`).
    pub fn overlay_queue(&self) -> u16 {
        self.window_queue(self.window_lanes.max(1))
    }

    /// The bits of the mark vinetd's rules clear before setting their own.
    fn ours(&self) -> u32 {
        if self.overlay {
            OURS | OVERLAY_MARK
        } else {
            OURS
        }
    }

    fn iptables_rules(&self) -> Vec<Vec<String>> {
        let n = self.local_lanes.max(1);
        let local = if n == 1 {
            vec!["--queue-num".to_string(), self.first_queue.to_string()]
        } else {
            vec!["--queue-balance".to_string(), format!("{}:{}", self.first_queue, self.first_queue + n - 1)]
        };
        // The socket match turns on the kernel's defragmenter in this
        // namespace (without connection tracking); behind a mark test that
        // never holds (both of vinetd's bits, before either is set), the
        // rule itself never runs a socket lookup.
        let both = LOCAL_MARK | WINDOW_MARK;
        let defrag: Vec<String> = [
            "PREROUTING",
            "-m",
            "mark",
            "--mark",
            &format!("0x{both:x}/0x{both:x}"),
            "-m",
            "socket",
            "--nowildcard",
            "-m",
            "comment",
            "--comment",
            COMMENT,
            "-j",
            "RETURN",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let windows = (0..self.window_lanes.max(1))
            .map(|k| (window_mark(k), WINDOW_MARK | SHARD_MASK, vec!["--queue-num".to_string(), self.window_queue(k).to_string()]));
        let overlay = self.overlay.then(|| (OVERLAY_MARK, OVERLAY_MARK, vec!["--queue-num".to_string(), self.overlay_queue().to_string()]));
        let queues = std::iter::once((LOCAL_MARK, LOCAL_MARK, local)).chain(windows).chain(overlay).map(|(mark, mask, target)| {
            let mut r: Vec<String> = [
                "FORWARD",
                "-m",
                "mark",
                "--mark",
                &format!("0x{mark:x}/0x{mask:x}"),
                "-m",
                "comment",
                "--comment",
                COMMENT,
                "-j",
                "NFQUEUE",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            r.extend(target);
            if self.down_open {
                r.push("--queue-bypass".into());
            }
            r
        });
        std::iter::once(defrag).chain(queues).collect()
    }
}

/// The elements of an interval set: no element inside another (nftables
/// refuses overlapping intervals), their union the union of `dests`.
pub fn minimal(dests: impl IntoIterator<Item = Dest>) -> Elements {
    let mut all: Vec<(u32, u8)> = dests
        .into_iter()
        .map(|d| match d {
            Dest::Exact(a) => (a, 32),
            Dest::Prefix(n, l) => (n & vinet_checker::netmask(l), l),
        })
        .collect();
    // Shortest prefixes first: each later one is dropped if one kept holds it.
    all.sort_by_key(|&(n, l)| (l, n));
    let mut kept = Elements::new();
    let mut lens: BTreeSet<u8> = BTreeSet::new();
    for (n, l) in all {
        let covered = lens.iter().any(|&k| k <= l && kept.contains(&(n & vinet_checker::netmask(k), k)));
        if !covered {
            kept.insert((n, l));
            lens.insert(l);
        }
    }
    kept
}

fn element(&(n, l): &(u32, u8)) -> String {
    let a = std::net::Ipv4Addr::from(n);
    if l == 32 {
        a.to_string()
    } else {
        format!("{a}/{l}")
    }
}

fn elements(set: &Elements) -> String {
    set.iter().map(element).collect::<Vec<_>>().join(", ")
}

/// Run `nft -f -` over `script` (one transaction: all of it or nothing).
fn nft(script: &str) -> Result<(), String> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft: {e} (vinetd installs its hooks with nftables: install the nftables package)"))?;
    child.stdin.take().map(|mut i| i.write_all(script.as_bytes())).transpose().map_err(|e| format!("nft: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("nft refused vinetd's rules: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn iptables(args: &[String]) -> Result<String, String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "mangle"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run iptables: {e} (vinetd queues packets with iptables' NFQUEUE target: install iptables)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into())
    } else {
        Err(format!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// vinetd's iptables rules now in the kernel, as `-A ...` argument lists.
fn installed_rules() -> Result<Vec<Vec<String>>, String> {
    let text = iptables(&["-S".into()])?;
    Ok(text
        .lines()
        .filter(|l| l.contains(&format!("--comment {COMMENT}")))
        .map(|l| l.split_whitespace().skip(1).map(str::to_string).collect())
        .collect())
}

/// The sets as the kernel holds them.
#[derive(Debug, Default)]
pub struct Hooks {
    cfg: Option<HookConfig>,
    local: Elements,
    windows: Vec<Elements>,
    blocked: Elements,
}

impl Hooks {
    /// Hooks that vinetd does not manage (none installed, every update a no-op).
    pub fn unmanaged() -> Hooks {
        Hooks::default()
    }

    /// Replace the table in one transaction with these sets (`windows`:
    /// one a windowed lane), then make the iptables rules those of `cfg`
    /// (new ones added before old ones go).
    pub fn install(cfg: HookConfig, local: Elements, windows: Vec<Elements>, blocked: Elements) -> Result<Hooks, String> {
        let set = |name: &str, s: &Elements| {
            let els = if s.is_empty() { String::new() } else { format!(" elements = {{ {} }};", elements(s)) };
            format!("    set {name} {{ type ipv4_addr; flags interval;{els} }}\n")
        };
        let keep = !cfg.ours();
        let mut sets = set("blocked4", &blocked) + &set("local4", &local);
        let mut marks = String::new();
        let mut overlay_counter = String::new();
        if cfg.overlay {
            overlay_counter = "    counter overlay {}\n".into();
            marks += &format!(
                "        meta nfproto ipv4 ip protocol gre meta mark set meta mark & 0x{keep:x} | 0x{OVERLAY_MARK:x} counter name overlay accept\n"
            );
        }
        for (k, w) in windows.iter().enumerate() {
            sets += &set(&format!("window4_{k}"), w);
            let mark = window_mark(k as u16);
            marks +=
                &format!("        ip daddr @window4_{k} meta mark set meta mark & 0x{keep:x} | 0x{mark:x} counter name window accept\n");
        }
        let script = format!(
            "table inet vinet {{}}\ndelete table inet vinet\ntable inet vinet {{\n{sets}{overlay_counter}    counter blocked {{}}\n    counter window {{}}\n    counter local {{}}\n    counter ipv6 {{}}\n    chain forward {{\n        type filter hook forward priority mangle - 10; policy accept;\n        ip saddr @blocked4 counter name blocked drop\n{marks}        ip daddr @local4 meta mark set meta mark & 0x{keep:x} | 0x{LOCAL_MARK:x} counter name local accept\n        meta nfproto ipv6 counter name ipv6 {}\n    }}\n}}\n",
            if cfg.ipv6_drop { "drop" } else { "accept" },
        );
        nft(&script)?;
        let want = cfg.iptables_rules();
        let have = installed_rules()?;
        for r in want.iter().filter(|r| !have.contains(r)) {
            let mut a = vec!["-A".to_string()];
            a.extend(r.iter().cloned());
            iptables(&a)?;
        }
        for r in have.iter().filter(|r| !want.contains(r)) {
            let mut d = vec!["-D".to_string()];
            d.extend(r.iter().cloned());
            iptables(&d)?;
        }
        Ok(Hooks { cfg: Some(cfg), local, windows, blocked })
    }

    /// Bring the sets to these contents, in one transaction.
    pub fn update(&mut self, local: Option<Elements>, windows: Option<Vec<Elements>>, blocked: Option<Elements>) -> Result<(), String> {
        if self.cfg.is_none() {
            return Ok(());
        }
        let mut changes: Vec<(String, &Elements, &Elements)> = vec![];
        if let Some(l) = &local {
            changes.push(("local4".into(), &self.local, l));
        }
        if let Some(b) = &blocked {
            changes.push(("blocked4".into(), &self.blocked, b));
        }
        let none = Elements::new();
        if let Some(ws) = &windows {
            for (k, w) in ws.iter().enumerate() {
                changes.push((format!("window4_{k}"), self.windows.get(k).unwrap_or(&none), w));
            }
        }
        // Deletions first: a set must never hold overlapping intervals, and
        // a destination that moves between sets is in one of them at most.
        let (mut script, mut adds) = (String::new(), String::new());
        for (name, old, new) in &changes {
            let gone: Elements = old.difference(new).copied().collect();
            let come: Elements = new.difference(old).copied().collect();
            if !gone.is_empty() {
                script.push_str(&format!("delete element inet vinet {name} {{ {} }}\n", elements(&gone)));
            }
            if !come.is_empty() {
                adds.push_str(&format!("add element inet vinet {name} {{ {} }}\n", elements(&come)));
            }
        }
        script.push_str(&adds);
        if script.is_empty() {
            return Ok(());
        }
        nft(&script)?;
        if let Some(l) = local {
            self.local = l;
        }
        if let Some(w) = windows {
            self.windows = w;
        }
        if let Some(b) = blocked {
            self.blocked = b;
        }
        Ok(())
    }
}

/// Remove vinetd's hooks (`vinetd unhook`): its table and its iptables rules.
pub fn remove() -> Result<(), String> {
    nft("table inet vinet {}\ndelete table inet vinet\n")?;
    for r in installed_rules()? {
        let mut d = vec!["-D".to_string()];
        d.extend(r);
        iptables(&d)?;
    }
    Ok(())
}

/// The table's counters (packets): blocked, window, local, ipv6 (and
/// overlay, with `[overlay]`).
pub fn counters() -> Option<Vec<(String, u64)>> {
    let out = Command::new("nft").args(["-j", "list", "counters", "table", "inet", "vinet"]).stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v["nftables"]
            .as_array()?
            .iter()
            .filter_map(|o| {
                let c = o.get("counter")?;
                Some((c["name"].as_str()?.to_string(), c["packets"].as_u64()?))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_sets_have_no_nested_elements() {
        let m = minimal([
            Dest::Exact(0x0a00_0302),
            Dest::Prefix(0x0a00_0300, 24),
            Dest::Exact(0x0a00_0402),
            Dest::Prefix(0x0a00_0000, 16),
            Dest::Exact(0x0b00_0001),
            Dest::Exact(0x0b00_0001),
        ]);
        assert_eq!(m, BTreeSet::from([(0x0a00_0000, 16), (0x0b00_0001, 32)]));
        assert_eq!(elements(&m), "10.0.0.0/16, 11.0.0.1");
        assert!(minimal([]).is_empty());
        // Host bits of a prefix are cleared.
        assert_eq!(minimal([Dest::Prefix(0x0a00_0307, 24)]), BTreeSet::from([(0x0a00_0300, 24)]));
    }

    #[test]
    fn rules_follow_the_config() {
        let c = HookConfig { first_queue: 3, local_lanes: 2, window_lanes: 2, down_open: false, ipv6_drop: false, overlay: false };
        let r = c.iptables_rules();
        assert!(r[0].join(" ").starts_with("PREROUTING -m mark --mark 0x30000000/0x30000000 -m socket"));
        assert_eq!(
            r[1].join(" "),
            "FORWARD -m mark --mark 0x10000000/0x10000000 -m comment --comment vinetd -j NFQUEUE --queue-balance 3:4"
        );
        assert_eq!(r[2].join(" "), "FORWARD -m mark --mark 0x20000000/0x20ff0000 -m comment --comment vinetd -j NFQUEUE --queue-num 5");
        assert_eq!(r[3].join(" "), "FORWARD -m mark --mark 0x20010000/0x20ff0000 -m comment --comment vinetd -j NFQUEUE --queue-num 6");
        let open = HookConfig { local_lanes: 1, down_open: true, ..c.clone() };
        assert!(open.iptables_rules()[1].join(" ").ends_with("--queue-num 3 --queue-bypass"));
        // Without [overlay], no rule of its own; with it, one more queue after the windowed lanes'.
        assert_eq!(r.len(), 4);
        let ov = HookConfig { overlay: true, ..c };
        let r = ov.iptables_rules();
        assert_eq!(r.len(), 5);
        assert_eq!(ov.overlay_queue(), 7);
        assert_eq!(r[4].join(" "), "FORWARD -m mark --mark 0x40000000/0x40000000 -m comment --comment vinetd -j NFQUEUE --queue-num 7");
        assert_eq!(ov.ours(), OURS | OVERLAY_MARK);
    }
}
