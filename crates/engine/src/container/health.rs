//! Healthchecks: the image's `HEALTHCHECK` or the request's, run as exec sessions while
//! the container runs; state, log and events as Docker reports them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::engine::{Engine, Handle};
use crate::exec::ExecConfig;

/// Most probe results kept (Docker keeps 5).
const KEEP: usize = 5;
/// Most output bytes kept per probe (Docker keeps 4 KiB).
const MAX_OUTPUT: usize = 4096;

/// A container's health (Docker's `Health`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last probes.
    pub log: Vec<Probe>,
}

/// One probe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// When it started (RFC 3339).
    pub start: String,
    /// When it ended.
    pub end: String,
    /// Its exit code (-1: timed out or could not run).
    pub exit_code: i64,
    /// Its output (bounded).
    pub output: String,
}

/// A healthcheck's settings, with Docker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    pub start_period: Duration,
    pub start_interval: Duration,
}

fn dur(v: &serde_json::Value, key: &str, default: Duration) -> Duration {
    match v.get(key).and_then(serde_json::Value::as_u64) {
        Some(0) | None => default,
        Some(ns) => Duration::from_nanos(ns),
    }
}

/// The check a container's (merged) config asks for, if any.
pub(crate) fn check_of(healthcheck: Option<&serde_json::Value>) -> Option<Check> {
    let h = healthcheck?;
    let test: Vec<String> = h
        .get("Test")
        .and_then(|t| serde_json::from_value(t.clone()).ok())?;
    let cmd = match test.split_first() {
        Some((k, rest)) if k == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((k, rest)) if k == "CMD-SHELL" && !rest.is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        _ => return None, // NONE, empty or malformed: no check
    };
    Some(Check {
        cmd,
        interval: dur(h, "Interval", Duration::from_secs(30)),
        timeout: dur(h, "Timeout", Duration::from_secs(30)),
        retries: h
            .get("Retries")
            .and_then(serde_json::Value::as_u64)
            .map_or(3, |r| u32::try_from(r).unwrap_or(3))
            .max(1),
        start_period: dur(h, "StartPeriod", Duration::ZERO),
        start_interval: dur(h, "StartInterval", Duration::from_secs(5)),
    })
}

/// Docker's multiplexed stream, payload only.
fn demux(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let n = usize::try_from(u32::from_be_bytes([b[4], b[5], b[6], b[7]])).unwrap_or(0);
        let end = (8 + n).min(b.len());
        out.extend_from_slice(&b[8..end]);
        b = &b[end..];
    }
    out
}

impl Engine {
    /// Starts the healthcheck loop of a container that just started (run `run` after
    /// every start; the loop ends with the run).
    pub(crate) fn start_health(&self, h: &Arc<Handle>) {
        let rec = h.record();
        let Some(check) = check_of(rec.config.healthcheck.as_ref()) else {
            return;
        };
        let engine = self.clone();
        let h = h.clone();
        let run = h.life.borrow().exits;
        let _ = h.update(&self.inner.store, |r| {
            r.state.health = Some(Health {
                status: "starting".into(),
                ..Health::default()
            });
        });
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                let in_start = started.elapsed() < check.start_period;
                let wait = if in_start {
                    check.start_interval.min(check.interval)
                } else {
                    check.interval
                };
                let mut life = h.life.subscribe();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = life.wait_for(|l| l.exits != run || l.removed) => return,
                }
                if h.life.borrow().exits != run {
                    return;
                }
                let probe = engine.probe(&h.id, &check).await;
                let ok = probe.exit_code == 0;
                let mut changed = None;
                let _ = h.update(&engine.inner.store, |r| {
                    let mut health = r.state.health.clone().unwrap_or_default();
                    let before = health.status.clone();
                    if ok {
                        health.failing_streak = 0;
                        health.status = "healthy".into();
                    } else if !in_start || health.status != "starting" {
                        health.failing_streak += 1;
                        if health.failing_streak >= check.retries {
                            health.status = "unhealthy".into();
                        }
                    }
                    health.log.push(probe.clone());
                    let excess = health.log.len().saturating_sub(KEEP);
                    health.log.drain(..excess);
                    if health.status != before {
                        changed = Some(health.status.clone());
                    }
                    r.state.health = Some(health);
                });
                if let Some(status) = changed {
                    let rec = h.record();
                    engine.container_event(&rec, &format!("health_status: {status}"), &[]);
                }
            }
        });
    }

    async fn probe(&self, id: &str, check: &Check) -> Probe {
        let start = berth_runtime::timestamp();
        let fail = |msg: String| Probe {
            start: start.clone(),
            end: berth_runtime::timestamp(),
            exit_code: -1,
            output: msg,
        };
        let cfg = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: check.cmd.clone(),
            ..ExecConfig::default()
        };
        let exec = match self.exec_create(id, cfg) {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        let stream = match self.exec_start(&exec, false).await {
            Ok(Some(s)) => s,
            Ok(None) => return fail("no stream".into()),
            Err(e) => return fail(e.to_string()),
        };
        let mut s = stream.stream;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(check.timeout, async {
            let mut chunk = [0u8; 4096];
            loop {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if buf.len() < MAX_OUTPUT * 2 {
                            buf.extend_from_slice(&chunk[..n]);
                        }
                    }
                }
            }
        })
        .await;
        if read.is_err() {
            let _ = self.exec_kill(&exec).await;
            return fail(format!(
                "Health check exceeded timeout ({}s)",
                check.timeout.as_secs()
            ));
        }
        let mut output = String::from_utf8_lossy(&demux(&buf)).into_owned();
        output.truncate(MAX_OUTPUT);
        let code = self
            .exec_inspect(&exec)
            .ok()
            .and_then(|e| e.exit_code)
            .unwrap_or(-1);
        self.inner.execs_forget(&exec);
        Probe {
            start,
            end: berth_runtime::timestamp(),
            exit_code: i64::from(code),
            output,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn checks_from_config() {
        let v = serde_json::json!({"Test": ["CMD-SHELL", "exit 0"], "Interval": 1_000_000_000u64, "Retries": 2});
        let c = check_of(Some(&v)).unwrap();
        assert_eq!(c.cmd, vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.retries, 2);
        assert!(check_of(Some(&serde_json::json!({"Test": ["NONE"]}))).is_none());
        assert!(check_of(None).is_none());
        assert_eq!(demux(&[1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k']), b"ok");
    }
}
