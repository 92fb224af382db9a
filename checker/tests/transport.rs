//! The transport-level instructions (issue 16) in the validator and the
//! condition generator, on modules built by hand: what each obliges, what it
//! costs, and the typing of groups keyed by numbers.

use vinet_checker::bytecode::{Class, Const, Field, Header, Insn, Module, Ty, FORMAT_VERSION};
use vinet_checker::logic::Sym;
use vinet_checker::policy::{ClientKind, UnitCosts};
use vinet_checker::vcgen::{generate, What};
use vinet_checker::Policy;

const W: u64 = 256;

/// Distinct unit costs, so that a routine charged at another's rate shows.
fn policy() -> Policy {
    Policy {
        client: ClientKind::EndUser,
        max_lifetime_secs: 30 * 86_400,
        complexity_up: u64::MAX / 4,
        cost_up: u64::MAX / 4,
        window_packets: W as u32,
        unit_costs: UnitCosts {
            discard: 1,
            group_by_destination: 2,
            group_by_source: 3,
            group_by_content: 5,
            contains_string: 7,
            generate: 11,
            count: 13,
            distinct_destinations: 17,
            by_field: [19, 23, 29, 31],
            distinct_ports: 37,
            grouping: 0,
            instruction: 0,
            bytes: 0,
        },
        max_param_bytes: 256,
        generated_bytes_up: u64::MAX / 4,
    }
}

fn module(class: Class, consts: Vec<Const>, regs: Vec<Ty>, code: Vec<Insn>) -> Module {
    let lines = vec![1; code.len()];
    Module { version: FORMAT_VERSION, header: Header { lifetime_secs: 3600, class }, consts, params: vec![], regs, code, lines }
}

/// r0 = AllPackets, r1 = THIS_IP, r2 = GROUP_BY_DESTINATION(r0, r1), r3 = 25, r4 = 25.
fn prelude() -> (Vec<Const>, Vec<Ty>, Vec<Insn>) {
    let consts = vec![Const::Num(25)];
    let regs = vec![Ty::Set, Ty::Addr, Ty::Set, Ty::Num, Ty::Num];
    let code = vec![
        Insn::AllPackets { dst: 0 },
        Insn::ThisIp { dst: 1 },
        Insn::FilterDst { dst: 2, set: 0, by: 1 },
        Insn::Const { dst: 3, k: 0 },
        Insn::Const { dst: 4, k: 0 },
    ];
    (consts, regs, code)
}

#[test]
fn a_narrowing_obliges_nothing_and_costs_its_field_per_packet() {
    for field in [Field::Proto, Field::SrcPort, Field::DstPort, Field::TcpFlags] {
        let (consts, mut regs, mut code) = prelude();
        regs.push(Ty::Set);
        code.push(Insn::Narrow { dst: 5, set: 2, field, a: 3, b: 4 });
        code.push(Insn::Discard { set: 5 });
        let m = module(Class::Filtering, consts, regs, code);
        m.validate().unwrap();
        let vc = generate(&m, &policy()).unwrap();
        // FilterDst (2 W), the narrowing (its field's unit x W), DISCARD (1 W).
        assert_eq!(vc.complexity, 2 * W + policy().unit_costs.by_field[field as usize] * W + W, "{field:?}");
        // One obligation, DISCARD's: the narrowed set is the client's.
        let obligations: Vec<_> = vc.obligations.iter().map(|o| o.what).collect();
        assert_eq!(obligations, [What::Confined("DISCARD")], "{field:?}");
        let conf = &vc.obligations[0].formula;
        let narrowed = &conf.args()[0];
        assert!(narrowed.args_of(Sym::Narrow).is_some(), "{field:?}: {conf:?}");
        assert_eq!(narrowed.args()[1], vinet_checker::logic::Term::num(field as u64));
    }
}

#[test]
fn grouping_and_distinct_ports_oblige_confinement_of_their_set() {
    for (insn, ty, what) in [
        (Insn::GroupField { dst: 5, set: 0, field: Field::DstPort }, Ty::NumGroups, "GROUP_BY_DESTINATION_PORT"),
        (Insn::GroupField { dst: 5, set: 0, field: Field::Proto }, Ty::NumGroups, "GROUP_BY_PROTOCOL"),
        (Insn::GroupField { dst: 5, set: 0, field: Field::SrcPort }, Ty::NumGroups, "GROUP_BY_SOURCE_PORT"),
        (Insn::DistinctPorts { dst: 5, set: 0 }, Ty::Num, "DISTINCT_DESTINATION_PORTS"),
    ] {
        let (consts, mut regs, mut code) = prelude();
        regs.push(ty);
        code.push(insn);
        let m = module(Class::Monitoring, consts, regs, code);
        m.validate().unwrap();
        let vc = generate(&m, &policy()).unwrap();
        assert_eq!(vc.obligations.len(), 1, "{what}");
        assert_eq!(vc.obligations[0].what, What::Confined(what));
        // On AllPackets (r0): Conf(All, THIS_IP), which no proof can show.
        assert!(vc.obligations[0].formula.args()[0].args_of(Sym::All).is_some(), "{what}");
    }
}

#[test]
fn groups_by_number_bind_a_number_key_and_cost_per_group() {
    // foreach (k, g) in GROUP_BY_DESTINATION_PORT(Mine): if COUNT(g) > k then DISCARD(g)
    let (mut consts, mut regs, mut code) = prelude();
    consts.push(Const::Num(0));
    regs.extend([Ty::NumGroups, Ty::Num, Ty::Set, Ty::Num, Ty::Bool]);
    code.extend([
        Insn::GroupField { dst: 5, set: 2, field: Field::DstPort },
        Insn::Foreach { groups: 5, key: 6, set: 7, body_len: 4 },
        Insn::Count { dst: 8, set: 7 },
        Insn::Cmp { op: vinet_checker::bytecode::CmpOp::Gt, dst: 9, a: 8, b: 6 },
        Insn::If { cond: 9, then_len: 1, else_len: 0 },
        Insn::Discard { set: 7 },
    ]);
    let m = module(Class::Filtering, consts, regs, code);
    m.validate().unwrap();
    let vc = generate(&m, &policy()).unwrap();
    let u = policy().unit_costs;
    // FilterDst 2 W, grouping 29 W; in the loop COUNT and DISCARD per packet of the group, summed
    // over groups that partition Mine: (13 + 1) W; a loop turn costs 1 per group: W.
    assert_eq!(vc.complexity, u.group_by_destination * W + u.by_field[2] * W + (u.count + u.discard) * W + W);
    // Confinement of the grouped set and, in the loop, of the group (COUNT, DISCARD); no NoLeak.
    let whats: Vec<_> = vc.obligations.iter().map(|o| o.what).collect();
    assert_eq!(whats, [What::Confined("GROUP_BY_DESTINATION_PORT"), What::Confined("COUNT"), What::Confined("DISCARD")]);
    let group = &vc.obligations[1].formula.args()[0];
    let a = group.args_of(Sym::Narrow).expect("a group by port is a narrowing");
    assert_eq!(a[2], a[3], "a group is the narrowing to its own key");

    // The key is a number: a module that uses it as an address is refused.
    let mut bad = m.clone();
    bad.regs[6] = Ty::Addr;
    assert!(bad.validate().unwrap_err().to_string().contains("used as Num"), "{:?}", bad.validate());
    // And a foreach over address groups still binds an address.
    let mut bad = m.clone();
    bad.regs[5] = Ty::Groups;
    assert!(bad.validate().is_err());
}

#[test]
fn a_narrowing_inside_a_group_is_charged_per_group_only_on_that_group() {
    // In the loop over port groups of Mine: a narrowing of the group (per group) and one of
    // AllPackets with the same key (per window: it is not the group, whatever its shape).
    let (consts, mut regs, mut code) = prelude();
    regs.extend([Ty::NumGroups, Ty::Num, Ty::Set, Ty::Set, Ty::Set]);
    code.extend([
        Insn::GroupField { dst: 5, set: 2, field: Field::DstPort },
        Insn::Foreach { groups: 5, key: 6, set: 7, body_len: 2 },
        Insn::Narrow { dst: 8, set: 7, field: Field::TcpFlags, a: 3, b: 4 },
        Insn::Narrow { dst: 9, set: 0, field: Field::DstPort, a: 6, b: 6 },
    ]);
    let m = module(Class::Monitoring, consts, regs, code);
    m.validate().unwrap();
    let vc = generate(&m, &policy()).unwrap();
    let u = policy().unit_costs;
    // The second narrowing costs 29 W per group, and there are up to W groups: 29 W^2.
    assert_eq!(vc.complexity, u.group_by_destination * W + u.by_field[2] * W + u.by_field[3] * W + u.by_field[2] * W * W + W);
}

#[test]
fn narrowing_operands_must_be_numbers() {
    let (consts, mut regs, mut code) = prelude();
    regs.push(Ty::Set);
    code.push(Insn::Narrow { dst: 5, set: 2, field: Field::DstPort, a: 1, b: 4 });
    let m = module(Class::Monitoring, consts, regs, code);
    assert!(m.validate().unwrap_err().to_string().contains("r1 is Addr, used as Num"));
}
