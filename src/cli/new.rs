//! `vinetc new firewall|spam|multicast|worm ...`: a program from parameters.
//!
//! The paper's middleware: "the user will be able to specify certain
//! parameters ... and the system will generate the appropriate program". Each
//! kind is a template modelled on its shipped example (`examples/*.vinet`),
//! with the user's values as `PARAM`s (so one proof serves other values, and
//! the program reads as the paper writes it). Every value is checked before
//! anything is written, the generated text is compiled (a failure there is a
//! bug here, reported as such) and laid out by `vinetc fmt`'s formatter, and
//! with `--policy` the program's lifetime, client kind and cost are held
//! against the router's policy by the static analyzer, so a program `new`
//! writes is one `vinetc prove` proves.

use std::path::PathBuf;

use vinet_checker::policy::ClientKind;
use vinet_vocab::names::parse_duration;
use vinet_vocab::IpPrefix;

use super::{fmt_lifetime, load_policy, Failure};

const AFTER_HELP: &str = "\
Examples:
  vinetc new firewall --block 10.0.0.7 --block 192.0.2.0/24 --lifetime 3600 -o fw.vinet
  vinetc new spam --word viagra --word lottery --lifetime '5 days' -o spam.vinet
  vinetc new multicast --broadcaster 198.51.100.7 --group 10.9.0.0/24 --window '5 hours' -o mc.vinet
  vinetc new worm --threshold 8 --policy examples/policies/edge-router.toml -o worm.vinet

Writes a VInet program (to stdout, or to -o FILE, which it does not replace
without --force unless it already holds the same program), formatted as `vinetc fmt` formats it. A firewall and a spam
filter are for end users (THIS_IP) unless --for edge-router; a multicast
aggregator and a worm blocker are for edge routers (THIS_SUBNET_IP). With
--policy, the program must fit the router's policy (client kind, lifetime,
cost), checked by static analysis. --lifetime is seconds or \"N UNIT\".
Exit 0: written; 2: a bad parameter (one line saying which and why).";

/// Arguments of `vinetc new`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The kind of program and its parameters.
    #[command(subcommand)]
    pub kind: Kind,
}

/// The kinds of program.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Kind {
    /// A virtual firewall: drop what some sources send to the client.
    Firewall(Firewall),
    /// A spam filter: drop a source's packets that carry the words.
    Spam(Spam),
    /// A multicast aggregator: one copy of a broadcast's content, and its destinations, to the client router.
    Multicast(Multicast),
    /// A worm blocker: drop a source that contacts more than THRESHOLD destinations of the subnet in a window.
    Worm(Worm),
}

/// What every kind takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// The program's LIFETIME: seconds, or "N UNIT" ("2 days") [default: the kind's example's].
    #[arg(long, value_name = "DURATION")]
    pub lifetime: Option<String>,
    /// Hold the program against this router policy (client kind, lifetime, cost).
    #[arg(long, value_name = "POLICY.toml")]
    pub policy: Option<PathBuf>,
    /// Whose traffic: end-user (THIS_IP) or edge-router (THIS_SUBNET_IP) [default: the policy's, else the kind's].
    #[arg(long = "for", value_name = "CLIENT", value_parser = ["end-user", "edge-router"])]
    pub client: Option<String>,
    /// Where to write the program [default: stdout].
    #[arg(short, long, value_name = "PROG.vinet")]
    pub output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// `vinetc new firewall`.
#[derive(clap::Args, Debug, Clone)]
pub struct Firewall {
    /// A source to drop: an address or a prefix (repeat, at least one).
    #[arg(long = "block", value_name = "ADDR|NET/LEN")]
    pub blocks: Vec<String>,
    /// Common options.
    #[command(flatten)]
    pub common: Common,
}

/// `vinetc new spam`.
#[derive(clap::Args, Debug, Clone)]
pub struct Spam {
    /// A word of the spam (repeat, at least one).
    #[arg(long = "word", value_name = "WORD")]
    pub words: Vec<String>,
    /// Drop a source when any word occurs [default: when all occur].
    #[arg(long)]
    pub any: bool,
    /// Common options.
    #[command(flatten)]
    pub common: Common,
}

/// `vinetc new multicast`.
#[derive(clap::Args, Debug, Clone)]
pub struct Multicast {
    /// The broadcast's source address.
    #[arg(long, value_name = "ADDR")]
    pub broadcaster: Option<String>,
    /// The broadcast's destinations, a prefix inside the client's subnet [default: the whole subnet].
    #[arg(long, value_name = "NET/LEN")]
    pub group: Option<String>,
    /// The broadcast's time window: the program's lifetime (same as --lifetime).
    #[arg(long, value_name = "DURATION", conflicts_with = "lifetime")]
    pub window: Option<String>,
    /// Common options.
    #[command(flatten)]
    pub common: Common,
}

/// `vinetc new worm`.
#[derive(clap::Args, Debug, Clone)]
pub struct Worm {
    /// The most distinct destinations a source may contact in one window.
    #[arg(long, value_name = "N")]
    pub threshold: Option<String>,
    /// Common options.
    #[command(flatten)]
    pub common: Common,
}

/// The most sources one firewall blocks, and words one filter looks for.
pub const MAX_ITEMS: usize = 32;
/// The longest word: the router finds a word split over TCP segments when it
/// is at most 64 bytes (it keeps a flow's last 63; docs/SEMANTICS.md).
pub const MAX_WORD: usize = 64;

/// A generated program: its text (formatted) and a one-line description.
#[derive(Debug)]
pub struct Generated {
    /// The program.
    pub source: String,
    /// What it is, for people.
    pub summary: String,
    /// The file name it suggests (`firewall.vinet`, ...).
    pub name: &'static str,
}

impl Kind {
    /// The options every kind takes.
    pub fn common(&self) -> &Common {
        match self {
            Kind::Firewall(a) => &a.common,
            Kind::Spam(a) => &a.common,
            Kind::Multicast(a) => &a.common,
            Kind::Worm(a) => &a.common,
        }
    }
}

fn usage<T>(m: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(m.into()))
}

/// A lifetime in seconds: bare seconds, or "N UNIT".
fn lifetime(flag: &str, text: &str) -> Result<u64, Failure> {
    let t = text.trim();
    let secs = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        t.replace('_', "").parse::<u64>().map_err(|_| Failure::Usage(format!("{flag} {text}: too long")))?
    } else {
        parse_duration(t).map_err(|e| Failure::Usage(format!("{flag} {text}: {e}")))?
    };
    if secs == 0 {
        return usage(format!("{flag} {text}: a program must live at least one second"));
    }
    Ok(secs)
}

/// A string literal of the language for `s` (its escapes).
fn literal(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An address: no prefix length (a /32 or /128 is written as the address).
fn address(flag: &str, text: &str) -> Result<IpPrefix, Failure> {
    let p: IpPrefix = text.trim().parse().map_err(|e: vinet_vocab::PrefixError| Failure::Usage(format!("{flag} {text}: {e}")))?;
    if p.length() != 128 {
        return usage(format!("{flag} {text}: one address is needed here, not a prefix"));
    }
    Ok(p)
}

/// An address or a prefix, in the language's syntax (`1.2.3.4`, `2001:db8::1`, `10.0.0.0/8`).
fn written(p: IpPrefix) -> String {
    if p.length() == 128 {
        vinet_vocab::addr_text(p.net())
    } else {
        p.to_string()
    }
}

/// Generate the program for `kind` (checking its parameters, and the policy
/// if one is given); nothing is written.
pub fn generate(kind: &Kind) -> Result<Generated, Failure> {
    let common = kind.common();
    let policy = common.policy.as_ref().map(|p| load_policy(p).map(|pol| (p, pol))).transpose()?;
    let natural = match kind {
        Kind::Firewall(_) | Kind::Spam(_) => ClientKind::EndUser,
        Kind::Multicast(_) | Kind::Worm(_) => ClientKind::EdgeRouter,
    };
    let asked = match common.client.as_deref() {
        Some("edge-router") => Some(ClientKind::EdgeRouter),
        Some(_) => Some(ClientKind::EndUser),
        None => None,
    };
    let name_of = |k: ClientKind| if k == ClientKind::EndUser { "end-user" } else { "edge-router" };
    let client = match (asked, &policy) {
        (Some(a), Some((path, pol))) if a != pol.client => {
            return usage(format!("--for {} but the policy {} is for {} clients", name_of(a), path.display(), name_of(pol.client)))
        }
        (Some(a), _) => a,
        (None, Some((_, pol))) => pol.client,
        (None, None) => natural,
    };
    let what = match kind {
        Kind::Firewall(_) => "firewall",
        Kind::Spam(_) => "spam",
        Kind::Multicast(_) => "multicast",
        Kind::Worm(_) => "worm",
    };
    if natural == ClientKind::EdgeRouter && client == ClientKind::EndUser {
        return usage(format!(
            "a {what} program works on an edge router's subnet (THIS_SUBNET_IP): it is for edge-router clients, and this one is an end user"
        ));
    }
    let (mine, mine_doc) = match client {
        ClientKind::EndUser => ("THIS_IP", "this client"),
        ClientKind::EdgeRouter => ("THIS_SUBNET_IP", "this client's subnet"),
        ClientKind::OnOwner => {
            return usage(
                "vinetc new writes programs for end users and edge routers; an overlay-network owner's program starts from OnPackets (docs/LANGUAGE.md)",
            )
        }
    };
    let (default_life, life_flag, life_text) = match kind {
        Kind::Multicast(m) if m.window.is_some() => (0, "--window", m.window.clone()),
        Kind::Firewall(_) => (2 * 86_400, "--lifetime", common.lifetime.clone()),
        Kind::Spam(_) => (5 * 86_400, "--lifetime", common.lifetime.clone()),
        Kind::Multicast(_) => (5 * 3600, "--lifetime", common.lifetime.clone()),
        Kind::Worm(_) => (86_400, "--lifetime", common.lifetime.clone()),
    };
    let life = match &life_text {
        Some(t) => lifetime(life_flag, t)?,
        None => default_life,
    };
    if let Some((path, pol)) = &policy {
        if life > pol.max_lifetime_secs {
            return usage(format!(
                "{life_flag} {}: over the policy {}'s maximum lifetime of {}",
                fmt_lifetime(life),
                path.display(),
                fmt_lifetime(pol.max_lifetime_secs)
            ));
        }
    }
    let cx = Context { mine, mine_doc, life, policy: policy.as_ref().map(|(p, pol)| (p.as_path(), pol)) };
    let Template { name, summary, lines } = match kind {
        Kind::Firewall(a) => firewall(a, &cx)?,
        Kind::Spam(a) => spam(a, &cx)?,
        Kind::Multicast(a) => multicast(a, &cx)?,
        Kind::Worm(a) => worm(a, &cx)?,
    };
    let mut text = String::new();
    for l in lines {
        // The description comment, wrapped at 78 columns.
        if let Some(body) = l.strip_prefix("// ") {
            let mut line = String::from("//");
            for w in body.split(' ') {
                if line.len() + 1 + w.len() > 78 && line != "//" {
                    text.push_str(&line);
                    text.push('\n');
                    line = String::from("//");
                }
                line.push(' ');
                line.push_str(w);
            }
            text.push_str(&line);
        } else {
            text.push_str(&l);
        }
        text.push('\n');
    }
    let bug = |what: &str, e: String| Failure::Usage(format!("vinetc new {what} made a program that {e}: this is a bug in vinetc"));
    let source = vinet_lang::format::format(name, &text).map_err(|d| bug(what, format!("does not parse: {}", d.render())))?;
    let compiled = vinet_lang::compile(name, source.as_bytes(), &[]).map_err(|d| bug(what, format!("does not compile: {}", d.render())))?;
    if let Some((path, pol)) = &policy {
        if let Err(v) = vinet_analyzer::analyze(&compiled.module, pol) {
            // When only the lifetime is too long for the cost, say how long it may be.
            let mut one_second = compiled.module.clone();
            one_second.header.lifetime_secs = 1;
            let hint = match vinet_analyzer::analyze(&one_second, pol) {
                Ok(per_sec) if per_sec.complexity > 0 && pol.cost_up / per_sec.complexity < life => {
                    let most = (pol.cost_up / per_sec.complexity).min(pol.max_lifetime_secs);
                    format!(" (complexity {} units/window: {life_flag} at most {most} seconds)", per_sec.complexity)
                }
                _ => String::new(),
            };
            return usage(format!("{what}: the program does not fit the policy {}: {}{hint}", path.display(), v.reason));
        }
    }
    let who = if client == ClientKind::EndUser { "an end user" } else { "an edge router" };
    Ok(Generated { source, summary: format!("{summary} for {who}, lifetime {}", fmt_lifetime(life)), name })
}

/// What a template needs to know of the client and the policy.
struct Context<'a> {
    /// THIS_IP or THIS_SUBNET_IP.
    mine: &'static str,
    /// The same, for the description comment.
    mine_doc: &'static str,
    /// The lifetime, seconds.
    life: u64,
    /// The policy file and the policy, when one was given.
    policy: Option<(&'a std::path::Path, &'a vinet_checker::Policy)>,
}

/// A template's program: its suggested file name, a description, and its
/// lines (a line starting `// ` is the description comment, wrapped later).
struct Template {
    name: &'static str,
    summary: String,
    lines: Vec<String>,
}

/// A firewall: drop what the --block sources send.
fn firewall(a: &Firewall, cx: &Context) -> Result<Template, Failure> {
    let (mine, mine_doc) = (cx.mine, cx.mine_doc);
    let mut lines: Vec<String> = vec![];
    if a.blocks.is_empty() {
        return usage("firewall: give at least one --block ADDR or --block NET/LEN (a source to drop)");
    }
    if a.blocks.len() > MAX_ITEMS {
        return usage(format!("firewall: {} --block values (at most {MAX_ITEMS} in one program)", a.blocks.len()));
    }
    let mut blocks: Vec<IpPrefix> = vec![];
    for b in &a.blocks {
        let p: IpPrefix = b.trim().parse().map_err(|e: vinet_vocab::PrefixError| Failure::Usage(format!("--block {b}: {e}")))?;
        if let Some(q) = blocks.iter().find(|q| q.covers(p) || p.covers(**q)) {
            let why = if *q == p { "given twice".to_string() } else { format!("overlaps --block {}", written(*q)) };
            return usage(format!("--block {b}: {why} (each source once)"));
        }
        blocks.push(p);
    }
    let w: Vec<String> = blocks.iter().map(|p| written(*p)).collect();
    lines.push(format!("// Generated by `vinetc new firewall`: drop everything that these sources send to {mine_doc}: {}.", w.join(", ")));
    lines.push(format!("LIFETIME = {}", fmt_lifetime(cx.life)));
    let names: Vec<String> =
        if blocks.len() == 1 { vec!["SrcIP".into()] } else { (1..=blocks.len()).map(|i| format!("Block{i}")).collect() };
    for (n, p) in names.iter().zip(&blocks) {
        lines.push(format!("PARAM {n} = {};", written(*p)));
    }
    lines.push(format!("MyPackets = GROUP_BY_DESTINATION(AllPackets, {mine});"));
    if names.len() == 1 {
        lines.push("BadPackets = GROUP_BY_SOURCE(MyPackets, SrcIP);".into());
        lines.push("DISCARD(BadPackets);".into());
    } else {
        for n in &names {
            lines.push(format!("DISCARD(GROUP_BY_SOURCE(MyPackets, {n}));"));
        }
    }
    let summary = format!("a firewall dropping {} source{}", blocks.len(), if blocks.len() == 1 { "" } else { "s" });
    Ok(Template { name: "firewall.vinet", summary, lines })
}

/// A spam filter: drop a source whose packets carry the words.
fn spam(a: &Spam, cx: &Context) -> Result<Template, Failure> {
    let (mine, mine_doc) = (cx.mine, cx.mine_doc);
    let mut lines: Vec<String> = vec![];
    if a.words.is_empty() {
        return usage("spam: give at least one --word WORD (the words that mark a source's traffic as spam)");
    }
    if a.words.len() > MAX_ITEMS {
        return usage(format!("spam: {} --word values (at most {MAX_ITEMS} in one program)", a.words.len()));
    }
    for (i, w) in a.words.iter().enumerate() {
        if w.is_empty() {
            return usage("--word \"\": an empty word occurs in every packet");
        }
        if w.len() > MAX_WORD {
            return usage(format!(
                "--word {w:?}: {} bytes, more than {MAX_WORD} (a longer word is missed when it is split over TCP segments)",
                w.len()
            ));
        }
        if a.words[..i].contains(w) {
            return usage(format!("--word {w:?}: given twice"));
        }
    }
    let names: Vec<String> = (1..=a.words.len()).map(|i| format!("Word{i}")).collect();
    let joiner = if a.any { " or " } else { " and " };
    lines.push(format!(
            "// Generated by `vinetc new spam`: drop the traffic to {mine_doc} of any source whose packets in the window contain {} of the words.",
            if a.any || a.words.len() == 1 { "one" } else { "all" }
        ));
    lines.push(format!("LIFETIME = {}", fmt_lifetime(cx.life)));
    for (n, w) in names.iter().zip(&a.words) {
        lines.push(format!("PARAM {n} = {};", literal(w)));
    }
    lines.push(format!("MyPackets = GROUP_BY_DESTINATION(AllPackets, {mine});"));
    lines.push("SourceIP(i), Packets(i) = GROUP_BY_SOURCE(MyPackets);".into());
    lines.push("foreach i do".into());
    let tests: Vec<String> = names.iter().map(|n| format!("CONTAINS_STRING(Packets(i), {n})")).collect();
    lines.push(format!("if {} then", tests.join(joiner)));
    lines.push("DISCARD(Packets(i));".into());
    let summary = format!("a spam filter for {} word{}", a.words.len(), if a.words.len() == 1 { "" } else { "s" });
    Ok(Template { name: "spam_filter.vinet", summary, lines })
}

/// The paper's multicast aggregator: one copy of each content of the broadcast.
fn multicast(a: &Multicast, cx: &Context) -> Result<Template, Failure> {
    let mine = cx.mine;
    let mut lines: Vec<String> = vec![];
    let Some(b) = &a.broadcaster else {
        return usage("multicast: give --broadcaster ADDR (the broadcast's source)");
    };
    let b = address("--broadcaster", b)?;
    let group =
        a.group.as_ref().map(|g| g.trim().parse::<IpPrefix>().map_err(|e| Failure::Usage(format!("--group {g}: {e}")))).transpose()?;
    lines.push(format!(
            "// Generated by `vinetc new multicast`: the broadcast from {} into {} is replaced by one copy of each content and the list of destinations, sent to the client router (THIS_IP).",
            written(b),
            group.map_or("this client's subnet".to_string(), |g| format!("{g} (in this client's subnet)"))
        ));
    lines.push(format!("LIFETIME = {}", fmt_lifetime(cx.life)));
    lines.push(format!("PARAM BroadcastIP = {};", written(b)));
    match group {
        Some(g) => {
            lines.push(format!("PARAM Group = {};", written(g)));
            lines.push(format!("Mine = GROUP_BY_DESTINATION(AllPackets, {mine});"));
            lines.push("MyPackets = GROUP_BY_DESTINATION(Mine, Group);".into());
        }
        None => lines.push(format!("MyPackets = GROUP_BY_DESTINATION(AllPackets, {mine});")),
    }
    lines.push("Broadcast = GROUP_BY_SOURCE(MyPackets, BroadcastIP);".into());
    lines.push("Destinations, Content = GROUP_BY_CONTENT(Broadcast);".into());
    lines.push("GENERATE(BroadcastIP, THIS_IP, Destinations);".into());
    lines.push("GENERATE(BroadcastIP, THIS_IP, Content);".into());
    lines.push("DISCARD(Broadcast);".into());
    let summary = format!("a multicast aggregator for the broadcast from {}", written(b));
    Ok(Template { name: "multicast.vinet", summary, lines })
}

/// A worm blocker: drop a source that contacts more than N destinations.
fn worm(a: &Worm, cx: &Context) -> Result<Template, Failure> {
    let (mine, mine_doc) = (cx.mine, cx.mine_doc);
    let mut lines: Vec<String> = vec![];
    let Some(t) = &a.threshold else {
        return usage("worm: give --threshold N (the most distinct destinations a source may contact in one window)");
    };
    let n: u64 = t.trim().parse().map_err(|_| Failure::Usage(format!("--threshold {t}: not a whole number of destinations")))?;
    if n == 0 {
        return usage("--threshold 0: every source that sends anything would be dropped; give at least 1");
    }
    if let Some((path, pol)) = cx.policy {
        if n >= u64::from(pol.window_packets) {
            return usage(format!(
                "--threshold {n}: a window of the policy {} holds {} packets, so no source can exceed it",
                path.display(),
                pol.window_packets
            ));
        }
    }
    lines.push(format!(
            "// Generated by `vinetc new worm`: any source that contacts more than {n} distinct destinations of {mine_doc} within one window is scanning; its traffic into the subnet is dropped."
        ));
    lines.push(format!("LIFETIME = {}", fmt_lifetime(cx.life)));
    lines.push("CLASS = filtering".into());
    lines.push(format!("PARAM N = {n};"));
    lines.push(format!("MySubnet = GROUP_BY_DESTINATION(AllPackets, {mine});"));
    lines.push("Source(i), Sent(i) = GROUP_BY_SOURCE(MySubnet);".into());
    lines.push("foreach i do".into());
    lines.push("if DISTINCT_DESTINATIONS(Sent(i)) > N then".into());
    lines.push("DISCARD(Sent(i));".into());
    let summary = format!("a worm blocker (more than {n} destinations a window)");
    Ok(Template { name: "worm_blocker.vinet", summary, lines })
}

/// Write a generated program: to stdout, or to a file, which is not replaced
/// without `force` unless it already holds this very program. The verb said
/// ("wrote", or "kept" for a file that already held it).
pub fn write(g: &Generated, output: Option<&PathBuf>, force: bool) -> Result<&'static str, Failure> {
    match output {
        None => {
            print!("{}", g.source);
            Ok("wrote")
        }
        Some(p) => {
            if p.exists() && !force {
                if std::fs::read(p).is_ok_and(|old| old == g.source.as_bytes()) {
                    return Ok("kept");
                }
                return usage(format!("{} exists (use --force to replace it)", p.display()));
            }
            std::fs::write(p, &g.source).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", p.display())))?;
            Ok("wrote")
        }
    }
}

/// Run `vinetc new`.
pub fn run(args: Args) -> Result<(), Failure> {
    let g = generate(&args.kind)?;
    let c = args.kind.common();
    let verb = write(&g, c.output.as_ref(), c.force)?;
    if let Some(p) = &c.output {
        println!("{verb} {}: {}", p.display(), g.summary);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        kind: Kind,
    }

    fn new(args: &[&str]) -> Result<Generated, String> {
        let cli = Cli::try_parse_from(std::iter::once("new").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        generate(&cli.kind).map_err(|f| match f {
            Failure::Usage(m) | Failure::Rejected(m) => m,
        })
    }

    fn policy(name: &str) -> String {
        format!("{}/examples/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn programs_are_formatted_and_compile() {
        for args in [
            &["firewall", "--block", "10.0.0.7", "--block", "192.0.2.0/24", "--lifetime", "3600"][..],
            &["firewall", "--block", "203.0.113.9"],
            &["spam", "--word", "viagra", "--word", "lot\"tery\\", "--any"],
            &["multicast", "--broadcaster", "198.51.100.7", "--group", "10.9.0.0/24", "--window", "5 hours"],
            &["worm", "--threshold", "8", "--for", "edge-router"],
            &["spam", "--word", "x", "--policy", &policy("edge-router")],
        ] {
            let g = new(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(vinet_lang::format::format("t", &g.source).unwrap(), g.source, "{args:?}");
            vinet_lang::compile("t", g.source.as_bytes(), &[]).unwrap_or_else(|d| panic!("{args:?}: {}", d.render()));
        }
        let g = new(&["firewall", "--block", "10.0.0.7", "--block", "192.0.2.0/24", "--lifetime", "3600"]).unwrap();
        assert!(g.source.contains("LIFETIME = 1 hour\nPARAM Block1 = 10.0.0.7;\nPARAM Block2 = 192.0.2.0/24;"), "{}", g.source);
        let g = new(&["spam", "--word", "a\"b"]).unwrap();
        assert!(g.source.contains(r#"PARAM Word1 = "a\"b";"#), "{}", g.source);
    }

    #[test]
    fn bad_parameters_are_one_line_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["firewall"], "at least one --block"),
            (&["firewall", "--block", "10.0.0.1/16"], "--block 10.0.0.1/16: `10.0.0.1/16` has host bits set (did you mean 10.0.0.0/16?)"),
            (&["firewall", "--block", "300.0.0.1"], "is not an address or prefix"),
            (&["firewall", "--block", "10.0.0.7", "--block", "10.0.0.0/24"], "overlaps --block 10.0.0.7"),
            (&["firewall", "--block", "10.0.0.7", "--block", "10.0.0.7"], "given twice"),
            (&["firewall", "--block", "10.0.0.7", "--lifetime", "0"], "at least one second"),
            (&["firewall", "--block", "10.0.0.7", "--lifetime", "2 weeks"], "unknown unit"),
            (&["firewall", "--block", "10.0.0.7", "--lifetime", "40 days", "--policy", &policy("end-user")], "maximum lifetime of 30 days"),
            (&["firewall", "--block", "10.0.0.7", "--for", "edge-router", "--policy", &policy("end-user")], "is for end-user clients"),
            (&["spam"], "at least one --word"),
            (&["spam", "--word", ""], "empty word"),
            (&["spam", "--word", "a", "--word", "a"], "given twice"),
            (&["multicast"], "--broadcaster"),
            (&["multicast", "--broadcaster", "10.0.0.0/8"], "one address is needed"),
            (&["multicast", "--broadcaster", "10.0.0.1", "--group", "10.9.0.1/24"], "host bits"),
            (&["multicast", "--broadcaster", "10.0.0.1", "--for", "end-user"], "for edge-router clients"),
            (&["worm"], "--threshold"),
            (&["worm", "--threshold", "0"], "at least 1"),
            (&["worm", "--threshold", "3x"], "not a whole number"),
            (&["worm", "--threshold", "256", "--policy", &policy("edge-router")], "holds 256 packets"),
            (&["spam", "--word", "a", "--lifetime", "30 days", "--policy", &policy("end-user")], "does not fit the policy"),
            (&["spam", "--word", "a", "--word", "b", "--word", "c", "--policy", &policy("edge-router")], "--lifetime at most "),
        ];
        for (args, want) in cases {
            let e = new(args).map(|g| g.source).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'), "{args:?}: one line: {e}");
        }
    }
}
