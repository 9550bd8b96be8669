//! Crash safety and resume of the content store, with real processes killed by SIGKILL.
//!
//! The parent tests re-execute this test binary with `BERTH_STORE_CHILD_ROOT` set and
//! `--exact child_process_role`: that test then plays a writer in a child process,
//! which the parent kills with SIGKILL (by PID) at chosen or random moments. After each
//! kill the parent checks that every visible blob verifies and that every partial write
//! either resumes to a correct blob or is cleaned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_errdefs::{ErrorKind, HasKind};
use berth_images::content::{ContentError, ContentStore, LocalStore};
use berth_images::digest::Digest;

const ENV_ROOT: &str = "BERTH_STORE_CHILD_ROOT";
const ENV_MODE: &str = "BERTH_STORE_CHILD_MODE";
const ENV_START: &str = "BERTH_STORE_CHILD_START";
/// Blobs each killed child works through.
const PER_ROUND: u64 = 40;
/// A child never outlives this, even if the parent forgets it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

/// The deterministic content of blob `i` (4 KiB to ~260 KiB of pseudo-random bytes).
fn blob(i: u64) -> Vec<u8> {
    let len = 4096 + usize::try_from(i.wrapping_mul(7919) % 256_000).unwrap();
    support::bytes(len, i)
}

/// Blob `i` and its digest.
fn digested(i: u64) -> (Vec<u8>, Digest) {
    let data = blob(i);
    let d = Digest::sha256_of(&data);
    (data, d)
}

/// A store in a temporary directory.
fn open_store() -> (tempfile::TempDir, LocalStore) {
    let dir = support::tmpdir("store");
    let store = LocalStore::open(dir.path()).unwrap();
    (dir, store)
}

/// The child's side. Does nothing unless started by a parent test below.
#[test]
fn child_process_role() {
    let Ok(root) = std::env::var(ENV_ROOT) else {
        return;
    };
    let store = LocalStore::open(Path::new(&root)).unwrap();
    let mode = std::env::var(ENV_MODE).unwrap();
    let start: u64 = std::env::var(ENV_START).unwrap().parse().unwrap();
    let mut out = io::stdout();
    match mode.as_str() {
        // Write half of blob `start`, say how far, then wait to be killed (holding the
        // ingest lock).
        "partial" => {
            let (data, d) = digested(start);
            let mut w = store.writer(&d, Some(data.len() as u64)).unwrap();
            let half = data.len() / 2;
            w.write_all(&data[..half]).unwrap();
            writeln!(out, "READY {}", w.offset()).unwrap();
            out.flush().unwrap();
            std::thread::sleep(CHILD_LIFETIME);
        }
        // Write and commit blobs start.. as fast as possible until killed, in small
        // chunks so the kill lands anywhere.
        "loop" => {
            writeln!(out, "STARTED").unwrap();
            out.flush().unwrap();
            for i in start..start + PER_ROUND {
                let (data, d) = digested(i);
                let mut w = match store.writer(&d, Some(data.len() as u64)) {
                    Ok(w) => w,
                    Err(ContentError::AlreadyExists { .. }) => continue,
                    Err(e) => panic!("{e}"),
                };
                let offset = usize::try_from(w.offset()).unwrap();
                for chunk in data[offset..].chunks(3000) {
                    w.write_all(chunk).unwrap();
                }
                w.commit().unwrap();
            }
            std::thread::sleep(CHILD_LIFETIME);
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// A child process, killed with SIGKILL when dropped.
struct ChildGuard {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl ChildGuard {
    fn spawn(root: &Path, mode: &str, start: u64) -> ChildGuard {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "child_process_role",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_ROOT, root)
            .env(ENV_MODE, mode)
            .env(ENV_START, start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        ChildGuard { child, stdout }
    }

    /// Reads stdout lines until one contains `prefix`; returns what follows it.
    fn wait_for(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).unwrap();
            assert_ne!(n, 0, "child exited before printing {prefix}");
            // libtest prints "test child_process_role ... " on the same line.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_owned();
            }
        }
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL to this PID) and reap.
    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already reaped after `kill`; otherwise kill and reap now.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every visible blob hashes to its name and is one of `known`.
fn check_visible(store: &LocalStore, known: &BTreeMap<Digest, u64>) {
    for info in store.list().unwrap() {
        assert!(
            known.contains_key(&info.digest),
            "unknown blob {}",
            info.digest
        );
        store.verify(&info.digest).unwrap();
        assert_eq!(info.size, blob(known[&info.digest]).len() as u64);
    }
}

/// Resumes (or cleans) every unfinished write; afterwards no ingest is left.
fn finish_ingests(store: &LocalStore, known: &BTreeMap<Digest, u64>) -> usize {
    let mut resumed = 0;
    for status in store.ingests().unwrap() {
        assert!(
            !status.locked,
            "a dead child still holds {}",
            status.expected
        );
        let data = blob(known[&status.expected]);
        match store.writer(&status.expected, Some(data.len() as u64)) {
            Ok(mut w) => {
                let offset = usize::try_from(w.offset()).unwrap();
                assert!(offset <= data.len());
                w.write_all(&data[offset..]).unwrap();
                w.commit().unwrap();
                resumed += 1;
            }
            // Killed between the rename and the removal of the ingest directory.
            Err(ContentError::AlreadyExists { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    store.clean_stale_ingests(Duration::ZERO).unwrap();
    assert!(store.ingests().unwrap().is_empty());
    resumed
}

#[test]
fn kill_mid_write_then_resume() {
    let (dir, store) = open_store();
    let (data, d) = digested(7);
    let size = Some(data.len() as u64);

    let mut child = ChildGuard::spawn(dir.path(), "partial", 7);
    let offset: u64 = child.wait_for("READY ").parse().unwrap();
    assert_eq!(offset, data.len() as u64 / 2);
    // The live child holds the ingest: a second writer is told to come back later.
    let err = store.writer(&d, size).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(store.ingests().unwrap()[0].locked);
    child.kill();

    // Nothing visible, the partial data is there, unlocked.
    assert!(store.info(&d).unwrap().is_none());
    assert!(store.list().unwrap().is_empty());
    let status = store.ingests().unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].offset, offset);
    assert!(!status[0].locked);

    // Resume where the dead child stopped.
    let mut w = store.writer(&d, size).unwrap();
    assert_eq!(w.offset(), offset);
    w.write_all(&data[usize::try_from(offset).unwrap()..])
        .unwrap();
    w.commit().unwrap();
    store.verify(&d).unwrap();
    assert!(store.ingests().unwrap().is_empty());
}

#[test]
fn kill_mid_write_then_redo() {
    let (dir, store) = open_store();
    let (data, d) = digested(8);
    let mut child = ChildGuard::spawn(dir.path(), "partial", 8);
    child.wait_for("READY ");
    child.kill();
    // A registry without range support: start over.
    let mut w = store.writer(&d, Some(data.len() as u64)).unwrap();
    assert_ne!(w.offset(), 0);
    w.reset().unwrap();
    w.write_all(&data).unwrap();
    w.commit().unwrap();
    store.verify(&d).unwrap();
}

#[test]
fn kill_at_random_points_leaves_no_corrupt_blob() {
    let (dir, store) = open_store();
    let rounds = 20u64;
    let known: BTreeMap<Digest, u64> = (0..rounds * PER_ROUND)
        .map(|i| (Digest::sha256_of(&blob(i)), i))
        .collect();
    // A cheap deterministic spread of kill delays, 0 to ~250 ms.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut resumed = 0;
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 250_000);
        let mut child = ChildGuard::spawn(dir.path(), "loop", round * PER_ROUND);
        child.wait_for("STARTED");
        std::thread::sleep(delay);
        child.kill();
        check_visible(&store, &known);
        resumed += finish_ingests(&store, &known);
        check_visible(&store, &known);
    }
    eprintln!(
        "{} blobs committed, {resumed} partial writes resumed after SIGKILL",
        store.list().unwrap().len()
    );
}

/// A reader that fails after `fail_after` bytes, like a dropped connection.
struct BrokenReader<'a> {
    data: &'a [u8],
    pos: usize,
    fail_after: usize,
}

impl Read for BrokenReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.fail_after {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "reset by peer",
            ));
        }
        let end = self
            .data
            .len()
            .min(self.fail_after)
            .min(self.pos + buf.len());
        let n = end - self.pos;
        buf[..n].copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(n)
    }
}

#[test]
fn broken_download_resumes_through_io_copy() {
    let (_dir, store) = open_store();
    let (data, d) = digested(3);
    let size = Some(data.len() as u64);
    let mut attempts = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        attempts += 1;
        assert!(Instant::now() < deadline);
        let mut w = store.writer(&d, size).unwrap();
        let offset = usize::try_from(w.offset()).unwrap();
        // Each "connection" delivers at most 10,000 more bytes, from the offset on.
        let mut reader = BrokenReader {
            data: &data,
            pos: offset,
            fail_after: offset + 10_000,
        };
        match io::copy(&mut reader, &mut w) {
            Ok(_) => {
                w.commit().unwrap();
                break;
            }
            Err(e) => {
                let err = ContentError::from_write_error(e);
                assert!(matches!(err, ContentError::Copy { .. }), "{err}");
                if w.offset() == data.len() as u64 {
                    w.commit().unwrap();
                    break;
                }
                drop(w);
            }
        }
    }
    assert!(attempts > 1);
    store.verify(&d).unwrap();
}

#[test]
fn lying_sender_is_refused() {
    let (_dir, store) = open_store();
    let (data, d) = digested(5);
    // More bytes than the descriptor said.
    let mut w = store.writer(&d, Some(100)).unwrap();
    let err = ContentError::from_write_error(w.write_all(&data).unwrap_err());
    assert!(
        matches!(err, ContentError::PastExpectedSize { .. }),
        "{err}"
    );
    w.abort().unwrap();
    // Right size, wrong bytes.
    let mut evil = data.clone();
    evil[10] ^= 1;
    let mut w = store.writer(&d, Some(data.len() as u64)).unwrap();
    w.write_all(&evil).unwrap();
    let err = w.commit().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert!(store.info(&d).unwrap().is_none());
    assert!(store.ingests().unwrap().is_empty());
}
