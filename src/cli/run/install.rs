//! What `vinetc run` installs: the requests of the command line or of a
//! manifest, each bundle checked as a router checks it, and each request's
//! binding (THIS_IP, THIS_SUBNET_IP and the parameter values) for the VM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use vinet_checker::cert::LemmaCache;
use vinet_checker::policy::ClientKind;
use vinet_checker::{netmask, Checked, Policy};
use vinet_engine::vm::Binding;
use vinet_vocab::params::bind_params;
use vinet_vocab::{parse_addr, IpPrefix};

use crate::cli::{read_input, unquote, Failure};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    install: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    bundle: PathBuf,
    this_ip: String,
    this_subnet: Option<String>,
    policy: Option<PathBuf>,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
}

/// One installation to make: a bundle for a client.
pub(super) struct Request {
    pub bundle: PathBuf,
    pub policy: PathBuf,
    pub this_ip: u128,
    pub this_subnet: Option<IpPrefix>,
    pub params: Vec<(String, String)>,
}

pub(super) fn manifest_requests(path: &Path, default_policy: &Path) -> Result<Vec<Request>, Failure> {
    let text = String::from_utf8(read_input(path)?).map_err(|_| Failure::Usage(format!("{}: not UTF-8", path.display())))?;
    let m: Manifest =
        toml::from_str(&text).map_err(|e| Failure::Usage(format!("manifest {}: {}", path.display(), e.to_string().trim_end())))?;
    if m.install.is_empty() {
        return Err(Failure::Usage(format!("manifest {}: no [[install]] entry", path.display())));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    m.install
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = |msg: String| Failure::Usage(format!("manifest {} entry {}: {msg}", path.display(), i + 1));
            let this_ip = parse_addr(&e.this_ip).ok_or_else(|| at(format!("this_ip `{}` is not an IPv4 or IPv6 address", e.this_ip)))?;
            let this_subnet =
                e.this_subnet.as_deref().map(str::parse::<IpPrefix>).transpose().map_err(|e| at(format!("this_subnet: {e}")))?;
            let params = e
                .params
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        toml::Value::String(s) => s,
                        toml::Value::Integer(n) => n.to_string(),
                        other => return Err(at(format!("params.{k}: give the value as a string or an integer, not {}", other.type_str()))),
                    };
                    Ok((k, v))
                })
                .collect::<Result<_, _>>()?;
            Ok(Request {
                bundle: base.join(e.bundle),
                policy: e.policy.map_or_else(|| default_policy.to_path_buf(), |p| base.join(p)),
                this_ip,
                this_subnet,
                params,
            })
        })
        .collect()
}

/// Bind a request for the VM: its parameter values by name, typed by the
/// declarations, and THIS_SUBNET_IP exactly when the policy is an edge router's.
pub(super) fn binding(req: &Request, checked: &Checked) -> Result<Binding, Failure> {
    let params = bind_params(&checked.module().params, &req.params, unquote)
        .map_err(|e| Failure::Usage(format!("{}: {e}", req.bundle.display())))?;
    let policy = checked.policy();
    let subnet = match (policy.client, req.this_subnet) {
        (ClientKind::EdgeRouter, None) => {
            return Err(Failure::Usage(format!(
                "{} is checked against an edge-router policy: give the client's prefix, THIS_SUBNET_IP, with --this-subnet (e.g. --this-subnet {})",
                req.bundle.display(),
                {
                    let len = if vinet_vocab::v4_of(req.this_ip).is_some() { 96 + 24 } else { 64 };
                    IpPrefix::new(req.this_ip & netmask(len), len).map_or_else(|e| e.to_string(), |p| p.to_string())
                }
            )))
        }
        (ClientKind::EndUser, Some(_)) => {
            return Err(Failure::Usage(format!(
                "{} is checked against an end-user policy, whose clients are one address: --this-subnet is for edge-router policies",
                req.bundle.display()
            )))
        }
        (_, s) => s,
    };
    Ok(Binding { this_ip: req.this_ip, this_subnet: subnet.map(Into::into), params })
}

pub(super) fn check_bundle(path: &Path, policy: &Policy, cache: &LemmaCache) -> Result<Checked, Failure> {
    let bytes = read_input(path)?;
    vinet_checker::check(&bytes, policy, cache).map_err(|e| Failure::Rejected(format!("rejected {}: {e}", path.display())))
}
