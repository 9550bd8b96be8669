//! The container's log: Docker's `json-file` format, rotated by size.
//!
//! Each line of output becomes one JSON object `{"log":"…\n","stream":"stdout","time":
//! "<RFC 3339 nanoseconds>"}` on its own line, exactly as dockerd writes it, so
//! `docker logs` readers (ours, and tools that read the files) understand it. A line
//! longer than [`MAX_LINE`] is split into several entries (the last without its newline
//! gets one later), as Docker's 16 KiB buffer does. When the file would grow past
//! `max_size` it is renamed to `<path>.1` (older ones shift to `.2`, …, up to
//! `max_files - 1`) and a new one is started.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_monitor::{LogConfig, LogDriver};

/// Longest log entry before a line is split.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// The log of one container.
#[derive(Debug)]
pub(crate) struct Log {
    file: Option<File>,
    path: PathBuf,
    size: u64,
    max_size: u64,
    max_files: u32,
    pending: [Vec<u8>; 2],
}

impl Log {
    /// Opens (appending to) the log `config` names.
    pub(crate) fn open(config: &LogConfig) -> std::io::Result<Log> {
        let mut log = Log {
            file: None,
            path: config.path.clone(),
            size: 0,
            max_size: config.max_size,
            max_files: config.max_files.max(1),
            pending: [Vec::new(), Vec::new()],
        };
        if config.driver == LogDriver::JsonFile {
            let f = open_append(&config.path)?;
            log.size = f.metadata()?.len();
            log.file = Some(f);
        }
        Ok(log)
    }

    /// Records `data` written by the container on `stream` (1 stdout, 2 stderr).
    pub(crate) fn write(&mut self, stream: u8, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let idx = usize::from(stream == 2);
        let mut pending = std::mem::take(&mut self.pending[idx]);
        pending.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            self.entries(stream, &pending[start..end]);
            start = end;
        }
        let mut rest = pending.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.entries(stream, &rest);
            rest = tail;
        }
        self.pending[idx] = rest;
    }

    /// Writes out what is left of unfinished lines (the streams have ended).
    pub(crate) fn flush(&mut self) {
        for (idx, stream) in [(0, 1u8), (1, 2u8)] {
            let rest = std::mem::take(&mut self.pending[idx]);
            if !rest.is_empty() {
                self.entries(stream, &rest);
            }
        }
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }

    fn entries(&mut self, stream: u8, line: &[u8]) {
        for chunk in line.chunks(MAX_LINE) {
            let entry = entry(stream, chunk, &berth_runtime::timestamp());
            self.append(entry.as_bytes());
        }
    }

    fn append(&mut self, entry: &[u8]) {
        let len = entry.len() as u64;
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            if let Err(e) = self.rotate() {
                eprintln!("berth-monitor: rotating {}: {e}", self.path.display());
            }
        }
        if let Some(f) = &mut self.file {
            match f.write_all(entry) {
                Ok(()) => self.size += len,
                Err(e) => eprintln!("berth-monitor: writing {}: {e}", self.path.display()),
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.max_files > 1 {
            for i in (1..self.max_files - 1).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// `<path>.<n>`: a rotated log file.
pub(crate) fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// One json-file entry, newline-terminated.
pub(crate) fn entry(stream: u8, data: &[u8], time: &str) -> String {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        log: &'a str,
        stream: &'a str,
        time: &'a str,
    }
    let text = String::from_utf8_lossy(data);
    let e = Entry {
        log: &text,
        stream: if stream == 2 { "stderr" } else { "stdout" },
        time,
    };
    let mut s = serde_json::to_string(&e).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(dir: &Path, max_size: u64, max_files: u32) -> LogConfig {
        LogConfig {
            driver: LogDriver::JsonFile,
            path: dir.join("c-json.log"),
            max_size,
            max_files,
        }
    }

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn entry_format() {
        assert_eq!(
            entry(1, b"hi\n", "2026-01-01T00:00:00.000000001Z"),
            "{\"log\":\"hi\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00.000000001Z\"}\n"
        );
    }

    #[test]
    fn lines_are_split_and_joined() {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path(), 0, 1);
        let mut log = Log::open(&c).unwrap();
        log.write(1, b"a\nb");
        log.write(2, b"err\n");
        log.write(1, b"c\n\xff");
        log.flush();
        let l = lines(&c.path);
        let got: Vec<(&str, &str)> = l
            .iter()
            .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a\n", "stdout"),
                ("err\n", "stderr"),
                ("bc\n", "stdout"),
                ("\u{fffd}", "stdout")
            ]
        );
    }

    #[test]
    fn long_lines_are_chunked() {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path(), 0, 1);
        let mut log = Log::open(&c).unwrap();
        log.write(1, &vec![b'x'; MAX_LINE * 2 + 5]);
        log.write(1, b"\n");
        log.flush();
        let l = lines(&c.path);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0]["log"].as_str().unwrap().len(), MAX_LINE);
        assert_eq!(l[2]["log"].as_str().unwrap(), "xxxxx\n");
    }

    #[test]
    fn rotation_keeps_max_files() {
        let d = tempfile::tempdir().unwrap();
        let c = config(d.path(), 300, 3);
        let mut log = Log::open(&c).unwrap();
        for i in 0..40 {
            log.write(1, format!("line {i}\n").as_bytes());
        }
        log.flush();
        assert!(c.path.exists());
        assert!(numbered(&c.path, 1).exists());
        assert!(numbered(&c.path, 2).exists());
        assert!(!numbered(&c.path, 3).exists());
        for p in [c.path.clone(), numbered(&c.path, 1), numbered(&c.path, 2)] {
            assert!(std::fs::metadata(&p).unwrap().len() <= 300);
        }
        let last = lines(&c.path);
        assert_eq!(last.last().unwrap()["log"], "line 39\n");
    }
}
