//! `ImageConfig::parse` of arbitrary bytes; a parsed config must serialise to bytes that
//! parse back to the same config.
#![no_main]

use berth_images::manifest::{image_id, ImageConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = image_id(data);
    let Ok(config) = ImageConfig::parse(data) else {
        return;
    };
    let _ = config.history_with_layers();
    let bytes = serde_json::to_vec(&config).expect("serialise config");
    let again = ImageConfig::parse(&bytes).expect("a serialised config must parse again");
    assert_eq!(again, config, "round trip changed the config");
});
