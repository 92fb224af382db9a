//! The overlay scenarios (issue 13) plan with no root, and a bad `[overlay]`,
//! `[[on]]`, GRE source or overlay event is refused at its line.

use std::path::Path;

use vinet_emu::scenario;
use vinet_emu::topology::{Action, Plan};

fn plan(text: &str) -> Result<Plan, scenario::ScenarioError> {
    let l = scenario::parse(Path::new("s.toml"), text.to_string())?;
    Plan::new(&l, None)
}

fn shipped(name: &str) -> Plan {
    let l = scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.toml"))).unwrap();
    Plan::new(&l, None).unwrap_or_else(|e| panic!("{e}"))
}

const BASE: &str = r#"name = "x"
duration = 20
[[router]]
name = "e0"
kind = "edge"
vinet = true
[[router]]
name = "c0"
kind = "core"
[[router]]
name = "e1"
kind = "edge"
[[link]]
a = "e0"
b = "c0"
bandwidth = "5mbit"
[[link]]
a = "c0"
b = "e1"
[[host]]
name = "a0"
router = "e0"
[[host]]
name = "b0"
router = "e1"
"#;

const OVERLAY: &str = r#"[overlay]
capacity = { bps = 5000000, pps = 1000 }
priority = "vinetd"
[[on]]
name = "o"
access = ["a0", "b0"]
bps = 1000000
pps = 100
"#;

#[test]
fn the_overlay_scenarios_plan() {
    let p = shipped("on-isolation");
    let o = p.overlay.as_ref().expect("an overlay");
    assert_eq!(o.routers.len(), 2, "every router is in the picture by default");
    assert_eq!(o.links.len(), 1);
    assert_eq!(p.ons.len(), 1);
    assert_eq!((p.ons[0].pps, p.ons[0].bps), (500, 2_000_000));
    assert!(p.events.iter().any(|e| matches!(e.action, Action::OnRequest { .. })));
    let none = shipped("on-isolation-none");
    assert!(!none.events.iter().any(|e| matches!(e.action, Action::OnRequest { .. })), "the counterfactual requests nothing");
    let lapse = shipped("on-lease-lapse");
    assert_eq!(lapse.standalone_participants().len(), 1, "c0's participant is a stand-alone one");
    assert!(lapse.events.iter().any(|e| matches!(e.action, Action::ManagerStop { manager: 0 })));
    let faults = shipped("on-2pc-faults");
    let mut manager_points = vec![];
    let mut router_points = vec![];
    for e in &faults.events {
        match &e.action {
            Action::ManagerStart { crash_at: Some(c), .. } => manager_points.push(c.clone()),
            Action::RestartRouter { crash_at: Some(c), .. } => router_points.push(c.clone()),
            _ => {}
        }
    }
    assert_eq!(manager_points, vinet_emu::topology::MANAGER_CRASH_POINTS, "every coordinator crash point, once");
    assert_eq!(router_points.len(), 2 * vinet_emu::topology::ROUTER_CRASH_POINTS.len(), "every participant crash point on two routers");
    let checks = faults.events.iter().filter(|e| matches!(e.action, Action::OnCheck { .. })).count();
    assert_eq!(checks, 1 + manager_points.len() + router_points.len() + 1, "a check after each crash point");
    let etcd = shipped("on-etcd-managers");
    let o = etcd.overlay.as_ref().unwrap();
    assert_eq!((o.spec.managers, o.spec.store), (2, scenario::OverlayStore::Etcd));
    assert!(etcd.events.iter().any(|e| matches!(&e.action, Action::OnRequest { managers, .. } if managers.len() == 2)));
    let red = shipped("on-redundant");
    assert!(red.ons[0].redundant && red.ons[0].tunnel);
    assert!(red.events.iter().any(|e| matches!(e.action, Action::OnTransfer { bytes: 8_000_000, rate: 8_000_000, .. })));
    assert!(red.events.iter().any(|e| matches!(e.action, Action::LinkDown { .. })));
}

#[test]
fn a_minimal_overlay_plans() {
    let p = plan(&format!("{BASE}{OVERLAY}")).unwrap();
    assert_eq!(p.overlay.as_ref().unwrap().routers.len(), 3);
    assert_eq!(p.standalone_participants().len(), 2, "c0 and e1 do not run vinetd");
    assert_eq!(p.ons[0].routers.map(|r| p.nodes[r].name.clone()), ["e0", "e1"]);
}

fn refused(extra: &str, line_of: &str, says: &str) {
    let text = format!("{BASE}{extra}");
    let e = plan(&text).err().unwrap_or_else(|| panic!("accepted:\n{extra}"));
    let want = text.lines().position(|l| l == line_of).unwrap_or_else(|| panic!("no line {line_of:?}")) + 1;
    assert_eq!(e.line, want, "{e}");
    assert!(e.msg.contains(says), "{e}");
}

#[test]
fn bad_overlay_sections_are_refused_at_their_line() {
    refused("[overlay]\ncapacity = { bps = 1, pps = 1 }\nmanagers = 2\n", "[overlay]", "etcd");
    refused("[overlay]\ncapacity = { bps = 1, pps = 1 }\nrouters = [\"e0\", \"zz\"]\n", "[overlay]", "no router \"zz\"");
    refused("[overlay]\ncapacity = { bps = 1, pps = 1 }\nmark = 0x40000000\n", "[overlay]", "low 16 bits");
    refused("[overlay]\ncapacity = { bps = 1, pps = 1 }\npriority_share = 1.5\n", "[overlay]", "priority_share");
    refused("[overlay]\ncapacity = { bps = 0, pps = 1 }\n", "[overlay]", "positive");
    refused("[overlay]\ncapacity = { bps = 1, pps = 1 }\ncolour = 3\n", "colour = 3", "unknown field `colour`");
    refused("[[on]]\nname = \"o\"\naccess = [\"a0\", \"b0\"]\nbps = 1\npps = 1\n", "[[on]]", "needs an [overlay]");
    // ONs.
    let ov = "[overlay]\ncapacity = { bps = 5000000, pps = 1000 }\n";
    refused(&format!("{ov}[[on]]\nname = \"o\"\naccess = [\"a0\", \"zz\"]\nbps = 1\npps = 1\n"), "[[on]]", "no host \"zz\"");
    refused(&format!("{ov}[[on]]\nname = \"o\"\naccess = [\"a0\", \"b0\"]\nbps = 1\npps = 5000\n"), "[[on]]", "whole capacity");
    refused(
        "[overlay]\ncapacity = { bps = 5, pps = 5 }\nrouters = [\"e0\", \"c0\"]\n[[on]]\nname = \"o\"\naccess = [\"a0\", \"b0\"]\nbps = 1\npps = 1\n",
        "[[on]]",
        "not in the [overlay]'s routers",
    );
    // GRE sources.
    let g = |body: &str| format!("{OVERLAY}[[traffic]]\nkind = \"gre\"\nname = \"g\"\nfrom = \"a0\"\nto = \"b0\"\n{body}");
    refused(&g("on = \"o\"\npps = 10\nrunning = true\n"), "[[traffic]]", "cannot run from t = 0");
    refused(&g("pps = 10\n"), "[[traffic]]", "exactly one of `on`");
    refused(&g("on = \"p\"\npps = 10\n"), "[[traffic]]", "no ON \"p\"");
    refused(&g("key = 5\npps = 0\n"), "[[traffic]]", "pps must be");
    // Events.
    let ev = |body: &str| format!("{OVERLAY}[[event]]\nat = 1\n{body}");
    refused(&ev("action = \"on-request\"\non = \"p\"\n"), "[[event]]", "no ON \"p\"");
    refused(&ev("action = \"on-request\"\non = \"o\"\nmanager = 2\n"), "[[event]]", "managers are 1 to 1");
    refused(&ev("action = \"on-request\"\non = \"o\"\nexpect = \"maybe\"\n"), "[[event]]", "expect");
    refused(&ev("action = \"manager-start\"\ncrash_at = \"later\"\n"), "[[event]]", "the coordinator's crash points are logged");
    refused(&ev("action = \"restart-router\"\nrouter = \"c0\"\ncrash_at = \"soon\"\n"), "[[event]]", "a router's crash points are");
    refused(&ev("action = \"on-check\"\non = \"o\"\n"), "[[event]]", "`on` is not a field of this action");
    refused("[[event]]\nat = 1\naction = \"on-check\"\n", "[[event]]", "needs an [overlay]");
    refused(&ev("action = \"on-transfer\"\non = \"o\"\n"), "[[event]]", "has no tunnel");
    let tun = OVERLAY.replace("pps = 100\n", "pps = 100\ntunnel = true\n");
    let tev = |body: &str| format!("{tun}[[event]]\nat = 1\n{body}");
    assert!(plan(&format!("{BASE}{}", tev("action = \"on-transfer\"\non = \"o\"\nbytes = 1000\nrate = \"2mbit\"\n"))).is_ok());
    refused(&tev("action = \"on-transfer\"\non = \"o\"\nrate = \"fast\"\n"), "[[event]]", "needs a unit");
    refused(&tev("action = \"on-transfer\"\non = \"o\"\npps = 0\n"), "[[event]]", "pps = 0");
    // A participant can be killed (it is not vinetd), a plain router cannot.
    assert!(plan(&format!("{BASE}{OVERLAY}[[event]]\nat = 1\naction = \"kill-router\"\nrouter = \"c0\"\n")).is_ok());
    refused(
        "[[event]]\nat = 1\naction = \"kill-router\"\nrouter = \"c0\"\n",
        "[[event]]",
        "does not run vinet, nor an overlay participant",
    );
}
