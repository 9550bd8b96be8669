use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_runtime::{Runtime, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the statistics once and exit.
    #[arg(long)]
    pub stats: bool,

    /// Interval between statistics (e.g. 5s, 500ms, 1m).
    #[arg(long, default_value = "5s")]
    pub interval: String,

    /// The container ID.
    pub id: String,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = num.parse().with_context(|| format!("bad interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("bad interval unit in {s:?}: use ms, s, m or h"),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        bail!("interval must be positive");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32> {
    let interval = parse_duration(&a.interval)?;
    let event = |rt: &Runtime| -> Result<String> {
        let stats = rt
            .stats(&a.id)
            .with_context(|| format!("reading statistics of {:?}", a.id))?;
        Ok(serde_json::json!({ "type": "stats", "id": a.id, "data": stats }).to_string())
    };
    if a.stats {
        println!("{}", event(rt)?);
        return Ok(0);
    }
    let mut ooms = rt.oom_kills(&a.id).unwrap_or(0);
    loop {
        if rt.state(&a.id)?.status == Status::Stopped {
            return Ok(0);
        }
        let now = rt.oom_kills(&a.id).unwrap_or(ooms);
        if now > ooms {
            println!("{}", serde_json::json!({ "type": "oom", "id": a.id }));
            ooms = now;
        }
        println!("{}", event(rt)?);
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
    }
}
