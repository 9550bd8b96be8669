//! Progress of pulls and pushes, per layer.
//!
//! The registry client and the archive loaders report [`Progress`] events through a
//! [`ProgressSink`]; the daemon turns them into Docker's JSON progress stream and the
//! CLI draws them as progress bars. Events of one layer arrive in order; events of
//! different layers interleave (layers move in parallel).

use crate::digest::Digest;

/// Where a layer (or config / manifest blob) is in its pull or push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    /// Queued behind other transfers.
    Waiting,
    /// Bytes are moving from the registry (pull).
    Downloading,
    /// Bytes are moving to the registry (push).
    Uploading,
    /// The digest of the received bytes is being checked.
    Verifying,
    /// The layer is being unpacked into its snapshot.
    Extracting,
    /// Finished.
    Done,
    /// Nothing to do: the store (pull) or the registry (push) has it already.
    AlreadyExists,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The blob this event is about.
    pub digest: Digest,
    /// Its new state.
    pub state: ProgressState,
    /// Bytes done so far in this state (downloaded, uploaded or extracted).
    pub current: u64,
    /// Total bytes, when known (the descriptor's size).
    pub total: Option<u64>,
}

/// Receives progress events. Must be cheap: it is called from transfer loops.
pub trait ProgressSink: Send + Sync {
    /// Reports one event.
    fn report(&self, event: Progress);
}

/// A sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _event: Progress) {}
}
