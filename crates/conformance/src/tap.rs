//! A small TAP (Test Anything Protocol) writer and reader.
//!
//! The checker prints one line per check on its standard output:
//!
//! ```text
//! ok 1 - process.cwd is /tmp
//! not ok 2 - hostname is berth # expected "berth", found "runc"
//! ok 3 - apparmor profile applied # SKIP apparmor is not enabled
//! 1..3
//! ```
//!
//! The driver reads those lines back with [`parse`]. Descriptions never contain
//! `#` (it is replaced), so the first ` # ` on a line starts the directive or the
//! diagnostic.

use std::fmt;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The check passed.
    Pass,
    /// The check failed.
    Fail,
    /// The check could not be run here (the reason says why).
    Skip,
}

/// One TAP test line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapLine {
    /// Pass, fail or skip.
    pub status: Status,
    /// What was checked.
    pub description: String,
    /// Why it failed or was skipped; empty when it passed.
    pub detail: String,
}

impl TapLine {
    /// A passing line.
    pub fn pass(description: impl Into<String>) -> Self {
        Self::new(Status::Pass, description, String::new())
    }

    /// A failing line with the reason.
    pub fn fail(description: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Status::Fail, description, detail)
    }

    /// A skipped line with the reason.
    pub fn skip(description: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(Status::Skip, description, reason)
    }

    /// A line that passes when `ok` holds and fails with `detail` otherwise.
    pub fn check(ok: bool, description: impl Into<String>, detail: impl Into<String>) -> Self {
        if ok {
            Self::pass(description)
        } else {
            Self::fail(description, detail)
        }
    }

    fn new(status: Status, description: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            description: sanitize(&description.into()),
            detail: sanitize(&detail.into()),
        }
    }

    /// Formats the line as TAP with test number `number`.
    pub fn to_tap(&self, number: usize) -> String {
        match self.status {
            Status::Pass => format!("ok {number} - {}", self.description),
            Status::Skip => format!("ok {number} - {} # SKIP {}", self.description, self.detail),
            Status::Fail if self.detail.is_empty() => {
                format!("not ok {number} - {}", self.description)
            }
            Status::Fail => format!("not ok {number} - {} # {}", self.description, self.detail),
        }
    }
}

impl fmt::Display for TapLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Status::Pass => write!(f, "ok - {}", self.description),
            Status::Skip => write!(f, "skip - {} ({})", self.description, self.detail),
            Status::Fail => write!(f, "FAIL - {}: {}", self.description, self.detail),
        }
    }
}

/// Replaces characters that would break the one-line TAP format.
fn sanitize(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '#' => '%',
            c => c,
        })
        .collect();
    // Bound what a hostile or broken container can make us print.
    if out.len() > 512 {
        let mut cut = 512;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// The result of reading a TAP stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The test lines in order.
    pub lines: Vec<TapLine>,
    /// The plan (`1..N`), when one was printed.
    pub plan: Option<usize>,
}

/// Parses TAP output. Lines that are not test lines or a plan are ignored.
pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for raw in text.lines() {
        let line = raw.trim_end();
        if let Some(count) = line.strip_prefix("1..") {
            parsed.plan = count.trim().parse().ok();
            continue;
        }
        let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("not ok ") {
            (false, rest)
        } else {
            continue;
        };
        // Skip the test number and the optional " - ".
        let rest = rest
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        let rest = rest.strip_prefix("- ").unwrap_or(rest);
        let (description, directive) = match rest.split_once(" # ") {
            Some((d, dir)) => (d.to_string(), dir.to_string()),
            None => (rest.to_string(), String::new()),
        };
        let upper = directive.to_ascii_uppercase();
        let line = if ok && upper.starts_with("SKIP") {
            let reason = directive.get(4..).unwrap_or("").trim().to_string();
            TapLine::skip(description, reason)
        } else if ok {
            TapLine::pass(description)
        } else {
            TapLine::fail(description, directive)
        };
        parsed.lines.push(line);
    }
    parsed
}

/// Renders lines as a complete TAP stream with a trailing plan.
pub fn render(lines: &[TapLine]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&line.to_tap(i + 1));
        out.push('\n');
    }
    out.push_str(&format!("1..{}\n", lines.len()));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let lines = vec![
            TapLine::pass("cwd is /"),
            TapLine::fail("hostname is a", "found #b\nx"),
            TapLine::skip("apparmor", "not enabled"),
        ];
        let text = render(&lines);
        assert!(text.contains("not ok 2 - hostname is a # found %b x"));
        let parsed = parse(&text);
        assert_eq!(parsed.plan, Some(3));
        assert_eq!(parsed.lines.len(), 3);
        assert_eq!(parsed.lines[0], lines[0]);
        assert_eq!(parsed.lines[1].status, Status::Fail);
        assert_eq!(parsed.lines[1].detail, "found %b x");
        assert_eq!(parsed.lines[2], lines[2]);
    }

    #[test]
    fn parse_ignores_noise() {
        let parsed = parse("hello\n# comment\nok 1 - a\nBail out!\n");
        assert_eq!(parsed.lines, vec![TapLine::pass("a")]);
        assert_eq!(parsed.plan, None);
    }

    #[test]
    fn long_lines_are_bounded() {
        let line = TapLine::fail("x".repeat(10_000), "y");
        assert!(line.description.len() < 600);
    }
}
