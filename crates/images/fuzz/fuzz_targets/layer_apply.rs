//! `layer::apply` of arbitrary bytes (optionally through `decompress`) into a fresh
//! directory, checking that nothing appears beside it.
//!
//! Input: one selector byte (`% 8`: 0..=5 plain tar, 6 gzip, 7 zstd), then the layer.
//! Each run applies into `<scratch>/layer` (scratch: `$BERTH_FUZZ_SCRATCH` or /dev/shm,
//! one directory per process) and removes it afterwards.
#![no_main]

#[path = "common/scratch.rs"]
mod scratch;

use std::path::PathBuf;
use std::sync::OnceLock;

use berth_images::layer::{apply, decompress, ApplyOptions, Compression, Limits};
use libfuzzer_sys::fuzz_target;

struct Setup {
    parent: PathBuf,
    options: ApplyOptions,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let parent = scratch::scratch_dir("apply");
        // Small bounds keep each run cheap; the defaults' checks are the same code.
        let options = ApplyOptions {
            limits: Limits {
                max_entries: 4096,
                max_bytes: 32 << 20,
                max_input_bytes: 64 << 20,
                ..Limits::default()
            },
            ..ApplyOptions::default()
        };
        Setup { parent, options }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, layer)) = data.split_first() else {
        return;
    };
    let compression = match selector % 8 {
        6 => Compression::Gzip,
        7 => Compression::Zstd,
        _ => Compression::None,
    };
    let setup = setup();
    let dir = setup.parent.join("layer");
    std::fs::create_dir(&dir).expect("fresh layer directory");
    if let Ok(reader) = decompress(layer, compression) {
        let _ = apply(&dir, reader, &setup.options);
    }
    // Whatever the stream held, nothing may appear beside the layer directory.
    let beside: Vec<_> = std::fs::read_dir(&setup.parent)
        .expect("read scratch")
        .map(|e| e.expect("scratch entry").file_name())
        .collect();
    assert_eq!(beside, ["layer"], "apply wrote outside the layer directory");
    std::fs::remove_dir_all(&dir).expect("remove layer directory");
});
