//! The CI sweep: 2,000 seeds over every scenario (small message counts), zero invariant failures.
//!
//! Seeds of known core bugs (FOUND.md) are listed in `KNOWN` and kept as ignored regression tests
//! in `regressions.rs`; any other failure fails this test with one replay command per seed.

use tether_sim::scenario::{Scale, SCENARIOS};
use tether_sim::sweep::{run_one, Summary};

/// Seeds: every scenario runs on `SEEDS` seeds.
const SEEDS: u64 = 2_000;

/// `(scenario, seed, FOUND.md entry)` of failures caused by known core bugs at CI scale.
/// Empty: every core bug the sweep found is fixed and kept in `regressions.rs`.
const KNOWN: &[(&str, u64, u32)] = &[];

#[test]
fn sweep_2000_seeds_all_scenarios() {
    // Two workers (the engine itself is single-threaded; runs are independent).
    let halves: Vec<Summary> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| {
                sc.spawn(move || {
                    let mut summary = Summary::default();
                    for seed in (0..SEEDS).filter(|s| s % 2 == w) {
                        for s in SCENARIOS {
                            run_one(&mut summary, s, seed, Scale::Ci, false);
                        }
                    }
                    summary
                })
            })
            .collect();
        workers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut summary = Summary::default();
    for h in halves {
        summary.merge(h);
    }
    let unexpected: Vec<_> = summary
        .failures
        .iter()
        .filter(|f| !KNOWN.iter().any(|(s, n, _)| *s == f.scenario && *n == f.seed))
        .collect();
    println!("{}", summary.table());
    assert!(
        unexpected.is_empty(),
        "{} failing runs:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|f| format!("{}  # {}", f.replay(), f.what))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let total: u64 = summary.rows.values().map(|r| r.runs).sum();
    assert_eq!(total, SEEDS * SCENARIOS.len() as u64);
}
