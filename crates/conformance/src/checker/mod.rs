//! The in-container checker.
//!
//! `berth-checker` runs as the container's process. It reads the spec it was
//! started with ([`crate::facts::CONFIG_FILE`]) and the driver's
//! [`Facts`](crate::facts::Facts), verifies from inside that every setting took
//! effect, and prints one TAP line per check. It only observes: apart from a few
//! probes (creating and removing a file to test a read-only root, calling a
//! syscall a seccomp profile blocks) it changes nothing.
//!
//! Every check is derived from the spec, so the same binary serves every test
//! case: a case only has to write a different `config.json`.

mod cgroups;
mod devices;
mod filesystem;
mod namespaces;
mod process;
mod security;

use std::collections::BTreeMap;

use oci_spec::runtime::Spec;

use crate::facts::{Facts, CONFIG_FILE, FACTS_FILE};
use crate::tap::TapLine;

/// Upper bound for any file the checker reads (spec, facts, proc files).
const MAX_READ: u64 = 4 << 20;

/// Reads a whole file, refusing files above [`MAX_READ`] bytes.
pub(crate) fn read_bounded(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_READ).read_to_string(&mut text)?;
    Ok(text)
}

/// Runs every check that applies to the spec at [`CONFIG_FILE`] and returns
/// the TAP lines.
pub fn run() -> Vec<TapLine> {
    // List open descriptors before this process opens anything else.
    let mut out = Vec::new();
    let fds = process::open_fds();
    let spec = match read_bounded(CONFIG_FILE)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<Spec>(&t).map_err(|e| e.to_string()))
    {
        Ok(spec) => spec,
        Err(e) => {
            out.push(TapLine::fail(format!("read spec {CONFIG_FILE}"), e));
            return out;
        }
    };
    let facts = match read_bounded(FACTS_FILE) {
        Ok(text) => match serde_json::from_str::<Facts>(&text) {
            Ok(facts) => facts,
            Err(e) => {
                out.push(TapLine::fail(format!("parse {FACTS_FILE}"), e.to_string()));
                Facts::default()
            }
        },
        Err(_) => Facts::default(),
    };
    process::check_fds(&fds, &facts, &mut out);
    check_all(&spec, &facts, &mut out);
    out
}

/// Runs every check against an already parsed spec.
fn check_all(spec: &Spec, facts: &Facts, out: &mut Vec<TapLine>) {
    let status = ProcStatus::read();
    process::check(spec, &status, out);
    security::check(spec, facts, &status, out);
    namespaces::check(spec, facts, out);
    filesystem::check(spec, facts, out);
    devices::check(spec, out);
    cgroups::check(spec, out);
}

/// The key/value lines of `/proc/self/status`.
#[derive(Debug, Default)]
pub(crate) struct ProcStatus(BTreeMap<String, String>);

impl ProcStatus {
    fn read() -> Self {
        Self::parse(&read_bounded("/proc/self/status").unwrap_or_default())
    }

    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    /// The value of `key`, e.g. `Uid`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The whitespace-separated decimal numbers of `key`.
    pub(crate) fn numbers(&self, key: &str) -> Option<Vec<u64>> {
        self.get(key)?
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect()
    }

    /// The hexadecimal value of `key` (capability masks).
    pub(crate) fn hex(&self, key: &str) -> Option<u64> {
        u64::from_str_radix(self.get(key)?, 16).ok()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let status = ProcStatus::parse("Uid:\t0\t0\t0\t0\nCapEff:\t00000000a80425fb\nGroups:\t\n");
        assert_eq!(status.numbers("Uid"), Some(vec![0, 0, 0, 0]));
        assert_eq!(status.hex("CapEff"), Some(0xa80425fb));
        assert_eq!(status.numbers("Groups"), Some(vec![]));
        assert_eq!(status.get("Nope"), None);
    }
}
