//! `tether-sim` command line: `sweep`, `replay`, `bench`, `list`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::ops::Range;
use std::process::ExitCode;
use std::time::{Duration, Instant as WallClock};

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use tether_sim::scenario::{is_incident, plan, run_naive, run_tether, Scale, SCENARIOS};
use tether_sim::sweep::{run_one, Summary};

/// Deterministic simulated network for tether: fault injection, invariant checking, seed replay.
#[derive(Debug, Parser)]
#[command(name = "tether-sim", version, after_help = scenarios_help())]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run many seeds of every scenario (or one), check the contract, print the summary tables.
    #[command(
        after_help = "Exits 1 if any run violates the contract, with a replay command per failing run."
    )]
    Sweep(SweepArgs),
    /// Run one seed of one scenario and print what happened, optionally with the full trace.
    Replay(ReplayArgs),
    /// Measure simulation speed (seeds/s, frames/s) per scenario.
    Bench(BenchArgs),
    /// List the scenarios (incidents are marked: they run with a naive baseline).
    List,
}

/// The seeds to run: `--seeds A..B`, or `--seed N` for just one.
#[derive(Debug, Args)]
struct SeedRange {
    /// Seeds to run, half-open: A..B runs A, A+1, ..., B-1.
    #[arg(long, value_name = "A..B", value_parser = parse_seeds, default_value = "0..100")]
    seeds: Range<u64>,
    /// Run the single seed N (same as --seeds N..N+1).
    #[arg(long, value_name = "N", conflicts_with = "seeds")]
    seed: Option<u64>,
}

impl SeedRange {
    /// The range asked for.
    fn range(&self) -> Range<u64> {
        match self.seed {
            Some(n) => n..n.saturating_add(1),
            None => self.seeds.clone(),
        }
    }
}

/// The runs `sweep` and `bench` make: which seeds of which scenarios, at which scale.
#[derive(Debug, Args)]
struct Runs {
    #[command(flatten)]
    seeds: SeedRange,
    /// Only this scenario (default: all; see `list`).
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    scenario: Option<&'static str>,
    /// Message counts: ci (small, fast) or full.
    #[arg(long, value_enum, default_value_t = ScaleArg::Full)]
    scale: ScaleArg,
}

/// `sweep`'s flags.
#[derive(Debug, Args)]
struct SweepArgs {
    #[command(flatten)]
    runs: Runs,
    /// Skip the naive write-and-forget baseline of the incident scenarios.
    #[arg(long)]
    no_baseline: bool,
}

/// `replay`'s flags.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The seed to replay.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// The scenario to replay (see `list`).
    #[arg(long, value_name = "NAME", value_parser = parse_scenario)]
    scenario: &'static str,
    /// Print the run's full event trace.
    #[arg(long)]
    trace: bool,
    /// Message counts: ci (small, fast) or full.
    #[arg(long, value_enum, default_value_t = ScaleArg::Full)]
    scale: ScaleArg,
}

/// `bench`'s flags.
#[derive(Debug, Args)]
struct BenchArgs {
    #[command(flatten)]
    runs: Runs,
}

/// `--scale`: the command-line face of [`Scale`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScaleArg {
    // Small message counts: thousands of seeds in seconds.
    Ci,
    // Full message counts.
    Full,
}

impl From<ScaleArg> for Scale {
    fn from(s: ScaleArg) -> Scale {
        match s {
            ScaleArg::Ci => Scale::Ci,
            ScaleArg::Full => Scale::Full,
        }
    }
}

/// Parses `A..B` (A <= B).
fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let (lo, hi) = s.split_once("..").ok_or("expected A..B, e.g. 0..100")?;
    let lo: u64 = lo.parse().map_err(|e| format!("bad start {lo:?}: {e}"))?;
    let hi: u64 = hi.parse().map_err(|e| format!("bad end {hi:?}: {e}"))?;
    if lo > hi {
        return Err(format!("start {lo} is after end {hi}"));
    }
    Ok(lo..hi)
}

/// Parses a scenario name, listing the valid ones if it is not one.
fn parse_scenario(s: &str) -> Result<&'static str, String> {
    SCENARIOS
        .iter()
        .copied()
        .find(|x| *x == s)
        .ok_or_else(|| format!("unknown scenario; valid: {}", SCENARIOS.join(", ")))
}

/// The scenario list shown at the end of `--help`.
fn scenarios_help() -> String {
    format!("Scenarios: {}", SCENARIOS.join(", "))
}

/// Every scenario, or just `only`.
fn scenarios(only: Option<&str>) -> Vec<&'static str> {
    SCENARIOS.iter().copied().filter(|s| only.is_none_or(|x| x == *s)).collect()
}

fn main() -> ExitCode {
    match Cli::parse().cmd {
        Cmd::Sweep(a) => sweep(&a),
        Cmd::Replay(a) => replay(&a),
        Cmd::Bench(a) => bench(&a),
        Cmd::List => list(),
    }
}

/// `list`: one scenario a line.
fn list() -> ExitCode {
    for s in SCENARIOS {
        println!("{s}{}", if is_incident(s) { "  (incident, with baseline)" } else { "" });
    }
    ExitCode::SUCCESS
}

/// `sweep`: every seed of every chosen scenario; the tables on stdout, progress on stderr.
fn sweep(a: &SweepArgs) -> ExitCode {
    // A failing run's panic is reported in the table; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let (scen, seeds) = (scenarios(a.runs.scenario), a.runs.seeds.range());
    let total = (seeds.end - seeds.start) * scen.len() as u64;
    let mut summary = Summary::default();
    let start = WallClock::now();
    let mut progress = Progress::new(total);
    for seed in seeds.clone() {
        for s in &scen {
            run_one(&mut summary, s, seed, a.runs.scale.into(), !a.no_baseline);
            progress.update(summary.failures.len());
        }
    }
    progress.finish(summary.failures.len());
    println!("{}", summary.table());
    println!(
        "seeds {}..{}, {} runs in {:.1}s",
        seeds.start,
        seeds.end,
        total,
        start.elapsed().as_secs_f64()
    );
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// How often the plain (non-terminal) progress prints a line.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A sweep's progress on stderr: an indicatif bar (runs, failing, rate, ETA) on a terminal; a
/// plain line every [`PLAIN_EVERY`] and one at the end otherwise (CI logs get no escape codes).
struct Progress {
    /// Counts runs and estimates rate and ETA; hidden when stderr is not a terminal.
    bar: ProgressBar,
    /// When the last plain line was printed (`None` on a terminal: the bar draws itself).
    plain: Option<WallClock>,
}

impl Progress {
    /// A progress display for `total` runs.
    fn new(total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(bar_style());
            bar.set_message("0 failing");
            Progress { bar, plain: None }
        } else {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            Progress { bar, plain: Some(WallClock::now()) }
        }
    }

    /// One more run done; `failing` runs have failed so far.
    fn update(&mut self, failing: usize) {
        self.bar.inc(1);
        match &mut self.plain {
            None => self.bar.set_message(format!("{failing} failing")),
            Some(last) if last.elapsed() >= PLAIN_EVERY => {
                *last = WallClock::now();
                eprintln!("{}", self.line(failing));
            }
            Some(_) => {}
        }
    }

    /// The sweep is over: leave the bar's last state on screen, or print a last plain line.
    fn finish(&self, failing: usize) {
        if self.plain.is_some() {
            eprintln!("{}", self.line(failing));
        } else {
            self.bar.finish_with_message(format!("{failing} failing"));
        }
    }

    /// A plain progress line.
    fn line(&self, failing: usize) -> String {
        let (done, total) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let el = self.bar.elapsed().as_secs_f64();
        let mut l = format!(
            "{done}/{total} runs, {failing} failing, {:.0} runs/s, {el:.1}s elapsed",
            done as f64 / el.max(1e-9)
        );
        if done < total {
            let _ = write!(l, ", ETA {}s", self.bar.eta().as_secs());
        }
        l
    }
}

/// The terminal bar: `[00:00:12] [#####-----] 450/900 runs  37 runs/s  ETA 12s  0 failing`.
fn bar_style() -> ProgressStyle {
    let rate = |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:.0} runs/s", s.per_sec());
    };
    ProgressStyle::with_template(
        "[{elapsed_precise}] [{bar:30}] {pos}/{len} runs  {rate}  ETA {eta}  {msg}",
    )
    .expect("valid template")
    .with_key("rate", rate)
    .progress_chars("#>-")
}

/// `replay`: one seed of one scenario, its plan, outcome and (with `--trace`) every event.
fn replay(a: &ReplayArgs) -> ExitCode {
    let (name, seed) = (a.scenario, a.seed);
    let p = plan(name, seed, a.scale.into()).expect("checked");
    println!(
        "scenario {name} seed {seed}: {} clients, traffic {:?}, close by {:?}, expect {:?}",
        p.clients.len(),
        p.traffic,
        p.close_by,
        p.expect
    );
    for (t, f) in &p.faults {
        println!("  planned fault at {}: {f:?}", tether_sim::trace::fmt_time(*t));
    }
    let run = run_tether(&p, a.trace);
    if a.trace {
        for l in &run.sim.trace.lines {
            println!("{l}");
        }
    }
    let o = &run.outcome;
    println!(
        "end {}  sent {} delivered {} returned {} unnoticed {} resumes {} closed {} lost {} frames {} trace-hash {:016x}",
        tether_sim::trace::fmt_time(o.end),
        o.sent,
        o.delivered,
        o.returned,
        o.unnoticed,
        o.resumes,
        o.closed,
        o.lost,
        o.stats.frames,
        o.trace_hash
    );
    if is_incident(name) {
        let b = run_naive(&p);
        println!(
            "naive baseline: written {} lost {} duplicated {} leaked sockets {}",
            b.written, b.lost, b.duplicated, b.leaked_sockets
        );
    }
    if run.violations.is_empty() {
        println!("contract holds");
        ExitCode::SUCCESS
    } else {
        for v in &run.violations {
            println!("VIOLATION {v}");
        }
        ExitCode::FAILURE
    }
}

/// `bench`: simulation speed per scenario.
fn bench(a: &BenchArgs) -> ExitCode {
    for s in scenarios(a.runs.scenario) {
        let start = WallClock::now();
        let mut frames = 0u64;
        let mut runs = 0u64;
        let mut virt = 0f64;
        for seed in a.runs.seeds.range() {
            let p = plan(s, seed, a.runs.scale.into()).expect("known");
            let r = run_tether(&p, false);
            frames += r.outcome.stats.frames;
            virt += (r.outcome.end.as_nanos() as f64) / 1e9;
            runs += 1;
        }
        let el = start.elapsed().as_secs_f64();
        println!(
            "{s:<16} {runs:>6} seeds  {:>9.0} seeds/s  {:>10.0} frames/s  {:>8.0} frames/seed  {:>7.1} virtual s/seed",
            runs as f64 / el,
            frames as f64 / el,
            frames as f64 / runs as f64,
            virt / runs as f64
        );
    }
    ExitCode::SUCCESS
}
