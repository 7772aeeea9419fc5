//! Replays every seed-corpus file (`fuzz/corpus/<target>/`) and every past crash
//! (`fuzz/regressions/<target>/`) through the target bodies, on stable, as ordinary tests.

use std::panic;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tether_fuzz_targets::TARGETS;

/// Open bugs in tether-core, each written up in `fuzz/FOUND.md`: its id and the regression input
/// (relative to `fuzz/`) that reproduces it. That input is replayed strictly and must still fail;
/// while the corpus is replayed, only the one check that detects the bug is stepped over (see
/// `tether_fuzz_targets::tolerated`). Remove the entry when the core fix lands, so the input
/// guards against the bug coming back. Nothing else may be skipped.
const KNOWN_CORE_BUGS: &[(&str, &str)] = &[
    // Empty: F1 (`Decoder::push` kept bytes after a failure) is fixed in core; its input stays in
    // regressions/ and replays as an ordinary regression test.
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

fn replay(target: &str) {
    let (_, run) = TARGETS.iter().find(|(n, _)| *n == target).expect("known target");
    let base = fuzz_dir();
    let corpus = files(&base.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no seed corpus for {target}");
    let regressions = files(&base.join("regressions").join(target));
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut skipped = 0;
    let known: Vec<&str> = KNOWN_CORE_BUGS.iter().map(|(id, _)| *id).collect();
    for (path, in_corpus) in
        corpus.iter().map(|p| (p, true)).chain(regressions.iter().map(|p| (p, false)))
    {
        let rel = path.strip_prefix(&base).unwrap_or(path).to_string_lossy().replace('\\', "/");
        let data = std::fs::read(path).expect("readable input");
        let is_known = KNOWN_CORE_BUGS.iter().any(|(_, file)| *file == rel);
        tether_fuzz_targets::tolerate_on_this_thread(if in_corpus { &known } else { &[] });
        let outcome = panic::catch_unwind(|| run(&data));
        tether_fuzz_targets::tolerate_on_this_thread(&[]);
        match (outcome.is_ok(), is_known) {
            (true, false) => {}
            (false, false) => failures.push(rel),
            (false, true) => skipped += 1,
            (true, true) => eprintln!("{rel} passes now: remove it from KNOWN_CORE_BUGS"),
        }
    }
    eprintln!(
        "{target}: {} corpus + {} regression inputs in {:?} ({skipped} known core bugs skipped)",
        corpus.len(),
        regressions.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{target}: inputs that fail: {failures:#?}");
}

#[test]
fn frame_decode() {
    replay("frame_decode");
}

#[test]
fn session() {
    replay("session");
}

#[test]
fn endpoint() {
    replay("endpoint");
}

#[test]
fn pair() {
    replay("pair");
}

#[test]
fn known_core_bugs_are_real_files() {
    for (_, rel) in KNOWN_CORE_BUGS {
        assert!(fuzz_dir().join(rel).is_file(), "{rel} listed in KNOWN_CORE_BUGS does not exist");
        assert!(rel.starts_with("regressions/"), "{rel}: only regression inputs may be skipped");
    }
}
