//! tether's benchmarks live in `benches/`; see `BENCHMARKS.md`.
