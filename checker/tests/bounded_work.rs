//! The checker's work is bounded by the bundle's size (issue 9): every
//! hostile family of `benches/families.rs` is refused, by a cap or by the
//! work budget, at the step where it passes it; the ordinary bundles pass
//! well within theirs. Deterministic: work is counted in units, not timed
//! (the times are `benches/hostile.rs`).

#[path = "../benches/families.rs"]
mod families;

use vinet_checker::cert::{budget, LemmaCache, WORK_BASE, WORK_MAX, WORK_PER_BYTE};
use vinet_checker::check;
use vinet_checker::logic::{charge, over_budget, Budget};

fn refusal(bytes: &[u8], cache: &LemmaCache) -> String {
    match check(bytes, &families::end_user(), cache) {
        Ok(_) => panic!("a hostile bundle was accepted"),
        Err(e) => e.to_string(),
    }
}

/// The step index a proof refusal names.
fn step_of(reason: &str) -> usize {
    reason.split("step ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{reason}"))
}

#[test]
fn ordinary_bundles_use_under_a_third_of_their_budget() {
    let cache = families::lemmas();
    for (name, bytes, policy) in families::ordinary() {
        let third = (WORK_BASE + WORK_PER_BYTE * bytes.len() as u64) / 3;
        let outer = Budget::new(u64::MAX);
        assert!(check(&bytes, &policy, &cache).is_ok(), "{name}");
        // check() ran under a budget of its own; measure the same work here.
        let b: vinet_checker::cert::Bundle = vinet_checker::cert::decode_file(&bytes, vinet_checker::cert::BUNDLE_MAGIC, "bundle").unwrap();
        let m = vinet_checker::Module::decode(&b.module).unwrap();
        let vc = vinet_checker::vcgen::generate(&m, &policy).unwrap();
        let goals: Vec<_> = vc.all(b.declared).unwrap().into_iter().map(|o| o.formula).collect();
        let (th, _) = vinet_checker::cert::replay(&b.certificate.proof, &cache, &goals).unwrap();
        assert!(*th.concl() == vc.predicate(b.declared).unwrap());
        assert!(outer.used() < third, "{name}: {} units, a third of its budget is {third}", outer.used());
    }
}

#[test]
fn deep_sharing_is_walked_once_per_node() {
    // 20 pool terms standing for a tree of half a million nodes: a
    // substitution costs its distinct nodes (a few hundred units), not the
    // tree's, so ten of them replay (to a statement that is not the predicate).
    let cache = families::lemmas();
    let r = refusal(&families::deep_sharing(10), &cache);
    assert!(r.contains("different statement"), "{r}");
    // A hundred thousand, six bytes each, pass the budget of their bytes
    // and are stopped where they do.
    let r = refusal(&families::deep_sharing(100_000), &cache);
    assert!(r.contains("(budget)") && step_of(&r) < 20_000, "{r}");
}

#[test]
fn repeated_work_on_a_wide_term_stops_at_the_budget() {
    let cache = families::lemmas();
    let r = refusal(&families::wide_substitutions(1 << 12, 1_000), &cache);
    assert!(r.contains("(budget)") && step_of(&r) < 100, "{r}");
}

#[test]
fn fan_out_is_capped() {
    let cache = families::lemmas();
    let r = refusal(&families::many_premises(65, 1), &cache);
    assert!(r.contains("more than 64 premises"), "{r}");
    let r = refusal(&families::many_premises(64, 10_000), &cache);
    assert!(r.contains("(budget)") && step_of(&r) < 10_000, "{r}");
    let r = refusal(&families::many_hypotheses(65), &cache);
    assert!(r.contains("more than 64 hypotheses"), "{r}");
}

#[test]
fn branches_cost_what_they_write_not_the_register_file() {
    // 65,536 registers and 8,000 `if`s: the conditions are generated within
    // the budget of the bundle's bytes, and it is refused for its missing proof.
    let cache = families::lemmas();
    let r = refusal(&families::branches_times_registers(1 << 16, 8_000), &cache);
    assert!(r.contains("no steps"), "{r}");
}

#[test]
fn no_check_passes_the_absolute_cap() {
    const { assert!(WORK_BASE + WORK_PER_BYTE * (1 << 20) > WORK_MAX, "a 1 MiB bundle meets the cap, not the per-byte budget") };
    let b = budget(usize::MAX / 16);
    assert!(charge(WORK_MAX));
    assert!(!charge(1) && over_budget());
    drop(b);
    // Dropped, the budget gives back the thread's previous one (none: unlimited).
    assert!(charge(u64::MAX / 2) && !over_budget());
}
