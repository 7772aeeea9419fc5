//! The same seed and scenario give the same run, frame for frame.

use tether_sim::scenario::{plan, run_tether, Scale, SCENARIOS};

#[test]
fn same_seed_same_trace() {
    for (k, s) in SCENARIOS.iter().enumerate() {
        let p = plan(s, 1000 + k as u64, Scale::Ci).unwrap();
        let a = run_tether(&p, true);
        let b = run_tether(&p, true);
        assert!(!a.sim.trace.lines.is_empty());
        assert_eq!(a.sim.trace.lines, b.sim.trace.lines, "{s}: readable traces differ");
        assert_eq!(a.outcome, b.outcome, "{s}: outcomes differ");
        // The cheap hash (always on) agrees with tracing off.
        let c = run_tether(&p, false);
        let d = run_tether(&p, false);
        assert_eq!(c.outcome.trace_hash, d.outcome.trace_hash, "{s}");
        assert_eq!(c.outcome.stats, a.outcome.stats, "{s}: tracing changed the run");
    }
}

#[test]
fn different_seeds_differ() {
    let a = run_tether(&plan("mix", 1, Scale::Ci).unwrap(), false);
    let b = run_tether(&plan("mix", 2, Scale::Ci).unwrap(), false);
    assert_ne!(a.outcome.trace_hash, b.outcome.trace_hash);
}

#[test]
fn trace_is_readable() {
    let r = run_tether(&plan("rst-after-fin", 3, Scale::Ci).unwrap(), true);
    let t = r.sim.trace.lines.join("\n");
    for needle in ["Hello New", "Welcome", "Data seq=", "-> s0", "event Connected"] {
        assert!(t.contains(needle), "trace lacks {needle:?}");
    }
}
