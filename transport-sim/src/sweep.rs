//! Running many seeds and summarising them: the table the command line prints and CI asserts on.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::naive::BaselineReport;
use crate::scenario::{is_incident, plan, replay_command, run_naive, run_tether, Scale};
use crate::sim::FaultClass;

/// One failing run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Scenario.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// What broke (first violations, or the panic message).
    pub what: String,
    /// Message-count scale it ran at.
    pub scale: Scale,
}

impl Failure {
    /// The one-line replay command.
    pub fn replay(&self) -> String {
        replay_command(&self.scenario, self.seed, self.scale)
    }
}

/// Totals of one scenario over a sweep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    /// Runs.
    pub runs: u64,
    /// Faults injected per class.
    pub faults: BTreeMap<FaultClass, u64>,
    /// Messages delivered to applications.
    pub delivered: u64,
    /// Messages returned by `Lost` (noticed).
    pub returned: u64,
    /// Messages neither confirmed nor returned (must be 0).
    pub unnoticed: u64,
    /// Reconnect attempts.
    pub reconnects: u64,
    /// Resumes.
    pub resumes: u64,
    /// Client sessions closed cleanly / lost.
    pub closed: u64,
    /// See `closed`.
    pub lost: u64,
    /// Sockets left open.
    pub leaked: u64,
    /// Frames carried.
    pub frames: u64,
    /// Naive baseline over the same networks (incident scenarios only).
    pub baseline: BaselineReport,
    /// Failing runs.
    pub failures: u64,
}

/// A sweep's results.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per scenario.
    pub rows: BTreeMap<String, Row>,
    /// Every failing run.
    pub failures: Vec<Failure>,
}

/// Runs one seed of one scenario (and its baseline when `baseline`), folding it into `summary`.
pub fn run_one(summary: &mut Summary, scenario: &str, seed: u64, s: Scale, baseline: bool) {
    let row = summary.rows.entry(scenario.to_string()).or_default();
    row.runs += 1;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let p = plan(scenario, seed, s).expect("known scenario");
        let run = run_tether(&p, false);
        let base = (baseline && is_incident(scenario)).then(|| run_naive(&p));
        (run.violations, run.outcome, base)
    }));
    match result {
        Ok((violations, o, base)) => {
            for (k, v) in &o.stats.faults {
                *row.faults.entry(*k).or_default() += v;
            }
            row.delivered += o.delivered;
            row.returned += o.returned;
            row.unnoticed += o.unnoticed;
            row.reconnects += o.reconnects;
            row.resumes += o.resumes;
            row.closed += o.closed;
            row.lost += o.lost;
            row.leaked += o.leaked_sockets;
            row.frames += o.stats.frames;
            if let Some(b) = base {
                row.baseline.add(&b);
            }
            if !violations.is_empty() {
                row.failures += 1;
                let what =
                    violations.iter().take(3).map(|v| v.to_string()).collect::<Vec<_>>().join("; ");
                summary.failures.push(Failure {
                    scenario: scenario.to_string(),
                    seed,
                    what,
                    scale: s,
                });
            }
        }
        Err(panic) => {
            row.failures += 1;
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            summary.failures.push(Failure {
                scenario: scenario.to_string(),
                seed,
                what: format!("[panic] {msg}"),
                scale: s,
            });
        }
    }
}

impl Summary {
    /// Adds another summary's rows and failures (sweeps split across workers).
    pub fn merge(&mut self, other: Summary) {
        for (name, r) in other.rows {
            let row = self.rows.entry(name).or_default();
            row.runs += r.runs;
            for (k, v) in r.faults {
                *row.faults.entry(k).or_default() += v;
            }
            row.delivered += r.delivered;
            row.returned += r.returned;
            row.unnoticed += r.unnoticed;
            row.reconnects += r.reconnects;
            row.resumes += r.resumes;
            row.closed += r.closed;
            row.lost += r.lost;
            row.leaked += r.leaked;
            row.frames += r.frames;
            row.baseline.add(&r.baseline);
            row.failures += r.failures;
        }
        self.failures.extend(other.failures);
    }

    /// The summary table, the fault table and the baseline table, as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<16} {:>6} {:>10} {:>9} {:>7} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>6}",
            "scenario",
            "runs",
            "delivered",
            "returned",
            "unnotic",
            "reconn",
            "resumes",
            "closed",
            "lost",
            "leaks",
            "faults",
            "FAIL"
        );
        let mut total = Row::default();
        for (name, r) in &self.rows {
            let faults: u64 = r.faults.values().sum();
            let _ = writeln!(
                s,
                "{:<16} {:>6} {:>10} {:>9} {:>7} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>6}",
                name,
                r.runs,
                r.delivered,
                r.returned,
                r.unnoticed,
                r.reconnects,
                r.resumes,
                r.closed,
                r.lost,
                r.leaked,
                faults,
                r.failures
            );
            total.runs += r.runs;
            total.delivered += r.delivered;
            total.returned += r.returned;
            total.unnoticed += r.unnoticed;
            total.reconnects += r.reconnects;
            total.resumes += r.resumes;
            total.closed += r.closed;
            total.lost += r.lost;
            total.leaked += r.leaked;
            total.failures += r.failures;
            for (k, v) in &r.faults {
                *total.faults.entry(*k).or_default() += v;
            }
        }
        let faults: u64 = total.faults.values().sum();
        let _ = writeln!(
            s,
            "{:<16} {:>6} {:>10} {:>9} {:>7} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>6}",
            "TOTAL",
            total.runs,
            total.delivered,
            total.returned,
            total.unnoticed,
            total.reconnects,
            total.resumes,
            total.closed,
            total.lost,
            total.leaked,
            faults,
            total.failures
        );
        let _ = writeln!(s, "\nfaults injected per class:");
        let _ = write!(s, "{:<16}", "scenario");
        for c in FaultClass::ALL {
            let _ = write!(s, " {:>7}", c.short());
        }
        let _ = writeln!(s);
        for (name, r) in self.rows.iter().chain([(&"TOTAL".to_string(), &total)]) {
            let _ = write!(s, "{name:<16}");
            for c in FaultClass::ALL {
                let _ = write!(s, " {:>7}", r.faults.get(&c).copied().unwrap_or(0));
            }
            let _ = writeln!(s);
        }
        if self.rows.values().any(|r| r.baseline.written > 0) {
            let _ = writeln!(
                s,
                "\nbaseline (naive write-and-forget) vs tether, same networks and faults:"
            );
            let _ = writeln!(
                s,
                "{:<16} {:>9} {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11} {:>9}",
                "scenario",
                "written",
                "naive lost",
                "naive dup",
                "naive leaks",
                "tether lost",
                "tether dup",
                "tether leak",
                "returned"
            );
            for (name, r) in &self.rows {
                if r.baseline.written == 0 {
                    continue;
                }
                let b = &r.baseline;
                let _ = writeln!(
                    s,
                    "{:<16} {:>9} {:>11} {:>11} {:>11} | {:>11} {:>11} {:>11} {:>9}",
                    name,
                    b.written,
                    b.lost,
                    b.duplicated,
                    b.leaked_sockets,
                    r.unnoticed,
                    0,
                    r.leaked,
                    r.returned
                );
            }
            let _ = writeln!(
                s,
                "(\"lost\" = believed delivered, never arrived, nobody told; tether's \"returned\" are handed back by Lost, i.e. noticed)"
            );
        }
        if !self.failures.is_empty() {
            let _ = writeln!(s, "\n{} FAILING RUNS:", self.failures.len());
            for f in &self.failures {
                let _ = writeln!(s, "  {}  # {}", f.replay(), f.what);
            }
        }
        s
    }
}
