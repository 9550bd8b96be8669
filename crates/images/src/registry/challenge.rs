//! Parser for `WWW-Authenticate` headers (RFC 9110 section 11.6.1).
//!
//! ```text
//! WWW-Authenticate = 1#challenge
//! challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! auth-param       = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! The header comes from the registry, so it is hostile input: the parser works on bytes,
//! never indexes out of bounds, unescapes quoted strings (`\"`, `\\`), refuses
//! unterminated quotes, duplicate parameters and control characters, and bounds the
//! header length, the number of challenges and the number of parameters.

use std::fmt;

/// Longest header value accepted.
const MAX_HEADER: usize = 8 * 1024;
/// Most challenges accepted in one header.
const MAX_CHALLENGES: usize = 16;
/// Most parameters accepted in one challenge.
const MAX_PARAMS: usize = 32;

/// Why a `WWW-Authenticate` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The header is longer than the limit.
    #[error("header longer than {MAX_HEADER} bytes")]
    TooLong,
    /// The header names more challenges or parameters than the limits.
    #[error("too many challenges or parameters")]
    TooMany,
    /// A byte that cannot appear at this position.
    #[error("unexpected byte {byte:#04x} at offset {offset}")]
    Unexpected {
        /// The offending byte.
        byte: u8,
        /// Its offset.
        offset: usize,
    },
    /// The header ended where more was needed (open quote, `name=` without value).
    #[error("header ends in the middle of a challenge")]
    Truncated,
    /// A parameter appears twice in one challenge.
    #[error("parameter {0:?} repeated")]
    Duplicate(String),
    /// A quoted string is not UTF-8.
    #[error("quoted string is not UTF-8")]
    NotUtf8,
    /// No challenge at all.
    #[error("no challenge")]
    Empty,
}

/// One challenge: a scheme with parameters (or a token68).
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`bearer`, `basic`).
    pub scheme: String,
    /// Parameters in order, names lower-cased.
    pub params: Vec<(String, String)>,
    /// A token68 instead of parameters, when the challenge has one.
    pub token68: Option<String>,
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("scheme", &self.scheme)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Challenge {
    /// The value of parameter `name` (lower-case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one `WWW-Authenticate` header value into its challenges.
pub fn parse(header: &[u8]) -> Result<Vec<Challenge>, ChallengeError> {
    if header.len() > MAX_HEADER {
        return Err(ChallengeError::TooLong);
    }
    let mut p = Parser { s: header, pos: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            break;
        }
        if out.len() == MAX_CHALLENGES {
            return Err(ChallengeError::TooMany);
        }
        let scheme = p.token()?.to_ascii_lowercase();
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
            token68: None,
        };
        // A challenge without anything after the scheme ends at a comma or the end.
        if p.skip_spaces() == 0 {
            if !p.at_end() && p.peek() != Some(b',') {
                return Err(p.unexpected());
            }
            out.push(challenge);
            continue;
        }
        if p.at_end() || p.peek() == Some(b',') {
            out.push(challenge);
            continue;
        }
        if p.token68_ahead() {
            challenge.token68 = Some(p.token68()?);
            p.skip_spaces();
            if !p.at_end() && p.peek() != Some(b',') {
                return Err(p.unexpected());
            }
            out.push(challenge);
            continue;
        }
        // Parameters until the next challenge (a token not followed by '=') or the end.
        loop {
            if challenge.params.len() == MAX_PARAMS {
                return Err(ChallengeError::TooMany);
            }
            let name = p.token()?.to_ascii_lowercase();
            p.skip_spaces();
            if p.peek() != Some(b'=') {
                return Err(if p.at_end() {
                    ChallengeError::Truncated
                } else {
                    p.unexpected()
                });
            }
            p.pos += 1;
            p.skip_spaces();
            let value = match p.peek() {
                Some(b'"') => p.quoted()?,
                Some(_) => p.token()?.to_owned(),
                None => return Err(ChallengeError::Truncated),
            };
            if challenge.params.iter().any(|(k, _)| *k == name) {
                return Err(ChallengeError::Duplicate(name));
            }
            challenge.params.push((name, value));
            p.skip_spaces();
            if p.at_end() {
                break;
            }
            if p.peek() != Some(b',') {
                return Err(p.unexpected());
            }
            p.skip_list_separators();
            if p.at_end() || !p.param_ahead() {
                break;
            }
        }
        out.push(challenge);
    }
    if out.is_empty() {
        return Err(ChallengeError::Empty);
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, pos: usize) -> Option<u8> {
        self.s.get(pos).copied()
    }

    fn unexpected(&self) -> ChallengeError {
        match self.peek() {
            Some(byte) => ChallengeError::Unexpected {
                byte,
                offset: self.pos,
            },
            None => ChallengeError::Truncated,
        }
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<&str, ChallengeError> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.unexpected());
        }
        // tchar is ASCII, so this cannot fail; map defensively anyway.
        std::str::from_utf8(&self.s[start..self.pos]).map_err(|_| ChallengeError::NotUtf8)
    }

    /// Whether a token followed by optional spaces and `=` (and not `==`, which would be
    /// token68 padding) starts here.
    fn param_ahead(&self) -> bool {
        let mut i = self.pos;
        while self.peek_at(i).is_some_and(is_tchar) {
            i += 1;
        }
        if i == self.pos {
            return false;
        }
        while matches!(self.peek_at(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        self.peek_at(i) == Some(b'=')
    }

    /// Whether a token68 (`abc==`, not `name=value`) starts here: token68 characters,
    /// optional `=` padding, then only spaces before a comma or the end.
    fn token68_ahead(&self) -> bool {
        let mut i = self.pos;
        while self.peek_at(i).is_some_and(is_token68_char) {
            i += 1;
        }
        if i == self.pos {
            return false;
        }
        while self.peek_at(i) == Some(b'=') {
            i += 1;
        }
        while matches!(self.peek_at(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        matches!(self.peek_at(i), None | Some(b','))
    }

    fn token68(&mut self) -> Result<String, ChallengeError> {
        let start = self.pos;
        while self.peek().is_some_and(is_token68_char) {
            self.pos += 1;
        }
        while self.peek() == Some(b'=') {
            self.pos += 1;
        }
        std::str::from_utf8(&self.s[start..self.pos])
            .map(str::to_owned)
            .map_err(|_| ChallengeError::NotUtf8)
    }

    fn quoted(&mut self) -> Result<String, ChallengeError> {
        // Opening quote.
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeError::Truncated),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => return Err(ChallengeError::Truncated),
                        Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                            out.push(b);
                            self.pos += 1;
                        }
                        Some(_) => return Err(self.unexpected()),
                    }
                }
                Some(b) if b == b'\t' || (b >= 0x20 && b != 0x7f) => {
                    out.push(b);
                    self.pos += 1;
                }
                Some(_) => return Err(self.unexpected()),
            }
        }
        String::from_utf8(out).map_err(|_| ChallengeError::NotUtf8)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn one(s: &str) -> Challenge {
        let mut v = parse(s.as_bytes()).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    #[test]
    fn docker_hub_bearer() {
        let c = one(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c.param("service"), Some("registry.docker.io"));
        assert_eq!(c.param("scope"), Some("repository:library/busybox:pull"));
    }

    #[test]
    fn scope_with_commas_inside_quotes() {
        let c =
            one(r#"Bearer realm="r", scope="repository:a/b:pull,push",error="insufficient_scope""#);
        assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"));
        assert_eq!(c.param("error"), Some("insufficient_scope"));
    }

    #[test]
    fn basic_and_case() {
        let c = one(r#"BASIC Realm="basic-realm""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.param("realm"), Some("basic-realm"));
        let c = one("Basic");
        assert_eq!(c.scheme, "basic");
        assert!(c.params.is_empty());
    }

    #[test]
    fn escapes_and_tokens() {
        let c = one(r#"Bearer realm="a\"b\\c", service=tok.en , x = "y""#);
        assert_eq!(c.param("realm"), Some(r#"a"b\c"#));
        assert_eq!(c.param("service"), Some("tok.en"));
        assert_eq!(c.param("x"), Some("y"));
    }

    #[test]
    fn several_challenges() {
        let v = parse(
            br#"Basic realm="x", Bearer realm="https://t/token",service="s", Negotiate abc=="#,
        )
        .unwrap();
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(v[0].scheme, "basic");
        assert_eq!(v[1].scheme, "bearer");
        assert_eq!(v[1].param("service"), Some("s"));
        assert_eq!(v[2].scheme, "negotiate");
        assert_eq!(v[2].token68.as_deref(), Some("abc=="));
        let v = parse(b"Negotiate, Basic realm=x").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].param("realm"), Some("x"));
    }

    #[test]
    fn hostile_inputs_are_refused() {
        for bad in [
            &br#"Bearer realm="unterminated"#[..],
            br#"Bearer realm="a", realm="b""#,
            b"Bearer realm=\"a\x00b\"",
            b"Bearer realm=\"a\\",
            b"Bearer realm=\"a\"junk",
            b"Bearer \x01",
            b"\"Bearer\"",
            b"",
            b" , ,",
            b"Bearer realm=\"\xff\xfe\"",
        ] {
            assert!(
                parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("Bearer realm=\"{}\"", "a".repeat(MAX_HEADER));
        assert_eq!(parse(long.as_bytes()), Err(ChallengeError::TooLong));
        let many: Vec<String> = (0..40).map(|i| format!("p{i}=v")).collect();
        let many = format!("Bearer {}", many.join(","));
        assert_eq!(parse(many.as_bytes()), Err(ChallengeError::TooMany));
        let many = vec!["Basic"; 40].join(", ");
        assert_eq!(parse(many.as_bytes()), Err(ChallengeError::TooMany));
    }

    #[test]
    fn token68_is_not_a_parameter() {
        // `name=` without a value reads as a token68, never as an empty parameter.
        for s in ["Bearer realm=", "Bearer realm", "Bearer abc=="] {
            let c = one(s);
            assert!(c.param("realm").is_none(), "{s}");
            assert!(c.token68.is_some(), "{s}");
        }
    }

    #[test]
    fn never_panics_on_prefixes() {
        // Every prefix of a tricky header parses or fails cleanly.
        let s = br#"Bearer realm="https://a/t?x=\"y\"",service=s, Basic realm=b, Negotiate ab=="#;
        for i in 0..=s.len() {
            let _ = parse(&s[..i]);
        }
        for b in 0u8..=255 {
            let _ = parse(&[b'B', b' ', b, b'=', b'"', b]);
        }
    }
}
