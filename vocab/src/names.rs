//! The names vinet's files and programs use: functionality classes (a
//! program's `CLASS`, a router's `[quotas]`, logs and metrics), routines (the
//! language's calls, a policy's `[unit_costs]`) and the units of a lifetime
//! (a program's `LIFETIME`, a policy's `max_lifetime`, `--valid-for`).
//!
//! Each is one table. The checker's types ([`Class`], [`UnitCosts`]) stay the
//! checker's; the functions here map between them and their names.

use vinet_checker::bytecode::{Class, Field};
use vinet_checker::policy::UnitCosts;

/// The functionality classes and their names, in [`class_index`] order.
pub const CLASSES: [(Class, &str); 3] =
    [(Class::Filtering, "filtering"), (Class::Multicast, "multicast"), (Class::Monitoring, "monitoring")];

/// A class's position in [`CLASSES`] (0 filtering, 1 multicast, 2 monitoring):
/// the index of per-class arrays such as a router's quotas.
pub fn class_index(c: Class) -> usize {
    // Exhaustive on purpose: a new class does not compile until it has a row.
    match c {
        Class::Filtering => 0,
        Class::Multicast => 1,
        Class::Monitoring => 2,
    }
}

/// A class's name in programs, configs, logs and metrics.
pub fn class_name(c: Class) -> &'static str {
    CLASSES[class_index(c)].1
}

/// The class of a name, exactly as [`CLASSES`] writes it (lower case).
pub fn class_named(name: &str) -> Option<Class> {
    CLASSES.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
}

/// The class names, in [`CLASSES`] order.
pub fn class_names() -> impl Iterator<Item = &'static str> {
    CLASSES.iter().map(|(_, n)| *n)
}

/// A routine of the language, each with a unit cost in a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Routine {
    /// `DISCARD`
    Discard,
    /// `GENERATE`
    Generate,
    /// `GROUP_BY_DESTINATION`
    GroupByDestination,
    /// `GROUP_BY_SOURCE`
    GroupBySource,
    /// `GROUP_BY_CONTENT`
    GroupByContent,
    /// `CONTAINS_STRING`
    ContainsString,
    /// `COUNT`
    Count,
    /// `DISTINCT_DESTINATIONS`
    DistinctDestinations,
    /// `GROUP_BY_PROTOCOL`
    GroupByProtocol,
    /// `GROUP_BY_SOURCE_PORT`
    GroupBySourcePort,
    /// `GROUP_BY_DESTINATION_PORT`
    GroupByDestinationPort,
    /// `TCP_FLAGS`
    TcpFlags,
    /// `DISTINCT_DESTINATION_PORTS`
    DistinctDestinationPorts,
}

/// The routines and their names, as they are written, in the order the
/// language lists them in its diagnostics.
pub const ROUTINES: [(Routine, &str); 13] = [
    (Routine::Discard, "DISCARD"),
    (Routine::Generate, "GENERATE"),
    (Routine::GroupByDestination, "GROUP_BY_DESTINATION"),
    (Routine::GroupBySource, "GROUP_BY_SOURCE"),
    (Routine::GroupByContent, "GROUP_BY_CONTENT"),
    (Routine::ContainsString, "CONTAINS_STRING"),
    (Routine::Count, "COUNT"),
    (Routine::DistinctDestinations, "DISTINCT_DESTINATIONS"),
    (Routine::GroupByProtocol, "GROUP_BY_PROTOCOL"),
    (Routine::GroupBySourcePort, "GROUP_BY_SOURCE_PORT"),
    (Routine::GroupByDestinationPort, "GROUP_BY_DESTINATION_PORT"),
    (Routine::TcpFlags, "TCP_FLAGS"),
    (Routine::DistinctDestinationPorts, "DISTINCT_DESTINATION_PORTS"),
];

/// The routine names alone, in [`ROUTINES`] order.
pub const ROUTINE_NAMES: [&str; 13] = {
    let mut names = [""; 13];
    let mut i = 0;
    while i < ROUTINES.len() {
        names[i] = ROUTINES[i].1;
        i += 1;
    }
    names
};

impl Routine {
    /// The routine's name, as it is written.
    pub fn name(self) -> &'static str {
        // The variants are declared in ROUTINES order (a test holds it).
        ROUTINES[self as usize].1
    }

    /// The routine of a name, exactly as written (upper case).
    pub fn named(name: &str) -> Option<Routine> {
        ROUTINES.iter().find(|(_, n)| *n == name).map(|(r, _)| *r)
    }

    /// The routine's unit cost in a policy.
    pub fn unit_cost(self, costs: &UnitCosts) -> u64 {
        match self {
            Routine::Discard => costs.discard,
            Routine::Generate => costs.generate,
            Routine::GroupByDestination => costs.group_by_destination,
            Routine::GroupBySource => costs.group_by_source,
            Routine::GroupByContent => costs.group_by_content,
            Routine::ContainsString => costs.contains_string,
            Routine::Count => costs.count,
            Routine::DistinctDestinations => costs.distinct_destinations,
            Routine::GroupByProtocol => costs.by_field[Field::Proto as usize],
            Routine::GroupBySourcePort => costs.by_field[Field::SrcPort as usize],
            Routine::GroupByDestinationPort => costs.by_field[Field::DstPort as usize],
            Routine::TcpFlags => costs.by_field[Field::TcpFlags as usize],
            Routine::DistinctDestinationPorts => costs.distinct_ports,
        }
    }

    /// The routine that narrows or groups by a field (its unit cost is `by_field[field]`).
    pub fn of_field(field: Field) -> Routine {
        match field {
            Field::Proto => Routine::GroupByProtocol,
            Field::SrcPort => Routine::GroupBySourcePort,
            Field::DstPort => Routine::GroupByDestinationPort,
            Field::TcpFlags => Routine::TcpFlags,
        }
    }
}

/// The `[unit_costs]` names that are not routines, with the value a policy
/// that leaves them out gets: every instruction executed, and each 64 bytes
/// (or part) of a string moved, compared, searched for or sent.
/// And each grouping made, once (`GROUPING`, 0 unless a policy says: INSTRUCTION already
/// charges the instruction that makes it).
pub const MACHINE_COSTS: [(&str, u64); 3] = [("INSTRUCTION", 1), ("BYTES", 1), ("GROUPING", 0)];

/// Unit costs from a routine's cost, asked for once per routine (in
/// [`ROUTINES`] order), and the [`MACHINE_COSTS`] (`instruction`, `bytes`, `grouping`);
/// the first error stops.
pub fn unit_costs<E>(mut cost: impl FnMut(Routine) -> Result<u64, E>, [instruction, bytes, grouping]: [u64; 3]) -> Result<UnitCosts, E> {
    let mut c = [0u64; 13];
    for (slot, (r, _)) in c.iter_mut().zip(ROUTINES) {
        *slot = cost(r)?;
    }
    let [discard, generate, group_by_destination, group_by_source, group_by_content, contains_string, count, distinct_destinations, proto, sport, dport, flags, distinct_ports] =
        c;
    Ok(UnitCosts {
        discard,
        group_by_destination,
        group_by_source,
        group_by_content,
        contains_string,
        generate,
        count,
        distinct_destinations,
        by_field: [proto, sport, dport, flags],
        distinct_ports,
        instruction,
        bytes,
        grouping,
    })
}

/// The units of a lifetime and their length in seconds; each also singular.
pub const LIFETIME_UNITS: [(&str, u64); 10] = [
    ("second", 1),
    ("seconds", 1),
    ("minute", 60),
    ("minutes", 60),
    ("hr", 3600),
    ("hrs", 3600),
    ("hour", 3600),
    ("hours", 3600),
    ("day", 86_400),
    ("days", 86_400),
];

/// The length in seconds of a unit, exactly as [`LIFETIME_UNITS`] writes it.
pub fn unit_seconds(unit: &str) -> Option<u64> {
    LIFETIME_UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s)
}

/// `"30 days"` into seconds: a whole number (`_` separators allowed) and one
/// of [`LIFETIME_UNITS`], separated by white space.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let mut it = s.split_whitespace();
    let (Some(n), Some(unit), None) = (it.next(), it.next(), it.next()) else {
        return Err(format!("{s:?} is not \"<number> <unit>\" (for example \"30 days\")"));
    };
    let n: u64 = n.replace('_', "").parse().map_err(|_| format!("{n:?} is not a whole number"))?;
    let per = unit_seconds(unit).ok_or_else(|| format!("unknown unit {unit:?} (use seconds, minutes, hrs, hours or days)"))?;
    n.checked_mul(per).ok_or_else(|| format!("{s:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip() {
        for (i, (c, name)) in CLASSES.iter().enumerate() {
            assert_eq!(class_index(*c), i);
            assert_eq!(class_name(*c), *name);
            assert_eq!(class_named(name), Some(*c));
        }
        assert_eq!(class_named("Filtering"), None);
        assert_eq!(class_names().collect::<Vec<_>>(), ["filtering", "multicast", "monitoring"]);
    }

    #[test]
    fn routines_round_trip_and_map_to_their_own_cost() {
        assert_eq!(ROUTINE_NAMES.len(), ROUTINES.len());
        // Distinct costs, so a routine mapped to another's field shows.
        let costs = unit_costs(|r| Ok::<_, ()>(10 + ROUTINES.iter().position(|(x, _)| *x == r).unwrap() as u64), [3, 4, 5]).unwrap();
        for (i, (r, name)) in ROUTINES.iter().enumerate() {
            assert_eq!(*r as usize, i, "{name}");
            assert_eq!(ROUTINE_NAMES[i], *name);
            assert_eq!(r.name(), *name);
            assert_eq!(Routine::named(name), Some(*r));
            assert_eq!(r.unit_cost(&costs), 10 + i as u64, "{name}");
        }
        assert_eq!((costs.discard, costs.generate, costs.distinct_destinations), (10, 11, 17));
        assert_eq!((costs.by_field, costs.distinct_ports), ([18, 19, 20, 21], 22));
        for (f, r) in [
            (Field::Proto, "GROUP_BY_PROTOCOL"),
            (Field::SrcPort, "GROUP_BY_SOURCE_PORT"),
            (Field::DstPort, "GROUP_BY_DESTINATION_PORT"),
            (Field::TcpFlags, "TCP_FLAGS"),
        ] {
            assert_eq!(Routine::of_field(f).name(), r);
        }
        assert_eq!((costs.instruction, costs.bytes, costs.grouping), (3, 4, 5));
        assert_eq!(Routine::named("discard"), None);
        assert_eq!(unit_costs(|r| if r == Routine::Count { Err("no COUNT") } else { Ok(1) }, [1, 1, 0]), Err("no COUNT"));
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
            ("1_000 seconds", 1000),
            ("  7   days ", 604_800),
        ] {
            assert_eq!(parse_duration(s), Ok(v), "{s}");
        }
        assert!(parse_duration("99999999999999999999 days").unwrap_err().contains("whole number"));
        assert!(parse_duration("9999999999999999 days").unwrap_err().contains("too long"));
        assert!(parse_duration("1 days extra").unwrap_err().contains("<number> <unit>"));
        assert!(parse_duration("-1 days").is_err());
        assert_eq!(parse_duration("1 fortnight"), Err("unknown unit \"fortnight\" (use seconds, minutes, hrs, hours or days)".into()));
        assert_eq!(parse_duration("1 Days").map_err(|e| e.contains("unknown unit")), Err(true));
        for (u, s) in LIFETIME_UNITS {
            assert_eq!(unit_seconds(u), Some(s));
        }
    }
}
