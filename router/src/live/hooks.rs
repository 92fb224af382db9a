//! vinetd's own kernel hooks: an nftables table `inet vinet` and NFQUEUE
//! rules in the mangle table's FORWARD chain of iptables and of ip6tables,
//! written from the config and kept in step with the installed programs.
//! Operators write no rule by hand.
//!
//! ```text
//! table inet vinet {
//!     set blocked4 { type ipv4_addr; flags interval; }    sources dropped for everyone
//!     set blocked6 { type ipv6_addr; flags interval; }
//!     set window4_K { type ipv4_addr; flags interval; }   destinations on windowed lane K
//!     set window6_K { type ipv6_addr; flags interval; }
//!     set local4   { type ipv4_addr; flags interval; }    destinations whose programs are all packet-local
//!     set local6   { type ipv6_addr; flags interval; }
//!     chain forward {
//!         type filter hook forward priority mangle - 10; policy accept;
//!         ip saddr @blocked4 counter name blocked drop
//!         ip6 saddr @blocked6 counter name blocked drop
//!         meta nfproto ipv4 ip protocol gre meta mark set mark & ~OURS | OVERLAY counter name overlay accept      (with [overlay])
//!         meta nfproto ipv6 meta l4proto gre meta mark set mark & ~OURS | OVERLAY counter name overlay accept    (with [overlay])
//!         ip daddr @window4_K meta mark set mark & ~OURS | WINDOW_K counter name window accept   (each K)
//!         ip6 daddr @window6_K meta mark set mark & ~OURS | WINDOW_K counter name window accept  (each K)
//!         ip daddr @local4 meta mark set mark & ~OURS | LOCAL counter name local accept
//!         ip6 daddr @local6 meta mark set mark & ~OURS | LOCAL counter name local accept
//!         meta nfproto ipv6 counter name ipv6 [drop]                IPv6 to no client: untouched, or dropped
//!     }
//! }
//! {iptables,ip6tables} -t mangle -A PREROUTING -m mark --mark BOTH/BOTH -m socket --nowildcard -j RETURN   (turns on the defragmenter)
//! {iptables,ip6tables} -t mangle -A FORWARD -m mark --mark LOCAL/LOCAL -j NFQUEUE --queue-balance Q:Q+n-1 [--queue-bypass]
//! {iptables,ip6tables} -t mangle -A FORWARD -m mark --mark WINDOW_K/WINDOW|SHARD -j NFQUEUE --queue-num Q+n+K [--queue-bypass]   (each K)
//! {iptables,ip6tables} -t mangle -A FORWARD -m mark --mark OVERLAY/OVERLAY -j NFQUEUE --queue-num Q+n+k [--queue-bypass]   (with [overlay])
//! ```
//!
//! - **Two families, one address space.** vinet's addresses are 128 bits,
//!   IPv4 as IPv4-mapped (`::ffff:a.b.c.d`). A client destination inside
//!   `::ffff:0:0/96` goes to the IPv4 set of its lane, any other to the IPv6
//!   one (a prefix shorter than /96 that holds all of IPv4, such as `::/0`,
//!   to both: its IPv4 part is `0.0.0.0/0`). The two families' rules set the
//!   same marks, and the same queues and lanes take both: a program sees a
//!   client's IPv4 and IPv6 packets alike, and the engine parses both.
//! - **IPv6 to no client.** The last rule counts forwarded IPv6 that matched
//!   no set (no program sees it) and, with `ipv6 = "drop"`, drops it; by
//!   default it is forwarded untouched. IPv4 to no client is not counted.
//! - **Overlay networks.** With `[overlay]`, every forwarded GRE packet
//!   (protocol 47 behind the IPv4 header, or after IPv6's extension headers;
//!   whole, after the defragmenter) goes to the ON lane, the queue after the
//!   windowed lanes', which serves it within its ON's reservation
//!   (`live::overlay`). It is matched before the destination sets: an ON's
//!   packets are the ON's, served by its partition, and client programs do
//!   not see the outer packets of tunnels that cross the router. Without
//!   `[overlay]` the table and the rules are exactly as they were.
//!
//! - **The fast path.** A packet to a destination with no program matches
//!   no set: it never leaves the kernel's forwarding path.
//! - **Fragments.** The PREROUTING rules' socket match makes the kernel
//!   reassemble IPv4 and IPv6 fragments before the forward hook (its
//!   defragmenters, `nf_defrag_ipv4` and `nf_defrag_ipv6`, with their limits:
//!   `net.ipv4.ipfrag_*`, `net.netfilter.nf_conntrack_frag6_*`), without
//!   connection tracking, so a program sees and decides whole datagrams, and
//!   the kernel fragments them again on the way out.
//! - **Down.** The hooks outlive vinetd: after a crash, a kill -9 or a stop,
//!   packets to clients with programs meet a queue nobody reads, and the
//!   kernel drops them (`down = "closed"`) or lets them pass (`"open"`,
//!   NFQUEUE's `--queue-bypass`); blocked sources stay dropped either way.
//!   `vinetd unhook` removes the hooks.
//! - **Start.** vinetd installs every stored lease first, then replaces the
//!   table in one nftables transaction, and only then binds its queues.
//!
//! nftables' own `queue` statement needs `nft_queue`, which not every kernel
//! has (this one does not); the NFQUEUE target of iptables and ip6tables
//! works with both of their back ends, hence the mark. ip6tables is run with
//! the back end iptables has (`ip6tables-nft` or `ip6tables-legacy`, as
//! `iptables --version` names it). The mangle table's FORWARD chain runs
//! before the filter table's, so the operator's own filter rules still apply
//! to what vinetd accepts. On a kernel without IPv6 (no
//! `/proc/sys/net/ipv6`) nothing is forwarded over IPv6 and the ip6tables
//! rules are not written.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use vinet_checker::{mapped, netmask};
use vinet_engine::dispatch::Dest;

/// The elements of one of vinetd's sets, in the 128-bit address space:
/// (network, prefix length 0 to 128), IPv4 as IPv4-mapped (a /n is /96+n).
pub type Elements = BTreeSet<(u128, u8)>;

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
/// The comment on vinetd's iptables and ip6tables rules (how it finds its own).
const COMMENT: &str = "vinetd";

/// An address family of the kernel's hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The digit of its sets' names (`local4`, `local6`).
    fn digit(self) -> char {
        match self {
            Family::V4 => '4',
            Family::V6 => '6',
        }
    }

    /// nftables' address match word (`ip saddr`, `ip6 daddr`).
    fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    /// nftables' address type.
    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    /// The iptables program of the family (ip6tables on iptables' back end).
    fn tables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => ip6tables(),
        }
    }
}

/// ip6tables with iptables' back end: `iptables --version` says `(nf_tables)`
/// or `(legacy)`, and Debian installs `ip6tables-nft` and `ip6tables-legacy`
/// beside the `ip6tables` of its alternatives. Plain `ip6tables` if the
/// named one is missing.
fn ip6tables() -> &'static str {
    static PROGRAM: OnceLock<&'static str> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let runs = |p: &str| Command::new(p).arg("--version").stdin(Stdio::null()).output().is_ok_and(|o| o.status.success());
        let version = Command::new("iptables").arg("--version").stdin(Stdio::null()).output().map(|o| o.stdout).unwrap_or_default();
        let version = String::from_utf8_lossy(&version);
        let named = if version.contains("(legacy)") {
            "ip6tables-legacy"
        } else if version.contains("(nf_tables)") {
            "ip6tables-nft"
        } else {
            "ip6tables"
        };
        if runs(named) {
            named
        } else {
            "ip6tables"
        }
    })
}

/// Whether the kernel has IPv6 at all (it forwards none without it).
fn kernel_has_ipv6() -> bool {
    std::path::Path::new("/proc/sys/net/ipv6").exists()
}

/// One of vinetd's sets, as the packet path names it (each is two sets in
/// the kernel, one a family).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SetId {
    Blocked,
    Local,
    Window(usize),
}

impl SetId {
    /// The kernel set of a family: `blocked4`, `local6`, `window4_K`.
    fn name(self, f: Family) -> String {
        match self {
            SetId::Blocked => format!("blocked{}", f.digit()),
            SetId::Local => format!("local{}", f.digit()),
            SetId::Window(k) => format!("window{}_{k}", f.digit()),
        }
    }
}

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
    /// Drop forwarded IPv6 to no client (else forward it untouched);
    /// counted either way. IPv6 to clients with programs is theirs.
    pub ipv6_drop: bool,
    /// Queue forwarded GRE (IPv4 and IPv6) to the ON lane (`[overlay]`),
    /// the queue after the windowed lanes'.
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

    /// The rules of iptables and of ip6tables (the same for both: marks and
    /// queues are family-neutral).
    fn iptables_rules(&self) -> Vec<Vec<String>> {
        let n = self.local_lanes.max(1);
        let local = if n == 1 {
            vec!["--queue-num".to_string(), self.first_queue.to_string()]
        } else {
            vec!["--queue-balance".to_string(), format!("{}:{}", self.first_queue, self.first_queue + n - 1)]
        };
        // The socket match turns on the kernel's defragmenter of the family
        // in this namespace (without connection tracking); behind a mark
        // test that never holds (both of vinetd's bits, before either is
        // set), the rule itself never runs a socket lookup.
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

    /// The whole table with these sets and `windows` windowed lanes, in one
    /// nftables transaction that replaces it.
    fn table(&self, sets: &KernelSets, windows: usize) -> String {
        let keep = !self.ours();
        let mut decl = String::new();
        for (name, (f, els)) in sets {
            let els = if els.is_empty() { String::new() } else { format!(" elements = {{ {} }};", elements(*f, els)) };
            decl += &format!("    set {name} {{ type {}; flags interval;{els} }}\n", f.addr_type());
        }
        let mark = |m: u32| format!("meta mark set meta mark & 0x{keep:x} | 0x{m:x}");
        let mut rules = String::new();
        for f in Family::BOTH {
            rules += &format!("        {} saddr @{} counter name blocked drop\n", f.nft(), SetId::Blocked.name(f));
        }
        let mut overlay_counter = String::new();
        if self.overlay {
            overlay_counter = "    counter overlay {}\n".into();
            rules += &format!("        meta nfproto ipv4 ip protocol gre {} counter name overlay accept\n", mark(OVERLAY_MARK));
            rules += &format!("        meta nfproto ipv6 meta l4proto gre {} counter name overlay accept\n", mark(OVERLAY_MARK));
        }
        for k in 0..windows {
            for f in Family::BOTH {
                rules += &format!(
                    "        {} daddr @{} {} counter name window accept\n",
                    f.nft(),
                    SetId::Window(k).name(f),
                    mark(window_mark(k as u16))
                );
            }
        }
        for f in Family::BOTH {
            rules += &format!("        {} daddr @{} {} counter name local accept\n", f.nft(), SetId::Local.name(f), mark(LOCAL_MARK));
        }
        rules += &format!("        meta nfproto ipv6 counter name ipv6 {}\n", if self.ipv6_drop { "drop" } else { "accept" });
        format!(
            "table inet vinet {{}}\ndelete table inet vinet\ntable inet vinet {{\n{decl}{overlay_counter}    counter blocked {{}}\n    counter window {{}}\n    counter local {{}}\n    counter ipv6 {{}}\n    chain forward {{\n        type filter hook forward priority mangle - 10; policy accept;\n{rules}    }}\n}}\n"
        )
    }
}

/// A destination's element: (network with its host bits cleared, length
/// in the 128-bit space).
fn element_of(d: Dest) -> (u128, u8) {
    match d {
        Dest::Addr(a) => (a, 128),
        Dest::Prefix(n, l) => {
            let l = l.min(128);
            (n & netmask(l), l)
        }
    }
}

/// The elements of an interval set: no element inside another (nftables
/// refuses overlapping intervals), their union the union of `dests`.
pub fn minimal(dests: impl IntoIterator<Item = Dest>) -> Elements {
    let mut all: Vec<(u128, u8)> = dests.into_iter().map(element_of).collect();
    // Shortest prefixes first: each later one is dropped if one kept holds it.
    all.sort_by_key(|&(n, l)| (l, n));
    let mut kept = Elements::new();
    let mut lens: BTreeSet<u8> = BTreeSet::new();
    for (n, l) in all {
        let covered = lens.iter().any(|&k| k <= l && kept.contains(&(n & netmask(k), k)));
        if !covered {
            kept.insert((n, l));
            lens.insert(l);
        }
    }
    kept
}

/// Every IPv4 address: `::ffff:0:0/96`.
const ALL_V4: (u128, u8) = (mapped(0), 96);

/// The elements of each family: an element inside `::ffff:0:0/96` is
/// IPv4's, any other IPv6's, and one that holds all of `::ffff:0:0/96`
/// (shorter than /96) gives IPv4 `0.0.0.0/0` too. Minimal sets stay minimal.
fn by_family(set: &Elements) -> (Elements, Elements) {
    let (mut v4, mut v6) = (Elements::new(), Elements::new());
    for &(n, l) in set {
        if l >= ALL_V4.1 && n & netmask(ALL_V4.1) == ALL_V4.0 {
            v4.insert((n, l));
        } else {
            v6.insert((n, l));
            if l < ALL_V4.1 && ALL_V4.0 & netmask(l) == n {
                v4.insert(ALL_V4);
            }
        }
    }
    (v4, v6)
}

/// An element as nftables writes it in a set of family `f`.
fn element(f: Family, &(n, l): &(u128, u8)) -> String {
    match f {
        Family::V4 => {
            let a = Ipv4Addr::from(n as u32);
            if l >= 128 {
                a.to_string()
            } else {
                format!("{a}/{}", l.saturating_sub(96))
            }
        }
        Family::V6 => {
            let a = Ipv6Addr::from(n);
            if l >= 128 {
                a.to_string()
            } else {
                format!("{a}/{l}")
            }
        }
    }
}

fn elements(f: Family, set: &Elements) -> String {
    set.iter().map(|e| element(f, e)).collect::<Vec<_>>().join(", ")
}

/// The kernel's sets by name: each one's family and elements.
type KernelSets = BTreeMap<String, (Family, Elements)>;

/// The two kernel sets of one of vinetd's sets.
fn kernel_sets(id: SetId, set: &Elements) -> [(String, (Family, Elements)); 2] {
    let (v4, v6) = by_family(set);
    [(id.name(Family::V4), (Family::V4, v4)), (id.name(Family::V6), (Family::V6, v6))]
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

fn iptables(f: Family, args: &[String]) -> Result<String, String> {
    let program = f.tables();
    let out = Command::new(program).args(["-w", "-t", "mangle"]).args(args).stdin(Stdio::null()).output().map_err(|e| {
        format!("cannot run {program}: {e} (vinetd queues packets with the NFQUEUE target of iptables and ip6tables: install iptables)")
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The families whose iptables rules vinetd writes here.
fn rule_families() -> Vec<Family> {
    if kernel_has_ipv6() {
        Family::BOTH.to_vec()
    } else {
        vec![Family::V4]
    }
}

/// vinetd's rules of a family now in the kernel, as `-A ...` argument lists.
fn installed_rules(f: Family) -> Result<Vec<Vec<String>>, String> {
    let text = iptables(f, &["-S".into()])?;
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
    sets: KernelSets,
}

impl Hooks {
    /// Hooks that vinetd does not manage (none installed, every update a no-op).
    pub fn unmanaged() -> Hooks {
        Hooks::default()
    }

    /// Replace the table in one transaction with these sets (`windows`:
    /// one a windowed lane; each set of both families), then make the
    /// iptables and ip6tables rules those of `cfg` (new ones added before
    /// old ones go).
    pub fn install(cfg: HookConfig, local: Elements, windows: Vec<Elements>, blocked: Elements) -> Result<Hooks, String> {
        let mut sets = KernelSets::new();
        sets.extend(kernel_sets(SetId::Blocked, &blocked));
        sets.extend(kernel_sets(SetId::Local, &local));
        for (k, w) in windows.iter().enumerate() {
            sets.extend(kernel_sets(SetId::Window(k), w));
        }
        nft(&cfg.table(&sets, windows.len()))?;
        let want = cfg.iptables_rules();
        for f in rule_families() {
            let have = installed_rules(f)?;
            for r in want.iter().filter(|r| !have.contains(r)) {
                let mut a = vec!["-A".to_string()];
                a.extend(r.iter().cloned());
                iptables(f, &a)?;
            }
            for r in have.iter().filter(|r| !want.contains(r)) {
                let mut d = vec!["-D".to_string()];
                d.extend(r.iter().cloned());
                iptables(f, &d)?;
            }
        }
        Ok(Hooks { cfg: Some(cfg), sets })
    }

    /// Bring the sets to these contents, in one transaction.
    pub fn update(&mut self, local: Option<Elements>, windows: Option<Vec<Elements>>, blocked: Option<Elements>) -> Result<(), String> {
        if self.cfg.is_none() {
            return Ok(());
        }
        let mut next = KernelSets::new();
        if let Some(l) = &local {
            next.extend(kernel_sets(SetId::Local, l));
        }
        if let Some(b) = &blocked {
            next.extend(kernel_sets(SetId::Blocked, b));
        }
        if let Some(ws) = &windows {
            for (k, w) in ws.iter().enumerate() {
                next.extend(kernel_sets(SetId::Window(k), w));
            }
        }
        let script = changes(&self.sets, &next);
        if script.is_empty() {
            return Ok(());
        }
        nft(&script)?;
        self.sets.extend(next);
        Ok(())
    }
}

/// The nftables commands that bring the kernel sets `old` holds to the
/// contents of `next` (the sets it names): deletions first, since a set
/// must never hold overlapping intervals, and a destination that moves
/// between sets is in one of them at most.
fn changes(old: &KernelSets, next: &KernelSets) -> String {
    let none = Elements::new();
    let (mut script, mut adds) = (String::new(), String::new());
    for (name, (f, new)) in next {
        let old = old.get(name).map_or(&none, |(_, e)| e);
        let gone: Elements = old.difference(new).copied().collect();
        let come: Elements = new.difference(old).copied().collect();
        if !gone.is_empty() {
            script.push_str(&format!("delete element inet vinet {name} {{ {} }}\n", elements(*f, &gone)));
        }
        if !come.is_empty() {
            adds.push_str(&format!("add element inet vinet {name} {{ {} }}\n", elements(*f, &come)));
        }
    }
    script + &adds
}

/// Remove vinetd's hooks (`vinetd unhook`): its table and its iptables and
/// ip6tables rules.
pub fn remove() -> Result<(), String> {
    nft("table inet vinet {}\ndelete table inet vinet\n")?;
    for f in rule_families() {
        for r in installed_rules(f)? {
            let mut d = vec!["-D".to_string()];
            d.extend(r);
            iptables(f, &d)?;
        }
    }
    Ok(())
}

/// The table's counters (packets): blocked, window, local (each over both
/// families), ipv6 (IPv6 to no client), and overlay, with `[overlay]`.
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

    const fn v4(a: u32) -> u128 {
        mapped(a)
    }
    /// fd00:N::/64's address `host`.
    const fn fd(n: u16, host: u16) -> u128 {
        (0xfd00u128 << 112) | (n as u128) << 96 | host as u128
    }

    #[test]
    fn minimal_sets_have_no_nested_elements() {
        let m = minimal([
            Dest::Addr(v4(0x0a00_0302)),
            Dest::Prefix(v4(0x0a00_0300), 120),
            Dest::Addr(v4(0x0a00_0402)),
            Dest::Prefix(v4(0x0a00_0000), 112),
            Dest::Addr(v4(0x0b00_0001)),
            Dest::Addr(v4(0x0b00_0001)),
            Dest::Addr(fd(3, 2)),
            Dest::Prefix(fd(3, 0), 64),
            Dest::Addr(fd(4, 2)),
        ]);
        assert_eq!(m, BTreeSet::from([(v4(0x0a00_0000), 112), (v4(0x0b00_0001), 128), (fd(3, 0), 64), (fd(4, 2), 128)]));
        let (a, b) = by_family(&m);
        assert_eq!(elements(Family::V4, &a), "10.0.0.0/16, 11.0.0.1");
        assert_eq!(elements(Family::V6, &b), "fd00:3::/64, fd00:4::2");
        assert!(minimal([]).is_empty());
        // Host bits of a prefix are cleared.
        assert_eq!(minimal([Dest::Prefix(v4(0x0a00_0307), 120)]), BTreeSet::from([(v4(0x0a00_0300), 120)]));
        assert_eq!(minimal([Dest::Prefix(fd(3, 7), 64)]), BTreeSet::from([(fd(3, 0), 64)]));
    }

    #[test]
    fn prefixes_that_hold_all_of_ipv4_are_in_both_families() {
        // ::/0 is every address: IPv6's ::/0 and IPv4's 0.0.0.0/0, and
        // nothing else survives beside it.
        let m = minimal([Dest::Prefix(0, 0), Dest::Addr(v4(0x0a00_0302)), Dest::Addr(fd(3, 2))]);
        let (a, b) = by_family(&m);
        assert_eq!((elements(Family::V4, &a), elements(Family::V6, &b)), ("0.0.0.0/0".into(), "::/0".into()));
        // ::ffff:0:0/96 is IPv4's only; ::/80 holds it; ::/97 is not IPv4.
        let (a, b) = by_family(&minimal([Dest::Prefix(mapped(0), 96)]));
        assert_eq!((elements(Family::V4, &a), b.len()), ("0.0.0.0/0".into(), 0));
        let (a, b) = by_family(&minimal([Dest::Prefix(0, 80)]));
        assert_eq!((elements(Family::V4, &a), elements(Family::V6, &b)), ("0.0.0.0/0".into(), "::/80".into()));
        let (a, b) = by_family(&minimal([Dest::Prefix(0, 97), Dest::Prefix(fd(0, 0), 8)]));
        assert_eq!((a.len(), elements(Family::V6, &b)), (0, "::/97, fd00::/8".into()));
    }

    #[test]
    fn set_updates_delete_before_they_add_in_each_family() {
        let old: KernelSets = kernel_sets(SetId::Local, &minimal([Dest::Addr(v4(0x0a00_0302)), Dest::Addr(fd(3, 2))])).into();
        let next: KernelSets = kernel_sets(SetId::Local, &minimal([Dest::Addr(v4(0x0a00_0303)), Dest::Addr(fd(3, 2))])).into();
        assert_eq!(changes(&old, &next), "delete element inet vinet local4 { 10.0.3.2 }\nadd element inet vinet local4 { 10.0.3.3 }\n");
        let gone: KernelSets = kernel_sets(SetId::Local, &Elements::new()).into();
        assert_eq!(changes(&old, &gone), "delete element inet vinet local4 { 10.0.3.2 }\ndelete element inet vinet local6 { fd00:3::2 }\n");
        assert_eq!(changes(&old, &old), "");
    }

    #[test]
    fn the_table_has_a_set_of_each_family_beside_each_other() {
        let c = HookConfig { first_queue: 0, local_lanes: 1, window_lanes: 2, down_open: false, ipv6_drop: true, overlay: true };
        let mut sets = KernelSets::new();
        sets.extend(kernel_sets(SetId::Blocked, &minimal([Dest::Addr(fd(1, 2))])));
        sets.extend(kernel_sets(SetId::Local, &minimal([Dest::Addr(v4(0x0a00_0302)), Dest::Addr(fd(3, 2))])));
        for k in 0..2 {
            sets.extend(kernel_sets(SetId::Window(k), &Elements::new()));
        }
        let t = c.table(&sets, 2);
        for line in [
            "set blocked6 { type ipv6_addr; flags interval; elements = { fd00:1::2 }; }",
            "set local4 { type ipv4_addr; flags interval; elements = { 10.0.3.2 }; }",
            "set local6 { type ipv6_addr; flags interval; elements = { fd00:3::2 }; }",
            "set window6_1 { type ipv6_addr; flags interval; }",
            "ip saddr @blocked4 counter name blocked drop",
            "ip6 saddr @blocked6 counter name blocked drop",
            "meta nfproto ipv6 meta l4proto gre meta mark set meta mark & 0x8f00ffff | 0x40000000 counter name overlay accept",
            "ip6 daddr @window6_1 meta mark set meta mark & 0x8f00ffff | 0x20010000 counter name window accept",
            "ip6 daddr @local6 meta mark set meta mark & 0x8f00ffff | 0x10000000 counter name local accept",
            "meta nfproto ipv6 counter name ipv6 drop",
        ] {
            assert!(t.contains(line), "{line}\nnot in\n{t}");
        }
        // The IPv6 catch-all comes last: IPv6 to a client is the client's.
        assert!(t.find("counter name ipv6").unwrap() > t.find("@local6").unwrap());
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
