//! `manifest::parse_any` (and `parse_manifest` / `parse_index`) with each content type,
//! then what callers do with a parsed document; a parsed document must serialise to
//! bytes that parse back to the same document.
//!
//! Input: one selector byte choosing the content type, then the document.
#![no_main]

use berth_images::manifest::{
    media_type, parse_any, parse_index, parse_manifest, select_manifest, Document, Platform,
};
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [Option<&str>; 10] = [
    None,
    Some(media_type::OCI_MANIFEST),
    Some(media_type::OCI_INDEX),
    Some(media_type::DOCKER_MANIFEST),
    Some(media_type::DOCKER_MANIFEST_LIST),
    Some(media_type::DOCKER_SCHEMA1_SIGNED),
    Some(media_type::DOCKER_SCHEMA1),
    Some("application/json"),
    Some("text/plain; charset=utf-8"),
    Some("Application/VND.OCI.image.manifest.v1+json; charset=utf-8"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, doc)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let _ = parse_manifest(doc, content_type);
    let _ = parse_index(doc, content_type);
    let Ok(parsed) = parse_any(doc, content_type) else {
        return;
    };
    let bytes = match &parsed {
        Document::Manifest(m) => {
            for layer in &m.layers {
                let _ = layer.layer_type();
            }
            let _ = m.validate_image();
            let _ = m.layers_size();
            let _ = m.image_id();
            serde_json::to_vec(&**m).expect("serialise manifest")
        }
        Document::Index(i) => {
            let _ = select_manifest(i, &Platform::host());
            for entry in &i.manifests {
                if let Some(p) = &entry.platform {
                    let _ = select_manifest(i, p);
                }
            }
            serde_json::to_vec(&**i).expect("serialise index")
        }
    };
    let again = parse_any(&bytes, Some(parsed.media_type()))
        .expect("a serialised document must parse again");
    assert_eq!(again, parsed, "round trip changed the document");
});
