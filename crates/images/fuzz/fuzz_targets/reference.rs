//! `Reference::parse_normalized` of arbitrary strings. A parsed reference's full form
//! and its familiar (short) form must both parse back to the same reference.
#![no_main]

use berth_images::reference::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(r) = Reference::parse_normalized(s) else {
        return;
    };
    let full = r.to_string();
    let again = Reference::parse_normalized(&full).expect("the full form must parse");
    assert_eq!(again, r, "full form {full:?} does not round-trip");
    let familiar = r.familiar();
    let short = Reference::parse_normalized(&familiar).expect("the familiar form must parse");
    assert_eq!(short, r, "familiar form {familiar:?} does not round-trip");
    let _ = (
        r.name(),
        r.registry_host(),
        r.manifest_reference(),
        r.familiar_name(),
    );
});
