//! Reading a router's safety policy from TOML (DESIGN section 4) into the
//! checker's typed [`Policy`]. This lives outside the trusted base on purpose:
//! the checker never parses TOML.
//!
//! Every field is required; unknown fields are refused (a misspelt field is
//! an error, not a silent default), and so is an unknown routine in
//! `[unit_costs]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use vinet_checker::policy::{ClientKind, UnitCosts};
use vinet_checker::Policy;

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
}

/// The routines of `[unit_costs]`, all required.
pub const ROUTINES: [&str; 8] = [
    "DISCARD",
    "GROUP_BY_DESTINATION",
    "GROUP_BY_SOURCE",
    "GROUP_BY_CONTENT",
    "CONTAINS_STRING",
    "GENERATE",
    "COUNT",
    "DISTINCT_DESTINATIONS",
];

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
        other => return Err(PolicyError::Value(format!("client = {other:?}: expected \"end-user\" or \"edge-router\""))),
    };
    let max_lifetime_secs = parse_duration(&raw.max_lifetime).map_err(|e| PolicyError::Value(format!("max_lifetime: {e}")))?;
    if raw.window_packets == 0 {
        return Err(PolicyError::Value("window_packets must be at least 1".into()));
    }
    for name in raw.unit_costs.keys() {
        if !ROUTINES.contains(&name.as_str()) {
            return Err(PolicyError::Value(format!("[unit_costs]: unknown routine {name:?} (the routines are {})", ROUTINES.join(", "))));
        }
    }
    let cost = |name: &str| raw.unit_costs.get(name).copied().ok_or_else(|| PolicyError::Value(format!("[unit_costs]: missing {name}")));
    let unit_costs = UnitCosts {
        discard: cost("DISCARD")?,
        group_by_destination: cost("GROUP_BY_DESTINATION")?,
        group_by_source: cost("GROUP_BY_SOURCE")?,
        group_by_content: cost("GROUP_BY_CONTENT")?,
        contains_string: cost("CONTAINS_STRING")?,
        generate: cost("GENERATE")?,
        count: cost("COUNT")?,
        distinct_destinations: cost("DISTINCT_DESTINATIONS")?,
    };
    Ok(Policy {
        client,
        max_lifetime_secs,
        complexity_up: raw.complexity_up,
        cost_up: raw.cost_up,
        window_packets: raw.window_packets,
        unit_costs,
    })
}

/// `"30 days"` into seconds. Units: seconds, minutes, hrs, hours, days, each
/// also singular (`1 day`, `1 hr`).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let mut it = s.split_whitespace();
    let (Some(n), Some(unit), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!("{s:?} is not \"<number> <unit>\" (for example \"30 days\")"));
    };
    let n: u64 = n.replace('_', "").parse().map_err(|_| format!("{n:?} is not a whole number"))?;
    let per = match unit {
        "second" | "seconds" => 1,
        "minute" | "minutes" => 60,
        "hr" | "hrs" | "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => return Err(format!("unknown unit {other:?} (use seconds, minutes, hrs, hours or days)")),
    };
    n.checked_mul(per).ok_or_else(|| format!("{s:?} is too long"))
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
        assert_eq!((p.unit_costs.group_by_source, p.unit_costs.distinct_destinations), (2, 3));
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
        assert!(e.contains("unknown routine \"SORT\""), "{e}");
        let e = err(&good.replace("COUNT = 1\n", ""));
        assert!(e.contains("missing COUNT"), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"30 fortnights\""));
        assert!(e.contains("max_lifetime") && e.contains("unknown unit \"fortnights\""), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"thirty days\""));
        assert!(e.contains("not a whole number"), "{e}");
        let e = err(&good.replace("\"30 days\"", "\"30\""));
        assert!(e.contains("<number> <unit>"), "{e}");
        let e = err(&good.replace("\"end-user\"", "\"router\""));
        assert!(e.contains("expected \"end-user\" or \"edge-router\""), "{e}");
        let e = err(&good.replace("window_packets = 256", "window_packets = 0"));
        assert!(e.contains("window_packets"), "{e}");
        let e = err(&good.replace("window_packets = 256", "window_packet = 256"));
        assert!(e.contains("unknown field `window_packet`"), "{e}");
        let e = err(&good.replace("cost_up = 5_000_000_000", "cost_up = -1"));
        assert!(e.contains("cost_up"), "{e}");
        assert!(err("client = ").contains("invalid policy"));
    }

    #[test]
    fn durations() {
        for (s, v) in [
            ("1 second", 1),
            ("90 seconds", 90),
            ("2 minutes", 120),
            ("1 minute", 60),
            ("5 hrs", 18_000),
            ("1 hr", 3600),
            ("3 hours", 10_800),
            ("1 day", 86_400),
            ("30 days", 2_592_000),
            ("  7   days ", 604_800),
        ] {
            assert_eq!(parse_duration(s), Ok(v), "{s}");
        }
        assert!(parse_duration("99999999999999999999 days").is_err());
        assert!(parse_duration("1 days extra").is_err());
        assert!(parse_duration("-1 days").is_err());
    }
}
