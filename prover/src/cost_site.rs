//! Where a cost diagnostic points: the top-level statement that adds the most
//! to a module's complexity, found in one pass over the code.
//!
//! The VC generator derives the complexity of the whole module only. The
//! first way to find the dearest statement ran it on every prefix of the
//! program and differenced the results, which made a refusal for cost
//! quadratic in the program's size (22 s at 4,000 statements, where proving an
//! accepted program of that size takes 48 ms; issue 14). This module walks
//! the bytecode once, with the VC generator's cost rules over an abstraction of
//! its symbolic values that keeps only what cost depends on: which set a value
//! is a subset of (a `foreach` group, or the window) and whether it is a
//! grouping or a list. At the top level the sum of what each statement costs
//! is the module's complexity, so each statement's share is its own cost.
//!
//! It decides nothing: the verdict and the figures in the message are the VC
//! generator's. It only chooses the line the diagnostic points at, and its
//! tests check that it chooses the statement the prefix differencing chose.

use std::collections::BTreeMap;

use vinet_checker::bytecode::{blocks, operands, Field, Insn, Module, Reg, Ty};
use vinet_checker::policy::Policy;

/// What cost depends on in a register's symbolic value. A set's extent is the
/// id of the `foreach` frame whose group it is a subset of (`None`: the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Unset,
    Scalar,
    Set(Option<u32>),
    Groups { extent: Option<u32>, by: By },
    List(Option<u32>),
}

/// What a grouping is by (the VC generator joins only groupings by the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum By {
    Dst,
    Src,
    Field(Field),
}

/// A polynomial in group-size variables, as the VC generator's.
type Poly = BTreeMap<Vec<u32>, u128>;

fn add(p: &mut Poly, q: &Poly) {
    for (k, c) in q {
        let e = p.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*c);
    }
}

fn scale(p: &Poly, k: u128) -> Poly {
    p.iter().map(|(m, c)| (m.clone(), c.saturating_mul(k))).collect()
}

fn constant(c: u128) -> Poly {
    Poly::from([(vec![], c)])
}

struct Walk<'a> {
    m: &'a Module,
    policy: &'a Policy,
    fresh: u32,
}

/// The first instruction of the top-level statement that adds the most to the
/// module's complexity (the first of them on a tie; 0 for an empty module).
/// The module must be valid.
pub fn dearest_statement(module: &Module, policy: &Policy) -> usize {
    let mut w = Walk { m: module, policy, fresh: 0 };
    let mut vals = vec![Val::Unset; module.regs.len()];
    let (mut best_at, mut best) = (0, 0);
    let mut pc = 0;
    while pc < module.code.len() {
        let next = blocks(&module.code, pc).1;
        let cost = w.statement(pc, &mut vals);
        let share = cost.get(&vec![]).copied().unwrap_or(0);
        if share > best {
            (best_at, best) = (pc, share);
        }
        pc = next;
    }
    best_at
}

impl Walk<'_> {
    fn block(&mut self, start: usize, end: usize, vals: &mut [Val]) -> Poly {
        let mut cost = Poly::new();
        let mut pc = start;
        while pc < end {
            let next = blocks(&self.m.code, pc).1;
            add(&mut cost, &self.statement(pc, vals));
            add(&mut cost, &constant(self.policy.unit_costs.instruction as u128)); // the instruction itself
            pc = next;
        }
        cost
    }

    fn statement(&mut self, pc: usize, vals: &mut [Val]) -> Poly {
        let (subs, _) = blocks(&self.m.code, pc);
        match self.m.code[pc] {
            Insn::If { .. } => self.if_(&subs, vals),
            Insn::Foreach { groups, key, set, .. } => self.foreach(pc, groups, key, set, subs[0], vals),
            Insn::While { bound, .. } => self.while_(bound, &subs, vals),
            ref insn => self.simple(insn, vals),
        }
    }

    /// The registers `[start, end)` writes, each once (as the VC generator's `writes`).
    fn writes(&self, start: usize, end: usize) -> Vec<Reg> {
        let mut w: Vec<Reg> = (start..end)
            .filter_map(|pc| operands(&self.m.code[pc], &self.m.regs, &self.m.consts, &self.m.params).ok())
            .flat_map(|o| o.writes.into_iter().map(|(r, _)| r))
            .collect();
        w.sort_unstable();
        w.dedup();
        w
    }

    fn branch(&mut self, (start, end): (usize, usize), regs: &[Reg], vals: &mut [Val]) -> (Poly, Vec<Val>) {
        let saved: Vec<Val> = regs.iter().map(|&r| vals[r as usize]).collect();
        let cost = self.block(start, end, vals);
        let left = regs.iter().zip(saved).map(|(&r, v)| std::mem::replace(&mut vals[r as usize], v)).collect();
        (cost, left)
    }

    fn if_(&mut self, subs: &[(usize, usize)], vals: &mut [Val]) -> Poly {
        let regs = self.writes(subs[0].0, subs[1].1);
        let (tc, tv) = self.branch(subs[0], &regs, vals);
        let (ec, ev) = self.branch(subs[1], &regs, vals);
        for (&r, (t, e)) in regs.iter().zip(tv.into_iter().zip(ev)) {
            vals[r as usize] = match (t, e) {
                (t, e) if t == e => t,
                (Val::Scalar, Val::Scalar) => Val::Scalar,
                (Val::Set(a), Val::Set(b)) => Val::Set(if a == b { a } else { None }),
                (Val::List(a), Val::List(b)) => Val::List(if a == b { a } else { None }),
                (Val::Groups { extent: a, by }, Val::Groups { extent: b, by: d2 }) if by == d2 => {
                    Val::Groups { extent: if a == b { a } else { None }, by }
                }
                (Val::Groups { .. }, Val::Groups { .. }) => fresh(self.m.regs[r as usize]),
                _ => Val::Unset,
            };
        }
        let mut cost = tc;
        for (k, v) in ec {
            let e = cost.entry(k).or_insert(0);
            *e = (*e).max(v);
        }
        cost
    }

    fn foreach(&mut self, at: usize, groups: Reg, key: Reg, set: Reg, body: (usize, usize), vals: &mut [Val]) -> Poly {
        let Val::Groups { extent, .. } = vals[groups as usize] else { return Poly::new() };
        self.fresh += 1;
        let key_id = self.fresh;
        let regs = self.writes(at, body.1);
        let saved: Vec<Val> = regs.iter().map(|&r| vals[r as usize]).collect();
        vals[key as usize] = Val::Scalar;
        vals[set as usize] = Val::Set(Some(key_id));
        let mut body_cost = self.block(body.0, body.1, vals);
        for (&r, v) in regs.iter().zip(saved) {
            vals[r as usize] = v;
        }
        add(&mut body_cost, &constant(self.policy.unit_costs.loop_turn() as u128));
        let w = self.policy.window_packets as u128;
        let mut cost = Poly::new();
        for (mono, c) in body_cost {
            let power = mono.iter().filter(|&&v| v == key_id).count();
            let mut rest: Vec<u32> = mono.into_iter().filter(|&v| v != key_id).collect();
            let mut c = c;
            for _ in 0..power.max(1) {
                match extent {
                    Some(e) => rest.push(e),
                    None => c = c.saturating_mul(w),
                }
            }
            rest.sort_unstable();
            add(&mut cost, &Poly::from([(rest, c)]));
        }
        cost
    }

    fn while_(&mut self, bound: u32, subs: &[(usize, usize)], vals: &mut [Val]) -> Poly {
        let (cond_block, body) = (subs[0], subs[1]);
        for r in self.writes(cond_block.0, body.1) {
            vals[r as usize] = fresh(self.m.regs[r as usize]);
        }
        let cond_cost = self.block(cond_block.0, cond_block.1, vals);
        let body_regs = self.writes(body.0, body.1);
        let saved: Vec<Val> = body_regs.iter().map(|&r| vals[r as usize]).collect();
        let mut per_iteration = self.block(body.0, body.1, vals);
        for (&r, v) in body_regs.iter().zip(saved) {
            vals[r as usize] = v;
        }
        let mut cost = scale(&cond_cost, bound as u128 + 1);
        add(&mut per_iteration, &constant(self.policy.unit_costs.loop_turn() as u128));
        add(&mut cost, &scale(&per_iteration, bound as u128));
        cost
    }

    /// A routine's charge: its unit times its set's extent.
    fn charge(&self, unit: u64, extent: Option<u32>) -> Poly {
        match extent {
            Some(g) => Poly::from([(vec![g], unit as u128)]),
            None => constant(unit as u128 * self.policy.window_packets as u128),
        }
    }

    /// A grouping's charge: its unit times its set's extent, and GROUPING once.
    fn grouping(&self, unit: u64, extent: Option<u32>) -> Poly {
        let mut p = self.charge(unit, extent);
        add(&mut p, &constant(self.policy.unit_costs.grouping as u128));
        p
    }

    fn simple(&mut self, insn: &Insn, vals: &mut [Val]) -> Poly {
        use Insn::*;
        let u = self.policy.unit_costs;
        let extent = |r: Reg| match vals[r as usize] {
            Val::Set(e) => e,
            _ => None,
        };
        let (dst, val, cost) = match *insn {
            Const { dst, .. }
            | Param { dst, .. }
            | ThisIp { dst }
            | ThisSubnet { dst }
            | Bool { dst, .. }
            | Not { dst, .. }
            | And { dst, .. }
            | Or { dst, .. }
            | Cmp { dst, .. }
            | InPrefix { dst, .. }
            | Mask { dst, .. }
            | Arith { dst, .. }
            | Concat { dst, .. } => (dst, Val::Scalar, Poly::new()),
            AllPackets { dst } => (dst, Val::Set(None), Poly::new()),
            Copy { dst, src } => (dst, vals[src as usize], Poly::new()),
            FilterDst { dst, set, .. } => (dst, Val::Set(extent(set)), self.charge(u.group_by_destination, extent(set))),
            FilterSrc { dst, set, .. } => (dst, Val::Set(extent(set)), self.charge(u.group_by_source, extent(set))),
            GroupDst { dst, set } => {
                (dst, Val::Groups { extent: extent(set), by: By::Dst }, self.grouping(u.group_by_destination, extent(set)))
            }
            GroupSrc { dst, set } => (dst, Val::Groups { extent: extent(set), by: By::Src }, self.grouping(u.group_by_source, extent(set))),
            Narrow { dst, set, field, .. } => (dst, Val::Set(extent(set)), self.charge(u.by_field[field as usize], extent(set))),
            OnPackets { dst, set } => (dst, Val::Set(extent(set)), self.charge(u.by_field[0], extent(set))),
            GroupField { dst, set, field } => {
                (dst, Val::Groups { extent: extent(set), by: By::Field(field) }, self.grouping(u.by_field[field as usize], extent(set)))
            }
            DistinctPorts { dst, set } => (dst, Val::Scalar, self.charge(u.distinct_ports, extent(set))),
            GroupContent { dests, content, set } => {
                let e = extent(set);
                vals[dests as usize] = Val::List(e);
                (content, Val::List(e), self.grouping(u.group_by_content, e))
            }
            ContainsString { dst, set, .. } => (dst, Val::Scalar, self.charge(u.contains_string, extent(set))),
            Count { dst, set } => (dst, Val::Scalar, self.charge(u.count, extent(set))),
            DistinctDst { dst, set } => (dst, Val::Scalar, self.charge(u.distinct_destinations, extent(set))),
            Discard { set } => return self.charge(u.discard, extent(set)),
            Generate { payload, .. } => {
                return match vals[payload as usize] {
                    Val::List(e) => self.charge(u.generate, e),
                    _ => constant(u.generate as u128),
                }
            }
            If { .. } | Foreach { .. } | While { .. } => return Poly::new(),
        };
        vals[dst as usize] = val;
        cost
    }
}

/// The value of a register a `while` writes, at the loop's head (the VC
/// generator's fresh variables: a set of unknown extent).
fn fresh(ty: Ty) -> Val {
    match ty {
        Ty::Set => Val::Set(None),
        Ty::Groups => Val::Groups { extent: None, by: By::Dst },
        Ty::NumGroups => Val::Groups { extent: None, by: By::Field(Field::Proto) },
        Ty::AddrList | Ty::Content => Val::List(None),
        _ => Val::Scalar,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vinet_checker::vcgen;

    /// The first way, kept as the oracle: the complexity of each prefix of the
    /// top-level statements, differenced (quadratic).
    fn by_prefixes(module: &Module, policy: &Policy) -> usize {
        use vinet_checker::bytecode::Class;
        let mut starts = vec![];
        let mut pc = 0;
        while pc < module.code.len() {
            starts.push(pc);
            pc = blocks(&module.code, pc).1;
        }
        let (mut best, mut before) = ((0, 0), 0);
        for (i, &start) in starts.iter().enumerate() {
            let end = starts.get(i + 1).copied().unwrap_or(module.code.len());
            let mut prefix = module.clone();
            prefix.code.truncate(end);
            prefix.lines.truncate(end);
            let gen = prefix.code.iter().any(|x| matches!(x, Insn::Generate { .. }));
            let dis = prefix.code.iter().any(|x| matches!(x, Insn::Discard { .. }));
            prefix.header.class = match (gen, dis) {
                (true, _) => Class::Multicast,
                (false, true) => Class::Filtering,
                _ => prefix.header.class,
            };
            let Ok(vc) = vcgen::generate(&prefix, policy) else { break };
            if vc.complexity - before.min(vc.complexity) > best.1 {
                best = (start, vc.complexity - before);
            }
            before = vc.complexity;
        }
        best.0
    }

    fn policy(name: &str) -> Policy {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/");
        vinet_engine::policy_file::load(std::path::Path::new(&format!("{root}{name}.toml"))).expect("shipped policy")
    }

    fn programs() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = vec![];
        for dir in ["examples", "examples/ci/programs", "tests/accept", "tests/reject"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "vinet") {
                    if let Ok(text) = std::fs::read_to_string(&p) {
                        out.push((p.display().to_string(), text));
                    }
                }
            }
        }
        out
    }

    /// Programs of many statements whose dearest one is somewhere in the middle,
    /// inside loops, branches and nested groups.
    fn shapes() -> Vec<String> {
        let mut out = vec![];
        for k in [0, 3, 7] {
            let mut s = String::from(
                "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS(i), P(i) = GROUP_BY_SOURCE(Mine);\n",
            );
            for j in 0..10 {
                s += &match (j == k, j % 3) {
                    (true, _) => "foreach i do if CONTAINS_STRING(Mine, \"x\") then DISCARD(P(i));\n".to_string(),
                    (false, 0) => format!("C{j} = COUNT(Mine);\n"),
                    (false, 1) => format!("foreach i do D{j} = COUNT(P(i));\n"),
                    _ => format!("if COUNT(Mine) > {j} then E{j} = DISTINCT_DESTINATIONS(Mine); else F{j} = COUNT(Mine);\n"),
                };
            }
            out.push(s);
        }
        out.push(
            "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS(i), P(i) = GROUP_BY_SOURCE(Mine);\n\
             foreach i do begin D(j), Q(j) = GROUP_BY_DESTINATION(P(i)); foreach j do X = COUNT(Mine); end\n\
             N = 0; while N < 5 do N = N + COUNT(Mine);\nY = COUNT(Mine);\n"
                .to_string(),
        );
        // The transport routines: narrowings, groupings by a field (inside a loop too) and
        // DISTINCT_DESTINATION_PORTS, the dearest one a nested grouping by port.
        out.push(
            "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nTcpIn = GROUP_BY_PROTOCOL(Mine, TCP);\n\
             A = COUNT(TCP_FLAGS(TcpIn, SYN, ACK));\nS(i), P(i) = GROUP_BY_SOURCE(TcpIn);\n\
             foreach i do begin Port(j), Q(j) = GROUP_BY_DESTINATION_PORT(P(i)); foreach j do X = DISTINCT_DESTINATION_PORTS(TcpIn); end\n\
             B = DISTINCT_DESTINATION_PORTS(GROUP_BY_SOURCE_PORT(Mine, 0, 1023));\nProto(k), R(k) = GROUP_BY_PROTOCOL(Mine);\n\
             foreach k do C = COUNT(GROUP_BY_DESTINATION_PORT(R(k), 80));\n"
                .to_string(),
        );
        out
    }

    #[test]
    fn points_where_prefix_differencing_points() {
        let mut compared = 0;
        let sources: Vec<(String, String)> =
            programs().into_iter().chain(shapes().into_iter().enumerate().map(|(i, s)| (format!("shape {i}"), s))).collect();
        for (name, text) in sources {
            let compiled = vinet_lang::compile(&name, text.as_bytes(), &[]);
            if let (true, Err(d)) = (name.starts_with("shape"), &compiled) {
                panic!("{name} does not compile: {}", d.render());
            }
            let Ok(c) = compiled else { continue };
            for p in ["end-user", "edge-router"] {
                let policy = policy(p);
                if vcgen::generate(&c.module, &policy).is_err() {
                    continue;
                }
                assert_eq!(dearest_statement(&c.module, &policy), by_prefixes(&c.module, &policy), "{name} under {p}");
                compared += 1;
            }
        }
        assert!(compared >= 20, "only {compared} programs compared");
    }

    #[test]
    fn a_foreach_over_the_window_costs_the_window_per_group() {
        let text = "LIFETIME = 1 hours\nMine = GROUP_BY_DESTINATION(AllPackets, THIS_IP);\nS(i), P(i) = GROUP_BY_SOURCE(Mine);\n\
                    A = COUNT(Mine);\nforeach i do B = COUNT(Mine);\nC = COUNT(Mine);\n";
        let c = vinet_lang::compile("t", text.as_bytes(), &[]).expect("compiles");
        let at = dearest_statement(&c.module, &policy("end-user"));
        assert!(matches!(c.module.code[at], Insn::Foreach { .. }), "points at {:?}", c.module.code[at]);
    }
}
