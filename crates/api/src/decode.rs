//! Decoders of what clients send (bodies, query values, headers): hostile input, fuzzed
//! by `crates/api/fuzz` (target `request_decoders`). None of them panics; bounds on
//! sizes are applied before they run (`MAX_JSON_BODY`, header limits), and serde_json's
//! recursion limit (128) bounds nesting.

use std::collections::HashMap;

use serde_json::Value;

/// The body of `POST /containers/create`: the container config with `HostConfig`.
#[derive(Debug, serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    /// The container's configuration (Docker's `ContainerConfig`, flattened).
    #[serde(flatten)]
    pub config: berth_engine::ContainerConfig,
    /// The host configuration.
    pub host_config: berth_engine::HostConfig,
}

/// Docker's `filters` query value: `{"key": ["v", …]}` (or the legacy `{"key": {"v":
/// true}}`).
pub fn filters(raw: Option<&str>) -> Result<HashMap<String, Vec<String>>, String> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("invalid filters: {e}"))?;
    let mut out = HashMap::new();
    if let Value::Object(m) = v {
        for (k, val) in m {
            let list: Vec<String> = match val {
                Value::Array(a) => a
                    .into_iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                Value::Object(o) => o
                    .into_iter()
                    .filter(|(_, b)| b.as_bool() == Some(true))
                    .map(|(k, _)| k)
                    .collect(),
                Value::String(s) => vec![s],
                _ => Vec::new(),
            };
            out.insert(k, list);
        }
    }
    Ok(out)
}

/// Credentials from an `X-Registry-Auth` header (base64url JSON, with or without padding).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct RegistryAuth {
    /// User.
    pub username: String,
    /// Password.
    pub password: String,
    /// Registry.
    pub serveraddress: String,
    /// Identity token from an earlier login.
    pub identitytoken: String,
}

/// Decodes an `X-Registry-Auth` header value; `None` when it is not one.
pub fn registry_auth(raw: &str) -> Option<RegistryAuth> {
    use base64::Engine as _;
    let raw = raw.trim();
    if raw.len() > 64 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(raw)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.trim_end_matches('='))
        })
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `%XX` and `+` decoding of a query value (invalid escapes kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs every decoder on `data` (the fuzz target's body): none may panic.
#[doc(hidden)]
pub fn fuzz_all(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(body) = serde_json::from_slice::<CreateBody>(data) {
        let _ = berth_engine::check_host_config(&body.host_config);
        let _ = serde_json::to_vec(&body.config);
    }
    let _ = serde_json::from_slice::<berth_engine::ExecConfig>(data);
    let _ = filters(Some(&text));
    let _ = registry_auth(&text);
    let _ = percent_decode(&text);
    let (v, rest) = crate::version::split_path(&text);
    let _ = v.and_then(crate::version::ApiVersion::parse);
    let _ = rest.len();
    let _ = berth_engine::parse_timestamp(&text);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        let f = filters(Some(r#"{"label":["a=b"],"status":{"running":true}}"#)).unwrap();
        assert_eq!(f["label"], vec!["a=b"]);
        assert_eq!(f["status"], vec!["running"]);
        assert!(filters(Some("{")).is_err());
        assert_eq!(percent_decode("a%2Fb+c%zz%4"), "a/b c%zz%4");
        let raw = "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoiaCJ9";
        let a = registry_auth(raw).unwrap();
        assert_eq!((a.username.as_str(), a.serveraddress.as_str()), ("u", "h"));
        assert!(registry_auth("!!!").is_none());
        for junk in [
            &b"{\"HostConfig\":{\"Binds\":[\"::\"]}}"[..],
            b"\xff\xfe",
            b"[[[[[[[[[[",
            b"%",
            b"/v1.2.3.4/x",
        ] {
            fuzz_all(junk);
        }
    }
}
