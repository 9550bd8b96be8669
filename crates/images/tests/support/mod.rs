//! Test doubles and real peers for the registry client tests.
//!
//! - [`registry::Registry`]: Debian's `docker-registry` (distribution 2.8) on loopback;
//! - [`token::TokenServer`]: the token server of the bearer flow;
//! - [`fake::FakeRegistry`]: a registry that lies, loops and breaks connections;
//! - [`certs`]: a test CA and the token signing key, made at test time;
//! - [`http`]: the tiny HTTP server under the fakes.

pub mod certs;
pub mod fake;
pub mod http;
pub mod image_registry;
pub mod registry;
pub mod token;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_images::progress::{Progress, ProgressSink};
use berth_images::registry::RegistryConfig;

/// Client settings for tests: short pauses, bounded waits.
pub fn test_config() -> RegistryConfig {
    RegistryConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        read_timeout: Duration::from_secs(30),
        retry_backoff: Duration::from_millis(5),
        retries: 3,
        ..RegistryConfig::default()
    }
}

/// Records progress events.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Progress>>,
}

impl ProgressSink for Recorder {
    fn report(&self, event: Progress) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn events(&self) -> Vec<Progress> {
        self.events.lock().unwrap().clone()
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
