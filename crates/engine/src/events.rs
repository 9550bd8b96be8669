//! Events (`docker events`): what happened to which object, kept in a bounded history
//! for `since` queries and broadcast to subscribers.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Most events kept for `since`.
const HISTORY: usize = 1024;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`, `daemon`.
    pub kind: String,
    /// `create`, `start`, `die`, `destroy`, `pull`…
    pub action: String,
    /// The object's ID.
    pub id: String,
    /// Attributes (name, image, exitCode, labels…).
    pub attributes: Vec<(String, String)>,
    /// Nanoseconds since the epoch.
    pub time_nano: i128,
}

impl Event {
    /// An event happening now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: Vec<(String, String)>) -> Event {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Event {
            kind: kind.to_owned(),
            action: action.to_owned(),
            id: id.to_owned(),
            attributes,
            time_nano: i128::try_from(now.as_nanos()).unwrap_or(0),
        }
    }
}

fn history() -> &'static Mutex<VecDeque<Event>> {
    static H: OnceLock<Mutex<VecDeque<Event>>> = OnceLock::new();
    H.get_or_init(|| Mutex::new(VecDeque::new()))
}

pub(crate) fn record(e: Event) {
    let mut h = history().lock().unwrap_or_else(PoisonError::into_inner);
    if h.len() == HISTORY {
        h.pop_front();
    }
    h.push_back(e);
}

/// The events kept, oldest first.
pub fn past() -> Vec<Event> {
    history()
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect()
}
