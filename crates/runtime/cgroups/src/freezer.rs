//! Freezing and thawing: the v1 `freezer` controller (`freezer.state`) or the v2 core
//! freezer (`cgroup.freeze`, with the outcome in `cgroup.events`).
//!
//! Both are asynchronous: a write asks for the state, and the kernel reports when every
//! task got there. Freezing waits for that (re-asking on v1, where a task in an
//! uninterruptible sleep can leave the cgroup in `FREEZING`), and undoes the request
//! when it does not complete in time, so a failed freeze never leaves the container
//! half-frozen.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::fs;

/// How long to wait for a freezer transition.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The freezer state of a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FreezerState {
    /// Running normally.
    Thawed,
    /// Asked to freeze; some tasks are not frozen yet.
    Freezing,
    /// Every task is frozen.
    Frozen,
}

impl std::fmt::Display for FreezerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FreezerState::Thawed => "thawed",
            FreezerState::Freezing => "freezing",
            FreezerState::Frozen => "frozen",
        })
    }
}

fn timeout(dir: &Path, state: &'static str) -> Error {
    Error::FreezeTimeout {
        path: dir.to_owned(),
        state,
        millis: u64::try_from(TIMEOUT.as_millis()).unwrap_or(u64::MAX),
    }
}

/// v1: the state in `freezer.state`.
pub(crate) fn v1_state(dir: &Path) -> Result<FreezerState> {
    let text = fs::read(dir, "freezer.state")?;
    match text.trim() {
        "THAWED" => Ok(FreezerState::Thawed),
        "FREEZING" => Ok(FreezerState::Freezing),
        "FROZEN" => Ok(FreezerState::Frozen),
        _ => Err(fs::parse_error(&dir.join("freezer.state"), &text)),
    }
}

/// v1: freeze and wait for `FROZEN`.
pub(crate) fn v1_freeze(dir: &Path) -> Result<()> {
    let done = fs::poll(TIMEOUT, || {
        fs::write(dir, "freezer.state", "FROZEN")?;
        Ok((v1_state(dir)? == FreezerState::Frozen).then_some(()))
    })?;
    if done.is_none() {
        // Best effort: the timeout is the error to report.
        let _ = v1_thaw(dir);
        return Err(timeout(dir, "FROZEN"));
    }
    Ok(())
}

/// v1: thaw and wait for `THAWED`.
pub(crate) fn v1_thaw(dir: &Path) -> Result<()> {
    fs::write(dir, "freezer.state", "THAWED")?;
    fs::poll(TIMEOUT, || {
        Ok((v1_state(dir)? == FreezerState::Thawed).then_some(()))
    })?
    .ok_or_else(|| timeout(dir, "THAWED"))
}

fn v2_frozen(dir: &Path) -> Result<bool> {
    let events = fs::read(dir, "cgroup.events")?;
    Ok(fs::keyed_value(&events, "frozen") == Some(1))
}

/// v2: `cgroup.freeze` as asked, `cgroup.events` as reached.
pub(crate) fn v2_state(dir: &Path) -> Result<FreezerState> {
    let asked = fs::read(dir, "cgroup.freeze")?;
    match (asked.trim() == "1", v2_frozen(dir)?) {
        (false, _) => Ok(FreezerState::Thawed),
        (true, true) => Ok(FreezerState::Frozen),
        (true, false) => Ok(FreezerState::Freezing),
    }
}

/// v2: freeze and wait for `frozen 1`.
pub(crate) fn v2_freeze(dir: &Path) -> Result<()> {
    fs::write(dir, "cgroup.freeze", "1")?;
    if fs::poll(TIMEOUT, || Ok(v2_frozen(dir)?.then_some(())))?.is_none() {
        // Best effort: the timeout is the error to report.
        let _ = fs::write(dir, "cgroup.freeze", "0");
        return Err(timeout(dir, "frozen"));
    }
    Ok(())
}

/// v2: thaw and wait for `frozen 0` (which stays 1 while an ancestor is frozen; then the
/// wait times out, correctly: the processes do not run).
pub(crate) fn v2_thaw(dir: &Path) -> Result<()> {
    fs::write(dir, "cgroup.freeze", "0")?;
    fs::poll(TIMEOUT, || Ok((!v2_frozen(dir)?).then_some(())))?
        .ok_or_else(|| timeout(dir, "thawed"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn v1_fake_transitions() {
        // A regular file keeps what is written, like a freezer that completes at once.
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("freezer.state"), "THAWED\n").unwrap();
        assert_eq!(v1_state(d.path()).unwrap(), FreezerState::Thawed);
        v1_freeze(d.path()).unwrap();
        assert_eq!(v1_state(d.path()).unwrap(), FreezerState::Frozen);
        v1_thaw(d.path()).unwrap();
        assert_eq!(v1_state(d.path()).unwrap(), FreezerState::Thawed);
        std::fs::write(d.path().join("freezer.state"), "BOGUS").unwrap();
        assert!(v1_state(d.path()).is_err());
    }

    #[test]
    fn v2_fake_states() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cgroup.freeze"), "1\n").unwrap();
        std::fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert_eq!(v2_state(d.path()).unwrap(), FreezerState::Freezing);
        std::fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        assert_eq!(v2_state(d.path()).unwrap(), FreezerState::Frozen);
        std::fs::write(d.path().join("cgroup.freeze"), "0\n").unwrap();
        assert_eq!(v2_state(d.path()).unwrap(), FreezerState::Thawed);
        assert_eq!(FreezerState::Frozen.to_string(), "frozen");
    }
}
