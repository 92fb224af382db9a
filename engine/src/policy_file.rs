//! Reading a router's safety policy from TOML (DESIGN section 4) into the
//! checker's typed [`Policy`]. This lives outside the trusted base on purpose:
//! the checker never parses TOML.
//!
//! Every field is required but three, which policies written before byte and
//! instruction metering leave out: `max_param_bytes` (256),
//! `generated_bytes_up` (128 KiB a packet of the window) and, in `[unit_costs]`, `INSTRUCTION` and
//! `BYTES` (1 each). Every routine's cost is required, the transport-level
//! ones (GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT,
//! TCP_FLAGS, DISTINCT_DESTINATION_PORTS) included: a policy written before
//! them is refused, naming the first one missing. Unknown fields are refused
//! (a misspelt field is an error, not a silent default), and so is an unknown
//! name in `[unit_costs]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use vinet_checker::policy::ClientKind;
use vinet_checker::Policy;
use vinet_vocab::names::{self, parse_duration, Routine, ROUTINE_NAMES};

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not TOML, a missing or unknown field, a value of the wrong type.
    #[error("invalid policy: {0}")]
    Toml(String),
    /// A bad value.
    #[error("invalid policy: {0}")]
    Value(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    client: String,
    max_lifetime: String,
    complexity_up: u64,
    cost_up: u64,
    window_packets: u32,
    unit_costs: BTreeMap<String, u64>,
    #[serde(default = "default_param_bytes")]
    max_param_bytes: u32,
    generated_bytes_up: Option<u64>,
}

/// `max_param_bytes` when a policy leaves it out.
pub const DEFAULT_MAX_PARAM_BYTES: u32 = 256;
/// `generated_bytes_up` per packet of the window when a policy leaves it
/// out: two packets of the largest size (either family), so that the paper's multicast
/// aggregator (which may send every payload of its window again) fits.
pub const DEFAULT_GENERATED_BYTES_PER_PACKET: u64 = 2 * 65_536;

fn default_param_bytes() -> u32 {
    DEFAULT_MAX_PARAM_BYTES
}

/// Read a policy file.
pub fn load(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io { path: path.display().to_string(), source })?;
    parse(&text)
}

/// Parse a policy from TOML text.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let raw: Raw = toml::from_str(text).map_err(|e| PolicyError::Toml(e.to_string().trim_end().to_string()))?;
    let client = match raw.client.as_str() {
        "end-user" => ClientKind::EndUser,
        "edge-router" => ClientKind::EdgeRouter,
        "on-owner" => ClientKind::OnOwner,
        other => return Err(PolicyError::Value(format!("client = {other:?}: expected \"end-user\", \"edge-router\" or \"on-owner\""))),
    };
    let max_lifetime_secs = parse_duration(&raw.max_lifetime).map_err(|e| PolicyError::Value(format!("max_lifetime: {e}")))?;
    if raw.window_packets == 0 {
        return Err(PolicyError::Value("window_packets must be at least 1".into()));
    }
    for name in raw.unit_costs.keys() {
        if Routine::named(name).is_none() && !names::MACHINE_COSTS.iter().any(|(n, _)| n == name) {
            return Err(PolicyError::Value(format!(
                "[unit_costs]: unknown cost {name:?} (the routines are {}; and INSTRUCTION, BYTES, GROUPING)",
                ROUTINE_NAMES.join(", ")
            )));
        }
    }
    let machine = names::MACHINE_COSTS.map(|(n, default)| raw.unit_costs.get(n).copied().unwrap_or(default));
    let unit_costs = names::unit_costs(
        |r| raw.unit_costs.get(r.name()).copied().ok_or_else(|| PolicyError::Value(format!("[unit_costs]: missing {}", r.name()))),
        machine,
    )?;
    Ok(Policy {
        client,
        max_lifetime_secs,
        complexity_up: raw.complexity_up,
        cost_up: raw.cost_up,
        window_packets: raw.window_packets,
        unit_costs,
        max_param_bytes: raw.max_param_bytes,
        generated_bytes_up: raw.generated_bytes_up.unwrap_or(u64::from(raw.window_packets) * DEFAULT_GENERATED_BYTES_PER_PACKET),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn example_policies() {
        let p = parse(&example("end-user.toml")).unwrap();
        assert_eq!(p.client, ClientKind::EndUser);
        assert_eq!(p.max_lifetime_secs, 30 * 86_400);
        assert_eq!((p.complexity_up, p.cost_up, p.window_packets), (20_000, 5_000_000_000, 256));
        let u = p.unit_costs;
        assert_eq!((u.discard, u.group_by_destination, u.group_by_source, u.group_by_content), (1, 1, 2, 8));
        assert_eq!((u.contains_string, u.generate, u.count, u.distinct_destinations), (6, 4, 1, 3));
        // GROUP_BY_PROTOCOL, GROUP_BY_SOURCE_PORT, GROUP_BY_DESTINATION_PORT,
        // TCP_FLAGS (by field), DISTINCT_DESTINATION_PORTS.
        assert_eq!((u.by_field, u.distinct_ports), ([1, 1, 1, 1], 3));
        assert_eq!((u.instruction, u.bytes), (1, 1));
        let q = parse(&example("edge-router.toml")).unwrap();
        assert_eq!(q.client, ClientKind::EdgeRouter);
        assert_eq!(q.unit_costs, p.unit_costs);
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/end-user.toml");
        assert_eq!(load(f).unwrap(), p);
        assert!(matches!(load("/nonexistent/policy.toml"), Err(PolicyError::Io { .. })));
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_policies_say_what_is_wrong() {
        let good = example("end-user.toml");
        let e = err(&good.replace("complexity_up = 20_000", ""));
        assert!(e.contains("missing field `complexity_up`"), "{e}");
        let e = err(&good.replace("COUNT = 1", "COUNT = 1\nSORT = 2"));
        assert!(e.contains("unknown cost \"SORT\" (the routines are DISCARD, GENERATE, GROUP_BY_DESTINATION,"), "{e}");
        let e = err(&good.replace("COUNT = 1\n", ""));
        assert!(e.contains("missing COUNT"), "{e}");
        // The transport routines are required like the others: a policy
        // written before them is refused, saying which one is missing.
        let e = err(&good.replace("TCP_FLAGS = 1\n", ""));
        assert_eq!(e, "invalid policy: [unit_costs]: missing TCP_FLAGS");
        let older: String = good
            .lines()
            .filter(|l| !l.contains("PORT") && !l.contains("PROTOCOL") && !l.contains("TCP_FLAGS"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = err(&older);
        assert_eq!(e, "invalid policy: [unit_costs]: missing GROUP_BY_PROTOCOL", "the first missing, in the language's order");
        // Each is read into its own slot.
        for (i, name) in ["GROUP_BY_PROTOCOL", "GROUP_BY_SOURCE_PORT", "GROUP_BY_DESTINATION_PORT", "TCP_FLAGS"].iter().enumerate() {
            let p = parse(&good.replace(&format!("{name} = 1"), &format!("{name} = {}", 40 + i))).unwrap();
            let mut want = [1; 4];
            want[i] = 40 + i as u64;
            assert_eq!(p.unit_costs.by_field, want, "{name}");
        }
        let p = parse(&good.replace("DISTINCT_DESTINATION_PORTS = 3", "DISTINCT_DESTINATION_PORTS = 7")).unwrap();
        assert_eq!((p.unit_costs.distinct_ports, p.unit_costs.distinct_destinations), (7, 3));
        let e = err(&good.replace("TCP_FLAGS = 1", "TCP_FLAGS = -1"));
        assert!(e.contains("TCP_FLAGS = -1") && e.contains("expected u64"), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"30 fortnights\""));
        assert!(e.contains("max_lifetime") && e.contains("unknown unit \"fortnights\""), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"thirty days\""));
        assert!(e.contains("not a whole number"), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"30\""));
        assert!(e.contains("<number> <unit>"), "{e}");
        let e = err(&good.replace("\"end-user\"", "\"router\""));
        assert!(e.contains("expected \"end-user\", \"edge-router\" or \"on-owner\""), "{e}");
        let e = err(&good.replace("window_packets = 256", "window_packets = 0"));
        assert!(e.contains("window_packets"), "{e}");
        let e = err(&good.replace("window_packets = 256", "window_packet = 256"));
        assert!(e.contains("unknown field `window_packet`"), "{e}");
        let e = err(&good.replace("cost_up = 5_000_000_000", "cost_up = -1"));
        assert!(e.contains("cost_up"), "{e}");
        assert!(err("client = ").contains("invalid policy"));
    }
}
