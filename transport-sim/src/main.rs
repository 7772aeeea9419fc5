//! `tether-sim` command line: `sweep`, `replay`, `bench`.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant as WallClock;

use tether_sim::scenario::{is_incident, plan, run_naive, run_tether, Scale, SCENARIOS};
use tether_sim::sweep::{run_one, Summary};

const USAGE: &str = "usage:
  tether-sim sweep  --seeds A..B [--scenario NAME] [--scale ci|full] [--no-baseline]
  tether-sim replay --seed N --scenario NAME [--trace] [--scale ci|full]
  tether-sim bench  [--seeds A..B] [--scenario NAME] [--scale ci|full]
  tether-sim list
scenarios: ";

struct Args {
    cmd: String,
    seeds: (u64, u64),
    scenario: Option<String>,
    trace: bool,
    scale: Scale,
    baseline: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or("missing command")?;
    let mut a = Args {
        cmd,
        seeds: (0, 100),
        scenario: None,
        trace: false,
        scale: Scale::Full,
        baseline: true,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => {
                let v = value()?;
                let (lo, hi) = v.split_once("..").ok_or("--seeds takes A..B")?;
                a.seeds = (
                    lo.parse().map_err(|_| "bad seed range")?,
                    hi.parse().map_err(|_| "bad seed range")?,
                );
            }
            "--seed" => {
                let n: u64 = value()?.parse().map_err(|_| "bad seed")?;
                a.seeds = (n, n + 1);
            }
            "--scenario" => a.scenario = Some(value()?),
            "--scale" => {
                a.scale = match value()?.as_str() {
                    "ci" => Scale::Ci,
                    "full" => Scale::Full,
                    _ => return Err("--scale is ci or full".into()),
                }
            }
            "--trace" => a.trace = true,
            "--no-baseline" => a.baseline = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(s) = &a.scenario {
        if !SCENARIOS.contains(&s.as_str()) {
            return Err(format!("unknown scenario {s}"));
        }
    }
    Ok(a)
}

fn scenarios(a: &Args) -> Vec<&'static str> {
    SCENARIOS.iter().copied().filter(|s| a.scenario.as_deref().is_none_or(|x| x == *s)).collect()
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}{}", SCENARIOS.join(", "));
            return ExitCode::from(2);
        }
    };
    match a.cmd.as_str() {
        "sweep" => sweep(&a),
        "replay" => replay(&a),
        "bench" => bench(&a),
        "list" => {
            for s in SCENARIOS {
                println!("{s}{}", if is_incident(s) { "  (incident, with baseline)" } else { "" });
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}{}", SCENARIOS.join(", "));
            ExitCode::from(2)
        }
    }
}

fn sweep(a: &Args) -> ExitCode {
    // A failing run's panic is reported in the table; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let scen = scenarios(a);
    let total = (a.seeds.1 - a.seeds.0) * scen.len() as u64;
    let mut summary = Summary::default();
    let start = WallClock::now();
    let mut done = 0u64;
    for seed in a.seeds.0..a.seeds.1 {
        for s in &scen {
            run_one(&mut summary, s, seed, a.scale, a.baseline);
            done += 1;
        }
        if seed % 16 == 0 || seed + 1 == a.seeds.1 {
            let el = start.elapsed().as_secs_f64();
            eprint!(
                "\r{done}/{total} runs, {} failing, {:.0} runs/s, {:.0}s elapsed   ",
                summary.failures.len(),
                done as f64 / el.max(1e-9),
                el
            );
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!();
    println!("{}", summary.table());
    println!(
        "seeds {}..{}, {} runs in {:.1}s",
        a.seeds.0,
        a.seeds.1,
        done,
        start.elapsed().as_secs_f64()
    );
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn replay(a: &Args) -> ExitCode {
    let Some(name) = a.scenario.as_deref() else {
        eprintln!("replay needs --scenario");
        return ExitCode::from(2);
    };
    let seed = a.seeds.0;
    let p = plan(name, seed, a.scale).expect("checked");
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

fn bench(a: &Args) -> ExitCode {
    let scen = scenarios(a);
    for s in scen {
        let start = WallClock::now();
        let mut frames = 0u64;
        let mut runs = 0u64;
        let mut virt = 0f64;
        for seed in a.seeds.0..a.seeds.1 {
            let p = plan(s, seed, a.scale).expect("known");
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
