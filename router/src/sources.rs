//! Which sources a checked program discards: what the paper's quotas and its
//! "drop that source for everyone" rule count.
//!
//! **What counts.** A program *discards source X* when it DISCARDs a set that
//! is, by construction, a subset of the packets from X: the result of a keyed
//! `GROUP_BY_SOURCE(S, X)` with X an address that is a constant or a
//! parameter (bound at install), possibly narrowed further by keyed
//! `GROUP_BY_DESTINATION` / `GROUP_BY_SOURCE` or copied. The paper's firewall
//! (`DISCARD(GROUP_BY_SOURCE(MyPackets, SrcIP))`) discards SrcIP; so does the
//! multicast aggregator (its BroadcastIP).
//!
//! **What does not.** Sources found by behaviour (the spam filter's words, the
//! worm blocker's fan-out) are not fixed in the program, and a source given
//! as a prefix is not one source: such programs count against no source.
//! The analysis is deliberately an under-approximation: a register written by
//! more than one instruction (branches, loops) carries no source. Missing a
//! source can only let a client escape a quota on traffic that is its own
//! anyway; inventing one could let a few clients get a host dropped for
//! everyone, so it never guesses.

use std::collections::{BTreeSet, HashMap};

use vinet_checker::bytecode::{operands, Const, Insn, Reg, Ty};
use vinet_checker::Module;

/// The sources `module` discards, with `params` the bound parameter values
/// (declaration order, defaults filled in).
pub fn discarded_sources(module: &Module, params: &[Const]) -> BTreeSet<u128> {
    // Registers written exactly once.
    let mut writes: HashMap<Reg, u32> = HashMap::new();
    for insn in &module.code {
        if let Ok(o) = operands(insn, &module.regs, &module.consts, &module.params) {
            for &(r, _) in &o.writes {
                *writes.entry(r).or_default() += 1;
            }
        } else {
            return BTreeSet::new();
        }
    }
    let once = |r: Reg| writes.get(&r) == Some(&1);
    let mut addr: HashMap<Reg, u128> = HashMap::new();
    let mut from: HashMap<Reg, u128> = HashMap::new();
    let mut out = BTreeSet::new();
    for insn in &module.code {
        match *insn {
            Insn::Const { dst, k } if once(dst) => {
                if let Some(a) = module.consts.get(k as usize).and_then(Const::addr) {
                    addr.insert(dst, a);
                }
            }
            Insn::Param { dst, p } if once(dst) => {
                if let Some(a) = params.get(p as usize).and_then(Const::addr) {
                    addr.insert(dst, a);
                }
            }
            Insn::Copy { dst, src } if once(dst) => {
                if let Some(&a) = addr.get(&src) {
                    addr.insert(dst, a);
                }
                if let Some(&x) = from.get(&src) {
                    from.insert(dst, x);
                }
            }
            Insn::FilterSrc { dst, set, by } if once(dst) => {
                let by_addr = module.regs.get(by as usize) == Some(&Ty::Addr);
                if let (true, Some(&x)) = (by_addr, addr.get(&by)) {
                    from.insert(dst, x);
                } else if let Some(&x) = from.get(&set) {
                    from.insert(dst, x);
                }
            }
            Insn::FilterDst { dst, set, .. } if once(dst) => {
                if let Some(&x) = from.get(&set) {
                    from.insert(dst, x);
                }
            }
            Insn::Discard { set } => {
                if let Some(&x) = from.get(&set) {
                    out.insert(x);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_checker::mapped;

    fn module(src: &str) -> Module {
        vinet_lang::compile("t.vinet", src.as_bytes(), &[]).unwrap_or_else(|d| panic!("{}", d.render())).module
    }

    fn example(name: &str) -> Module {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
        module(&std::fs::read_to_string(p).unwrap())
    }

    fn defaults(m: &Module) -> Vec<Const> {
        m.params.iter().map(|p| p.default.clone()).collect()
    }

    #[test]
    fn the_papers_programs() {
        let fw = example("firewall.vinet");
        assert_eq!(discarded_sources(&fw, &defaults(&fw)), BTreeSet::from([mapped(0xcb00_7109)]));
        // The bound parameter value counts, not the default.
        assert_eq!(discarded_sources(&fw, &[Const::Addr(0x0a00_0102)]), BTreeSet::from([mapped(0x0a00_0102)]));
        let mc = example("multicast.vinet");
        assert_eq!(discarded_sources(&mc, &defaults(&mc)), BTreeSet::from([mapped(0xc633_6407)]));
        for e in ["spam_filter.vinet", "worm_blocker.vinet"] {
            let m = example(e);
            assert!(discarded_sources(&m, &defaults(&m)).is_empty(), "{e}");
        }
    }

    /// Issue 15: a dual-stack firewall discards both of its sources, IPv4 and IPv6.
    #[test]
    fn ipv6_sources_count() {
        let m = module(
            "LIFETIME = 1 hours\nPARAM A = 203.0.113.9;\nPARAM B = 2001:db8:bad::9;\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\n\
             DISCARD(GROUP_BY_SOURCE(Mine, A));\nDISCARD(GROUP_BY_SOURCE(Mine, B));",
        );
        let b: u128 = "2001:db8:bad::9".parse::<std::net::Ipv6Addr>().unwrap().into();
        assert_eq!(discarded_sources(&m, &defaults(&m)), BTreeSet::from([mapped(0xcb00_7109), b]));
    }

    #[test]
    fn only_what_is_certain() {
        // Nested calls and constants count.
        let m = module("LIFETIME = 1 hours\nDISCARD(GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), 192.0.2.1));");
        assert_eq!(discarded_sources(&m, &[]), BTreeSet::from([mapped(0xc000_0201)]));
        // A prefix is not one source; a set that is only grouped is not discarded.
        let m = module("LIFETIME = 1 hours\nDISCARD(GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), 192.0.2.0/24));");
        assert!(discarded_sources(&m, &[]).is_empty());
        let m =
            module("LIFETIME = 1 hours\nCLASS = monitoring\nX = GROUP_BY_SOURCE(GROUP_BY_DESTINATION(AllPackets, THIS_IP), 192.0.2.1);");
        assert!(discarded_sources(&m, &[]).is_empty());
    }
}
