//! Every decoder of client input (create bodies with their HostConfig checks, exec
//! configs, filters, X-Registry-Auth, query escapes, versioned paths, timestamps) on
//! arbitrary bytes: none may panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    berth_api::decode::fuzz_all(data);
});
