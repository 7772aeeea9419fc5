//! tether-sim: a deterministic simulated network for tether sessions (under construction).
