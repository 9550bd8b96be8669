//! `api-run SOCKET [IMAGE] [CMD...]`: the request sequence of `docker run --rm
//! --network none IMAGE CMD` (create, wait registered, start, wait's answer, delete)
//! over one keep-alive connection to a Docker Engine API socket, with nothing else: the
//! end-to-end cost of running a container through the API, for bench/daemon-run.sh.
//! Prints the exit code; exits with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

fn request(
    s: &mut UnixStream,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<()> {
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(head.as_bytes())
}

/// Reads one response: (status, body).
fn response(r: &mut BufReader<UnixStream>) -> std::io::Result<(u16, String)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut len, mut chunked) = (0usize, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let lower = l.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if status != 204 && status != 304 {
        let mut b = vec![0u8; len];
        r.read_exact(&mut b)?;
        body = b;
    }
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json.get(at..)?.trim_start();
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find(['"', ',', '}'])?;
    rest.get(..end)
}

fn run() -> Result<i32, String> {
    let mut args = std::env::args().skip(1);
    let sock = args
        .next()
        .ok_or("usage: api-run SOCKET [IMAGE] [CMD...]")?;
    let image = args.next().unwrap_or_else(|| "busybox".into());
    let mut cmd: Vec<String> = args.collect();
    if cmd.is_empty() {
        cmd.push("true".into());
    }
    let cmd_json = cmd
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(",");
    let s = UnixStream::connect(&sock).map_err(|e| format!("connect {sock}: {e}"))?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    let io = |e: std::io::Error| e.to_string();
    let body = format!("{{\"Image\":\"{image}\",\"Cmd\":[{cmd_json}],\"HostConfig\":{{\"NetworkMode\":\"none\",\"AutoRemove\":false}}}}");
    request(&mut w, "POST", "/v1.44/containers/create", Some(&body)).map_err(io)?;
    let (st, b) = response(&mut r).map_err(io)?;
    if st != 201 {
        return Err(format!("create: {st} {b}"));
    }
    let id = field(&b, "Id").ok_or("create: no Id")?.to_owned();
    // The wait goes on a second connection (its answer comes at the exit).
    let ws = UnixStream::connect(&sock).map_err(|e| format!("connect {sock}: {e}"))?;
    let mut ww = ws.try_clone().map_err(|e| e.to_string())?;
    let mut wr = BufReader::new(ws);
    request(
        &mut ww,
        "POST",
        &format!("/v1.44/containers/{id}/wait?condition=next-exit"),
        None,
    )
    .map_err(io)?;
    request(
        &mut w,
        "POST",
        &format!("/v1.44/containers/{id}/start"),
        None,
    )
    .map_err(io)?;
    let (st, b) = response(&mut r).map_err(io)?;
    if st != 204 {
        return Err(format!("start: {st} {b}"));
    }
    let (st, b) = response(&mut wr).map_err(io)?;
    if st != 200 {
        return Err(format!("wait: {st} {b}"));
    }
    let code: i32 = field(&b, "StatusCode")
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(-1);
    request(
        &mut w,
        "DELETE",
        &format!("/v1.44/containers/{id}?force=1"),
        None,
    )
    .map_err(io)?;
    let (st, b) = response(&mut r).map_err(io)?;
    if st != 204 {
        return Err(format!("delete: {st} {b}"));
    }
    Ok(code)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
        Err(e) => {
            eprintln!("api-run: {e}");
            ExitCode::from(125)
        }
    }
}
