//! `vinetc locate ADDRESS --directory DIR --trust AUTHORITY.pub`: the edge
//! router nearest a traffic source, from a directory of signed announcements
//! (CONTRACT section 9; `vinet_proto::directory` verifies them).

use std::path::{Path, PathBuf};

use vinet_proto::directory::{parse_file, At, Directory, Entry};
use vinet_proto::identity::{hex, parse_public_key, VerifyingKey};
use vinet_vocab::{addr_text, parse_addr, IpPrefix};

use super::upload::until;
use super::{Failure, Format};

const AFTER_HELP: &str = "\
Examples:
  vinetc locate 10.9.3.4 --directory routers.van --trust operator.key.pub
  vinetc locate --list --directory routers/ --trust operator.key.pub     # every entry it would use

The directory is a file of announcements (one `vinet-announcement-v1` line
each; `vinetd --config R.toml announce` prints a router's) or a folder of
such files (*.van). An entry is used only when an authority you --trust
issued the announcing key an edge-router identity that covers every prefix
it announces, its signature verifies, and neither has expired. Every entry
that is refused is named on stderr with its file, line and reason, and is
never used. The router chosen is the one announcing the longest prefix that
contains ADDRESS; its address and Noise key are what `vinetc upload
--router --router-key` take. Exit 0: found; 1: no trusted router announces
a prefix containing ADDRESS (with --list: no entry is usable); 2: bad
usage or an unreadable directory.";

/// Where the directory is and whom to trust (shared with `vinetc deploy`).
#[derive(clap::Args, Debug, Clone)]
pub struct DirArgs {
    /// The router directory: a file of announcements, or a folder of .van files.
    #[arg(long, value_name = "DIR")]
    pub directory: PathBuf,
    /// An identity authority whose routers to believe: its public key file or hex (repeat).
    #[arg(long = "trust", value_name = "AUTHORITY.pub|HEX", required = true)]
    pub trust: Vec<String>,
    /// Judge expiry at this time, seconds since the epoch [default: now].
    #[arg(long, value_name = "UNIX", hide = true)]
    pub now: Option<u64>,
}

/// Arguments of `vinetc locate`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The traffic source's address.
    #[arg(value_name = "ADDRESS", required_unless_present = "list")]
    pub address: Option<String>,
    /// List every entry the directory would use (and name the refused ones), instead of locating.
    #[arg(long, conflicts_with = "address")]
    pub list: bool,
    /// The directory and the trusted authorities.
    #[command(flatten)]
    pub dir: DirArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// The largest directory file read.
const MAX_FILE: u64 = 16 << 20;

fn read_one(
    path: &Path, out: &mut Vec<(At, Result<vinet_proto::directory::SignedAnnouncement, vinet_proto::directory::EntryError>)>,
) -> Result<(), Failure> {
    let len = std::fs::metadata(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?.len();
    if len > MAX_FILE {
        return Err(Failure::Usage(format!("{}: {len} bytes, larger than a directory file may be ({MAX_FILE})", path.display())));
    }
    let bytes = std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?;
    out.extend(parse_file(&path.display().to_string(), &bytes));
    Ok(())
}

/// A trusted authority key, from a file or hex.
fn trusted(s: &str) -> Result<VerifyingKey, Failure> {
    let text = std::fs::read_to_string(s).unwrap_or_else(|_| s.to_string());
    parse_public_key(&text).map_err(|e| Failure::Usage(format!("--trust {s}: {e}")))
}

impl DirArgs {
    /// Read and verify the directory; every refused entry is reported on
    /// stderr (and returned in the directory).
    pub fn load(&self) -> Result<Directory, Failure> {
        let keys = self.trust.iter().map(|t| trusted(t)).collect::<Result<Vec<_>, _>>()?;
        let mut read = vec![];
        let d = &self.directory;
        if d.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(d)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", d.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "van") && p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Failure::Usage(format!("{}: no directory files (*.van) in it", d.display())));
            }
            for f in files {
                read_one(&f, &mut read)?;
            }
        } else {
            read_one(d, &mut read)?;
        }
        let dir = Directory::build(read, &keys, self.now.unwrap_or_else(vinet_proto::clock::unix_now));
        for (at, why) in &dir.refused {
            eprintln!("vinetc: directory entry {at} refused: {why}");
        }
        Ok(dir)
    }
}

/// The router for `addr`, or exit 1 with the reason.
pub fn find(dir: &Directory, addr: u128) -> Result<(&At, &Entry, IpPrefix), Failure> {
    dir.locate(addr).ok_or_else(|| {
        Failure::Rejected(format!(
            "no trusted router announces a prefix containing {} ({} used, {} refused)",
            addr_text(addr),
            count(dir.entries.len()),
            count(dir.refused.len())
        ))
    })
}

/// "1 entry", "2 entries".
fn count(n: usize) -> String {
    format!("{n} {}", if n == 1 { "entry" } else { "entries" })
}

/// Parse an address argument.
pub fn address(flag: &str, s: &str) -> Result<u128, Failure> {
    parse_addr(s.trim()).ok_or_else(|| Failure::Usage(format!("{flag}{s}: not an IPv4 or IPv6 address")))
}

/// One line about a located router.
pub fn describe(addr: u128, at: &At, e: &Entry, prefix: IpPrefix) -> String {
    format!(
        "{} is behind {prefix}: router {} (key {}), entry {at}, expires in {}",
        addr_text(addr),
        e.address,
        &hex(&e.noise_key)[..16],
        until(e.expires.saturating_mul(1000))
    )
}

/// `vinetc locate --list`: every entry used, one line each.
fn list(dir: &Directory, format: Format) -> Result<(), Failure> {
    for (at, e) in &dir.entries {
        let prefixes: Vec<String> = e.prefixes.iter().map(ToString::to_string).collect();
        match format {
            Format::Json => println!(
                "{}",
                serde_json::json!({"entry": at, "router": e.address.to_string(), "key": hex(&e.noise_key), "prefixes": prefixes, "expires": e.expires, "authority": hex(e.authority.as_bytes())})
            ),
            Format::Text => println!(
                "{at}: router {} (key {}) for {}, expires in {}",
                e.address,
                &hex(&e.noise_key)[..16],
                prefixes.join(" "),
                until(e.expires.saturating_mul(1000))
            ),
        }
    }
    if dir.entries.is_empty() {
        return Err(Failure::Rejected(format!("the directory has no entry to use ({} refused)", count(dir.refused.len()))));
    }
    Ok(())
}

/// Run `vinetc locate`.
pub fn run(args: Args) -> Result<(), Failure> {
    let dir = args.dir.load()?;
    let Some(a) = &args.address else { return list(&dir, args.format) };
    let addr = address("", a)?;
    let found = find(&dir, addr);
    let text = addr_text(addr);
    match args.format {
        Format::Json => {
            let refused: Vec<_> = dir.refused.iter().map(|(at, why)| serde_json::json!({"entry": at, "reason": why.to_string()})).collect();
            let v = match &found {
                Ok((at, e, p)) => {
                    serde_json::json!({"address": text, "found": true, "router": e.address.to_string(), "key": hex(&e.noise_key), "prefix": p.to_string(), "entry": at, "expires": e.expires, "refused": refused})
                }
                Err(_) => serde_json::json!({"address": text, "found": false, "refused": refused}),
            };
            println!("{v}");
        }
        Format::Text => {
            if let Ok((at, e, p)) = &found {
                println!("router {}", e.address);
                println!("key {} {}", vinet_proto::keyfile::PUBLIC_TAG, hex(&e.noise_key));
                println!(
                    "prefix {p} (the longest announced prefix containing {text}; entry {at}, expires in {})",
                    until(e.expires.saturating_mul(1000))
                );
            }
        }
    }
    found.map(|_| ())
}
