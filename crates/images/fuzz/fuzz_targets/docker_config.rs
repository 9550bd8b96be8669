//! The docker CLI `config.json` credential reader (`DockerConfig`), which has no
//! bytes entry point: each run writes the input to `<scratch>/config.json` and looks up
//! credentials for a few hosts. Credential helpers are looked for in an empty
//! directory, so none can run. Then credentials are stored into that (hostile) file and
//! must read back unchanged.
#![no_main]

#[path = "common/scratch.rs"]
mod scratch;

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_images::registry::{CredentialSource, Credentials, DockerConfig};
use libfuzzer_sys::fuzz_target;

const HOSTS: [&str; 3] = ["registry-1.docker.io", "127.0.0.1:5000", "ghcr.io"];

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch::scratch_dir("config");
        std::fs::create_dir_all(dir.join("no-helpers")).expect("scratch directory");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let path = dir.join("config.json");
    std::fs::write(&path, data).expect("write config");
    let config = DockerConfig::at(&path).with_helper_dir(dir.join("no-helpers"));
    for host in HOSTS {
        let _ = config.credentials(host);
    }
    let stored = Credentials::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    if config.store("127.0.0.1:5000", &stored).is_ok() {
        let read = config
            .credentials("127.0.0.1:5000")
            .expect("stored credentials must read back");
        assert!(
            read == Some(stored),
            "stored credentials read back differently"
        );
    }
});
