//! The `tether-sim` binary's command line: help, `list`, errors for bad input (exit code 2, the
//! bad flag named), and a tiny sweep whose progress on a non-terminal stderr is plain text.

use std::process::{Command, Output};

use tether_sim::scenario::SCENARIOS;

/// Runs the built `tether-sim` with `args` (stdout and stderr are pipes, so not terminals).
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether-sim")).args(args).output().expect("run tether-sim")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_subcommands() {
    let o = run(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for cmd in ["sweep", "replay", "bench", "list"] {
        assert!(out.contains(cmd), "--help does not mention {cmd}:\n{out}");
    }
}

#[test]
fn sweep_help_documents_every_flag() {
    let o = run(&["sweep", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for flag in ["--seeds", "--seed ", "--scenario", "--scale", "--no-baseline"] {
        assert!(out.contains(flag), "sweep --help does not mention {flag}:\n{out}");
    }
}

#[test]
fn list_prints_every_scenario() {
    let o = run(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for s in SCENARIOS {
        assert!(out.lines().any(|l| l.split_whitespace().next() == Some(s)), "{s} missing:\n{out}");
    }
}

#[test]
fn a_bad_flag_exits_2_naming_it() {
    let o = run(&["sweep", "--bogus-flag"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--bogus-flag"), "{}", stderr(&o));
}

#[test]
fn a_bad_seed_range_exits_2_naming_the_flag() {
    let o = run(&["sweep", "--seeds", "7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--seeds"), "{}", stderr(&o));
}

#[test]
fn an_unknown_scenario_exits_2_listing_the_valid_ones() {
    let o = run(&["replay", "--seed", "1", "--scenario", "no-such-scenario"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("--scenario") && err.contains("no-such-scenario"), "{err}");
    for s in SCENARIOS {
        assert!(err.contains(s), "valid scenario {s} not listed:\n{err}");
    }
}

#[test]
fn a_tiny_sweep_prints_the_table_and_plain_progress() {
    let o = run(&["sweep", "--seeds", "0..2", "--scenario", SCENARIOS[0], "--scale", "ci"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.lines().next().is_some_and(|l| l.starts_with("scenario")), "{out}");
    assert!(out.lines().any(|l| l.starts_with(SCENARIOS[0])), "{out}");
    assert!(out.contains("seeds 0..2, 2 runs in"), "{out}");
    let err = stderr(&o);
    assert!(err.contains("2/2 runs, 0 failing"), "no final progress line:\n{err}");
    assert!(!err.contains('\x1b') && !err.contains('\r'), "terminal codes on a pipe: {err:?}");
}
