//! `wait`: block until a container stops (or is removed).

use crate::engine::Engine;
use crate::error::Result;

/// What `wait` waits for (Docker's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return at once if it is not running, else at its exit.
    NotRunning,
    /// The next exit, even if it is not running now.
    NextExit,
    /// Its removal.
    Removed,
}

impl Engine {
    /// Registers a wait on container `key` per `condition` and returns the future of
    /// its exit code. The baseline is taken now, before the future is first polled, so
    /// a wait registered before a start sees that start's exit (`docker run` sends
    /// `wait?condition=next-exit` before `start`).
    pub fn wait_container(
        &self,
        key: &str,
        condition: WaitCondition,
    ) -> Result<std::pin::Pin<Box<dyn std::future::Future<Output = i32> + Send>>> {
        let h = self.lookup(key)?;
        let mut rx = h.life.subscribe();
        let start = rx.borrow().clone();
        drop(h);
        Ok(Box::pin(async move {
            let r = match condition {
                WaitCondition::NotRunning => {
                    if !start.running {
                        return start.exit_code;
                    }
                    rx.wait_for(|l| l.exits > start.exits || l.removed || !l.running)
                        .await
                        .map(|l| l.exit_code)
                }
                WaitCondition::NextExit => rx
                    .wait_for(|l| l.exits > start.exits || l.removed)
                    .await
                    .map(|l| l.exit_code),
                WaitCondition::Removed => rx.wait_for(|l| l.removed).await.map(|l| l.exit_code),
            };
            // The sender goes away only with the container: it was removed.
            r.unwrap_or(start.exit_code)
        }))
    }
}
