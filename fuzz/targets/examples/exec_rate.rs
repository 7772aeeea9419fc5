//! Executions per second of a target's body over its checked-in corpus, without libFuzzer's
//! instrumentation: the figure to profile and to compare before and after a change to a target
//! (libFuzzer's own rate is lower by its coverage instrumentation and mutation work).
//!
//! `cargo run --release -p tether-fuzz-targets --example exec_rate -- <target> [seconds]`
//!
//! `EXEC_CORPUS=<dir>` reads the inputs from `dir` instead (e.g. a libFuzzer working corpus, whose
//! inputs are larger than the checked-in ones); `EXEC_HIST=1` adds the spread of time per input.

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, secs) = match &args[..] {
        [_, t] => (t.clone(), 5.0),
        [_, t, s] => (t.clone(), s.parse().expect("seconds")),
        _ => {
            eprintln!("usage: exec_rate <frame_decode|session|endpoint|pair> [seconds]");
            std::process::exit(2);
        }
    };
    let (_, run) = tether_fuzz_targets::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("unknown target {target}"));
    let dir = std::env::var("EXEC_CORPUS")
        .unwrap_or_else(|_| format!("{}/../corpus/{target}", env!("CARGO_MANIFEST_DIR")));
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the corpus directory")
        .map(|e| e.expect("an entry").path())
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("a readable input")))
        .collect();
    inputs.sort();
    let start = Instant::now();
    let mut execs = 0u64;
    let mut slowest = (Duration::ZERO, String::new());
    let mut per: Vec<Duration> = vec![Duration::ZERO; inputs.len()];
    while start.elapsed().as_secs_f64() < secs {
        for (k, (name, data)) in inputs.iter().enumerate() {
            let t = Instant::now();
            run(data);
            let took = t.elapsed();
            per[k] += took;
            if took > slowest.0 {
                slowest = (took, name.clone());
            }
            execs += 1;
        }
    }
    let el = start.elapsed().as_secs_f64();
    if std::env::var("EXEC_HIST").is_ok() {
        let total: Duration = per.iter().sum();
        let mut sorted = per;
        sorted.sort_by(|a, b| b.cmp(a));
        let rounds = execs as f64 / inputs.len() as f64;
        let at =
            |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6 / rounds;
        println!(
            "per input µs: fastest {:.0}, median {:.0}, slowest {:.0}",
            at(1.0),
            at(0.5),
            at(0.0)
        );
        for frac in [0.01, 0.05, 0.1, 0.25, 0.5] {
            let n = ((inputs.len() as f64) * frac).ceil() as usize;
            let s: Duration = sorted[..n].iter().sum();
            println!(
                "slowest {:.0}% of inputs: {:.1}% of the time",
                frac * 100.0,
                100.0 * s.as_secs_f64() / total.as_secs_f64()
            );
        }
    }
    println!(
        "{target}: {execs} executions of {} corpus inputs in {el:.1} s: {:.0} exec/s; slowest {:?} ({})",
        inputs.len(),
        execs as f64 / el,
        slowest.0,
        slowest.1
    );
}
