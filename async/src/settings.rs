//! What a session or server is started with: the core's [`Config`] and, on request, the seed of
//! its randomness.

use tether_core::Config;

/// The configuration of a client session or a server, plus an optional seed.
///
/// Every entry point takes `impl Into<Settings>`, so a plain [`Config`] works where no seed is
/// wanted. Without a seed, the OS random generator seeds the client's backoff jitter and the
/// server's endpoint key (session ids and resume secrets): the right choice outside tests. With
/// a seed, those are derived from it, so a run inside a deterministic simulation (turmoil, paused
/// tokio time) replays exactly: same seed, same network, same events. Never fix the seed of a
/// server that real clients reach: its resume secrets would be guessable.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// The session's or server's configuration.
    pub config: Config,
    /// The seed of its randomness; `None` draws one from the OS.
    pub seed: Option<u64>,
}

impl Settings {
    /// `config` with its randomness drawn from `seed` instead of the OS: for tests and
    /// simulations only (see above).
    ///
    /// ```
    /// # use tether_async::{Config, Settings};
    /// // e.g. `tether_tokio::connect_with(connector, Settings::seeded(config, 2))` in turmoil
    /// let settings = Settings::seeded(Config::default(), 2);
    /// assert_eq!(settings.seed, Some(2));
    /// // Where no seed is wanted, pass the `Config` itself: it converts.
    /// let settings = Settings::from(Config::default());
    /// assert_eq!(settings.seed, None);
    /// ```
    pub fn seeded(config: Config, seed: u64) -> Settings {
        Settings { config, seed: Some(seed) }
    }

    /// The server's endpoint key: from the OS, or expanded from the seed.
    pub(crate) fn endpoint_key(&self) -> Result<[u8; 32], getrandom::Error> {
        let mut key = [0u8; 32];
        match self.seed {
            Some(seed) => {
                let mut state = seed;
                for chunk in key.chunks_mut(8) {
                    chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
                }
            }
            None => getrandom::fill(&mut key)?,
        }
        Ok(key)
    }
}

impl From<Config> for Settings {
    fn from(config: Config) -> Settings {
        Settings { config, seed: None }
    }
}

/// SplitMix64: expands one seed into well-mixed words.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_key_and_different_seeds_different_keys() {
        let key = |seed| Settings::seeded(Config::default(), seed).endpoint_key().unwrap();
        assert_eq!(key(7), key(7));
        assert_ne!(key(7), key(8));
        assert!(key(0).iter().any(|&b| b != 0));
        let os = Settings::from(Config::default());
        assert_ne!(os.endpoint_key().unwrap(), os.endpoint_key().unwrap());
    }
}
