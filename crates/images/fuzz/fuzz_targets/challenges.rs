//! `registry::parse_challenges` of arbitrary `WWW-Authenticate` header bytes.
#![no_main]

use berth_images::registry::parse_challenges;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(challenges) = parse_challenges(data) {
        for c in &challenges {
            let _ = (c.param("realm"), c.param("service"), c.param("scope"));
        }
    }
});
