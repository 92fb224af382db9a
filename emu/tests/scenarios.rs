//! Every shipped scenario parses and plans (every combination of its sweep
//! too), with no root and no network: what `vinet-emu check` does.

use std::path::Path;

use vinet_emu::scenario;
use vinet_emu::topology::{Kind, Plan};

#[test]
fn shipped_scenarios_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let l = scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::new(&l, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.nodes.iter().any(|n| n.kind == Kind::Host), "{}", path.display());
        if let Some(s) = &l.scenario.sweep {
            let s = s.get_ref();
            for f in &s.fraction {
                for p in &s.placement {
                    for seed in &s.seeds {
                        let q = Plan::new(&l, Some((*f, *p, *seed))).unwrap_or_else(|e| panic!("{e}"));
                        let edges = q.nodes.iter().filter(|n| n.kind == Kind::Edge).count();
                        assert_eq!(q.vinet_routers().count(), (f * edges as f64).round() as usize);
                    }
                }
            }
        }
        names.push(l.scenario.name.clone());
    }
    names.sort();
    assert_eq!(
        names,
        [
            "multicast-agg",
            "multicast-none",
            "on-2pc-faults",
            "on-etcd-managers",
            "on-isolation",
            "on-isolation-none",
            "on-lease-lapse",
            "on-redundant",
            "reroute",
            "reroute-static",
            "robust-baseline",
            "robust-threats",
            "router-load",
            "scale",
            "spam-destination",
            "spam-source",
            "tiny",
            "worm-mix",
            "worm-mix-bg",
            "worm-partial",
            "worm-smallworld"
        ]
    );
}

#[test]
fn worm_partial_holds_66_namespaces() {
    let l = scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/worm-partial.toml")).unwrap();
    let p = Plan::new(&l, None).unwrap();
    assert_eq!(p.nodes.len(), 66, "EXPERIMENTS.md and emu/README.md state 66");
}
