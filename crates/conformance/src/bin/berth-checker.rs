//! `berth-checker`: runs inside a container as its process, verifies that the
//! spec at `/berth-conformance/config.json` took effect and prints TAP.
//!
//! Build it statically so it runs in a busybox rootfs:
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build -p berth-conformance --bin berth-checker --target x86_64-unknown-linux-gnu`
#![forbid(unsafe_code)]

use std::io::Write;

fn main() {
    let lines = berth_conformance::checker::run();
    let text = berth_conformance::tap::render(&lines);
    let mut stdout = std::io::stdout().lock();
    // Nothing sensible is left to do if stdout is gone.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
