//! `vinetc identity issue|show`: identity certificates (DESIGN section 7).

use std::path::PathBuf;

use vinet_proto::clock::unix_now;
use vinet_proto::identity::{hex, issue, parse_public_key, parse_secret_key, SignedIdentity, Subject};
use vinet_vocab::names::parse_duration;
use vinet_vocab::IpPrefix;

use super::{read_input, Failure};

const AFTER_HELP: &str = "\
Examples:
  vinetc identity issue --authority operator.key --client alice.key.pub --address 10.0.3.2 -o alice.vid
  vinetc identity issue --authority operator.key --client edge.key.pub --prefix 10.9.0.0/16 --router-ip 10.9.0.1 -o edge.vid
  vinetc identity show alice.vid

An operator's authority key signs a binding of a client's public key to an
address (an end user: THIS_IP) or a prefix (an edge router: THIS_SUBNET_IP,
with its own address as THIS_IP), valid for a period. A router that trusts the
authority takes THIS_IP / THIS_SUBNET_IP from this certificate, never from a
request. The file is `VID1` followed by the postcard-encoded signed certificate.";

/// Arguments of `vinetc identity`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// `identity` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Sign a client's key into an identity certificate.
    Issue(IssueArgs),
    /// Print an identity certificate.
    Show {
        /// The identity file.
        #[arg(value_name = "ID.vid")]
        identity: PathBuf,
    },
}

/// Arguments of `vinetc identity issue`.
#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// The authority's secret key file.
    #[arg(long, value_name = "KEY")]
    pub authority: PathBuf,
    /// The client's public key file (or its hex).
    #[arg(long, value_name = "KEY.pub")]
    pub client: String,
    /// An end user's address (THIS_IP), IPv4 or IPv6; repeat it for a client with
    /// several (a dual-stack host): its programs run once for each.
    #[arg(long, value_name = "IP", conflicts_with = "prefix", value_parser = addr_arg)]
    pub address: Vec<u128>,
    /// An edge router's prefix (THIS_SUBNET_IP), IPv4 or IPv6; repeat it for several.
    #[arg(long, value_name = "NET/LEN", requires = "router_ip", value_parser = prefix_arg)]
    pub prefix: Vec<IpPrefix>,
    /// The edge router's own address (its THIS_IP); one of each family at most.
    #[arg(long, value_name = "IP", value_parser = addr_arg)]
    pub router_ip: Vec<u128>,
    /// How long it is valid, from now (or from --not-before).
    #[arg(long, value_name = "DURATION", default_value = "365 days")]
    pub valid_for: String,
    /// Start of validity, seconds since the epoch [default: now].
    #[arg(long, value_name = "UNIX")]
    pub not_before: Option<u64>,
    /// Where to write the identity.
    #[arg(short, long, value_name = "ID.vid")]
    pub output: PathBuf,
}

fn prefix_arg(s: &str) -> Result<IpPrefix, String> {
    s.parse().map_err(|e: vinet_vocab::PrefixError| e.to_string())
}

fn addr_arg(s: &str) -> Result<u128, String> {
    vinet_vocab::parse_addr(s).ok_or_else(|| format!("`{s}` is not an IPv4 or IPv6 address"))
}

/// Run `vinetc identity`.
pub fn run(args: Args) -> Result<(), Failure> {
    match args.command {
        Cmd::Issue(a) => issue_cmd(a),
        Cmd::Show { identity } => {
            let id =
                SignedIdentity::from_file(&read_input(&identity)?).map_err(|e| Failure::Usage(format!("{}: {e}", identity.display())))?;
            println!("{}", describe(&id));
            Ok(())
        }
    }
}

/// One line about an identity.
pub fn describe(id: &SignedIdentity) -> String {
    let c = &id.cert;
    format!(
        "identity of key {} as {}, valid {}..{} (seconds since the epoch), issued by authority {}",
        hex(&c.client[..8]),
        c.subject,
        c.not_before,
        c.not_after,
        hex(&c.authority[..8])
    )
}

fn issue_cmd(a: IssueArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&a.authority).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", a.authority.display())))?;
    let authority = parse_secret_key(&text).map_err(|e| Failure::Usage(format!("{}: {e}", a.authority.display())))?;
    let client_text = std::fs::read_to_string(&a.client).unwrap_or_else(|_| a.client.clone());
    let client = parse_public_key(&client_text).map_err(|e| Failure::Usage(format!("--client: {e}")))?;
    let subject = match (a.address.is_empty(), a.prefix.is_empty(), a.router_ip.is_empty()) {
        (false, true, _) => Subject::host(a.address),
        (true, false, false) => Subject::site(a.prefix, a.router_ip),
        _ => {
            let usage = "give --address IP (an end user; repeat it for several) or --prefix NET/LEN with --router-ip IP (an edge router)";
            return Err(Failure::Usage(usage.into()));
        }
    }
    .map_err(Failure::Usage)?;
    let secs = parse_duration(&a.valid_for).map_err(|e| Failure::Usage(format!("--valid-for: {e}")))?;
    let nb = a.not_before.unwrap_or_else(unix_now);
    let id = issue(&authority, &client, subject, nb, nb.saturating_add(secs)).map_err(|e| Failure::Usage(e.to_string()))?;
    std::fs::write(&a.output, id.to_file()).map_err(|e| Failure::Usage(format!("cannot write {}: {e}", a.output.display())))?;
    println!("wrote {}: {}", a.output.display(), describe(&id));
    Ok(())
}
