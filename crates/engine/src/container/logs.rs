//! `logs`: read the container's json-file log (rotated files included), optionally
//! following it while the container runs.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Standard output entries.
    pub stdout: bool,
    /// Standard error entries.
    pub stderr: bool,
    /// Only entries at or after this time (ns since the epoch).
    pub since: Option<i128>,
    /// Only entries before this time (ns since the epoch).
    pub until: Option<i128>,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Keep streaming new entries while the container runs.
    pub follow: bool,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    /// When (RFC 3339 with nanoseconds).
    pub time: String,
    /// The bytes.
    pub data: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

fn parse(line: &str, opts: &LogsOptions) -> Option<LogEntry> {
    let l: Line = serde_json::from_str(line).ok()?;
    let stream = if l.stream == "stderr" { 2 } else { 1 };
    if (stream == 1 && !opts.stdout) || (stream == 2 && !opts.stderr) {
        return None;
    }
    if opts.since.is_some() || opts.until.is_some() {
        let t = crate::time::parse_rfc3339(&l.time)?;
        if opts.since.is_some_and(|s| t < s) || opts.until.is_some_and(|u| t >= u) {
            return None;
        }
    }
    Some(LogEntry {
        stream,
        time: l.time,
        data: l.log.into_bytes(),
    })
}

/// The log files, oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in (1..100).rev() {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        let p = PathBuf::from(s);
        if p.exists() {
            out.push(p);
        }
    }
    out.push(path.to_path_buf());
    out
}

/// Reads every entry; returns them with the current file's inode and length read.
fn read_all(path: &Path, opts: &LogsOptions) -> (Vec<LogEntry>, u64, u64) {
    let mut entries = Vec::new();
    let (mut ino, mut pos) = (0, 0);
    for f in files(path) {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        if f == path {
            ino = file.metadata().map(|m| m.ino()).unwrap_or(0);
        }
        let mut r = BufReader::new(file);
        let mut line = String::new();
        let mut read: u64 = 0;
        while let Ok(n) = r.read_line(&mut line) {
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            read += n as u64;
            if let Some(e) = parse(line.trim_end(), opts) {
                entries.push(e);
            }
            line.clear();
        }
        if f == path {
            pos = read;
        }
    }
    if let Some(t) = opts.tail {
        let skip = entries.len().saturating_sub(t);
        entries.drain(..skip);
    }
    (entries, ino, pos)
}

/// New complete lines of `path` from `pos`.
fn read_from(path: &Path, pos: u64, opts: &LogsOptions) -> (Vec<LogEntry>, u64) {
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return (out, pos);
    };
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return (out, pos);
    }
    let mut r = BufReader::new(f);
    let mut line = String::new();
    let mut at = pos;
    while let Ok(n) = r.read_line(&mut line) {
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        at += n as u64;
        if let Some(e) = parse(line.trim_end(), opts) {
            out.push(e);
        }
        line.clear();
    }
    (out, at)
}

impl Engine {
    /// Streams container `key`'s log entries.
    pub async fn container_logs(
        &self,
        key: &str,
        opts: LogsOptions,
    ) -> Result<mpsc::Receiver<LogEntry>> {
        let h = self.lookup(key)?;
        let rec = h.record();
        if rec.host_config.log_config.kind == "none" {
            return Err(EngineError::Runtime {
                kind: berth_errdefs::ErrorKind::NotImplemented,
                message: "configured logging driver does not support reading".into(),
            });
        }
        let (tx, rx) = mpsc::channel(256);
        let path = rec.log_path.clone();
        let life = h.life.subscribe();
        drop(h);
        tokio::spawn(async move {
            let (p, o) = (path.clone(), opts.clone());
            let Ok((entries, mut ino, mut pos)) =
                tokio::task::spawn_blocking(move || read_all(&p, &o)).await
            else {
                return;
            };
            for e in entries {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            loop {
                let running = life.borrow().running && !life.borrow().removed;
                let (p, o) = (path.clone(), opts.clone());
                let Ok((entries, next_ino, next_pos)) = tokio::task::spawn_blocking(move || {
                    let now_ino = std::fs::metadata(&p).map(|m| m.ino()).unwrap_or(0);
                    let start = if now_ino != ino { 0 } else { pos };
                    let (e, at) = read_from(&p, start, &o);
                    (e, now_ino, at)
                })
                .await
                else {
                    return;
                };
                ino = next_ino;
                pos = next_pos;
                for e in entries {
                    if opts.until.is_some_and(|u| {
                        crate::time::parse_rfc3339(&e.time).is_some_and(|t| t >= u)
                    }) {
                        return;
                    }
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                if !running {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}
