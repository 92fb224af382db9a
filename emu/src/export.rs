//! A plan as a containerlab topology, so that a scenario maps onto a larger,
//! multi-host testbed node for node: each host and router a `linux` node,
//! each veth a link, and each node's addresses, routes and forwarding as its
//! `exec` commands. containerlab keeps `eth0` for management, so a node's
//! data interfaces become `eth1`, `eth2`, ... in the order of the plan's
//! links. What the export leaves to the testbed: the image (one with
//! iproute2, and vinetd for the vinet routers), tc shaping, vinetd's configs
//! and keys, the traffic and the script.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::topology::{Kind, Plan};

/// The containerlab YAML of a plan.
pub fn containerlab(plan: &Plan, image: &str) -> String {
    // Each node's interface names, renamed eth1.. in link order.
    let mut rename: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); plan.nodes.len()];
    for l in &plan.links {
        for (n, ifn) in [(l.a, &l.a_if), (l.b, &l.b_if)] {
            let k = rename[n].len() + 1;
            rename[n].insert(ifn.clone(), format!("eth{k}"));
        }
    }
    let mut exec: Vec<Vec<String>> = vec![vec![]; plan.nodes.len()];
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.kind != Kind::Host {
            exec[i].push("sysctl -w net.ipv4.ip_forward=1".into());
        }
        if node.kind == Kind::Edge {
            exec[i].push("ip link add void0 type veth peer name void1".into());
            exec[i].push("ip link set void0 arp off".into());
            exec[i].push("ip link set void0 up".into());
            exec[i].push(format!("ip addr add {}/32 dev void0", node.addr.expect("edge address")));
        }
    }
    for l in &plan.links {
        for (n, ifn, (addr, len)) in [(l.a, &l.a_if, l.a_addr), (l.b, &l.b_if, l.b_addr)] {
            let dev = &rename[n][ifn];
            exec[n].push(format!("ip addr add {addr}/{len} dev {dev}"));
            exec[n].push(format!("ip link set {dev} up"));
        }
    }
    for (i, routes) in plan.routes.iter().enumerate() {
        for r in routes {
            let dev = rename[i].get(&r.dev).cloned().unwrap_or_else(|| r.dev.clone());
            let mut c = format!("ip route replace {}", r.to);
            if let Some(v) = r.via {
                let _ = write!(c, " via {v}");
            }
            let _ = write!(c, " dev {dev}");
            if let Some(s) = r.src {
                let _ = write!(c, " src {s}");
            }
            exec[i].push(c);
        }
    }
    let mut y = String::new();
    let _ = writeln!(y, "# containerlab topology of vinet-emu scenario {:?}, seed {} (written by vinet-emu export)", plan.name, plan.seed);
    let _ = writeln!(y, "name: {}", plan.name);
    let _ = writeln!(y, "topology:\n  nodes:");
    for (i, node) in plan.nodes.iter().enumerate() {
        let role = match node.kind {
            Kind::Host => "host".to_string(),
            Kind::Edge if node.vinet => "edge router running vinetd".to_string(),
            Kind::Edge => "edge router".to_string(),
            Kind::Core => "core router".to_string(),
        };
        let _ = writeln!(y, "    {}:  # {role}", node.name);
        let _ = writeln!(y, "      kind: linux\n      image: {image}\n      exec:");
        for c in &exec[i] {
            let _ = writeln!(y, "        - \"{c}\"");
        }
    }
    let _ = writeln!(y, "  links:");
    for l in &plan.links {
        let bw = l.bandwidth.map_or(String::new(), |b| format!("  # {b} bit/s (tc tbf in vinet-emu)"));
        let _ = writeln!(
            y,
            "    - endpoints: [\"{}:{}\", \"{}:{}\"]{bw}",
            plan.nodes[l.a].name, rename[l.a][&l.a_if], plan.nodes[l.b].name, rename[l.b][&l.b_if]
        );
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use std::path::Path;

    #[test]
    fn a_line_as_containerlab() {
        let text = "name = \"l\"\nduration = 5\n[[router]]\nname = \"e0\"\nkind = \"edge\"\nvinet = true\n[[router]]\nname = \"c0\"\nkind = \"core\"\n[[host]]\nname = \"a\"\nrouter = \"e0\"\n[[link]]\na = \"e0\"\nb = \"c0\"\nbandwidth = \"10mbit\"\n";
        let l = parse(Path::new("s.toml"), text.to_string()).unwrap();
        let y = containerlab(&Plan::new(&l, None).unwrap(), "vinet:latest");
        assert!(y.contains("    e0:  # edge router running vinetd\n      kind: linux\n      image: vinet:latest\n"), "{y}");
        // e0's host link is eth1, its core link eth2; the host's only link eth1.
        assert!(y.contains("- endpoints: [\"e0:eth1\", \"a:eth1\"]"), "{y}");
        assert!(y.contains("- endpoints: [\"e0:eth2\", \"c0:eth1\"]  # 10000000 bit/s"), "{y}");
        assert!(y.contains("\"ip addr add 10.1.0.2/32 dev eth1\""), "{y}");
        assert!(y.contains("\"ip route replace default via 10.1.0.1 dev eth1\""), "{y}");
        assert!(y.contains("\"ip route replace 10.1.0.0/24 via 10.250.0.1 dev eth1\""), "c0 routes e0's /24 over its eth1: {y}");
        assert!(!y.contains("dev h0") && !y.contains("dev l0") && !y.contains("dev eth0"), "{y}");
    }
}
