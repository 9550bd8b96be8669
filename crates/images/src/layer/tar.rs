//! A bounded tar stream reader and a small deterministic tar writer.
//!
//! The reader parses ustar, GNU and PAX headers itself (using the `tar` crate only to
//! decode a header block's fields) because the `tar` crate reads GNU long names and PAX
//! headers of any declared size into memory. Every byte read goes through [`Input`],
//! which hashes the stream (the layer's diff_id) and stops it at
//! [`Limits::max_input_bytes`].
//!
//! The writer emits POSIX.1-2001 (PAX) archives the way Docker does: ustar headers,
//! with a PAX header in front of an entry only when it needs one (long names, large
//! ids or sizes, extended attributes as `SCHILY.xattr.*`).

use std::io::{self, Read, Write};

use super::error::{display_name, LayerError, LimitKind};
use super::options::Limits;
use crate::digest::{Algorithm, Digest, Verifier};

const BLOCK: usize = 512;
const BLOCK_U64: u64 = 512;
/// Extension headers accepted in a row before an entry.
const MAX_EXTENSION_HEADERS: u64 = 16;

/// The kind of a tar entry Berth applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Regular,
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
}

/// One entry's header, with PAX and GNU extensions folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Raw name (not normalised).
    pub name: Vec<u8>,
    /// Raw link target (symlinks and hard links), empty otherwise.
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Permission and special bits (`& 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// Size of the contents that follow in the stream.
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` records: (name, value).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The tar stream as read: hashed, counted and bounded.
pub(crate) struct Input<R> {
    inner: R,
    hasher: Verifier,
    consumed: u64,
    max: u64,
    over_limit: bool,
}

impl<R: Read> Input<R> {
    pub(crate) fn new(inner: R, max: u64) -> Input<R> {
        Input {
            inner,
            hasher: Verifier::new(Algorithm::Sha256),
            consumed: 0,
            max,
            over_limit: false,
        }
    }

    /// Reads some bytes (0 only at end of stream), retrying interrupted reads.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let allowed = self.max.saturating_sub(self.consumed);
        let mut probe = [0u8; 1];
        let target: &mut [u8] = if allowed == 0 {
            // Anything more than the bound is an error; find out whether there is more.
            &mut probe
        } else {
            let n = usize::try_from(allowed)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            match buf.get_mut(..n) {
                Some(b) => b,
                None => return Ok(0),
            }
        };
        let n = loop {
            match self.inner.read(target) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if allowed == 0 {
            if n > 0 {
                self.over_limit = true;
                return Err(io::Error::other("layer stream exceeds the input limit"));
            }
            return Ok(0);
        }
        if let Some(read) = target.get(..n) {
            self.hasher.update(read);
        }
        self.consumed = self.consumed.saturating_add(n as u64);
        Ok(n)
    }

    /// Bytes consumed so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The sha256 of everything consumed.
    pub(crate) fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

/// Parses a tar stream entry by entry. After [`TarReader::next`] returns an entry, its
/// contents can be read with [`TarReader::read_data`]; whatever is not read is skipped
/// by the next call.
pub(crate) struct TarReader<R> {
    input: Input<R>,
    limits: Limits,
    /// Contents bytes of the current entry not read yet.
    remaining: u64,
    /// Padding bytes after the current entry's contents.
    padding: u64,
    /// Name of the current (or last) entry, for error messages.
    last_name: Vec<u8>,
    done: bool,
}

#[derive(Default)]
struct Pax {
    path: Option<Vec<u8>>,
    linkpath: Option<Vec<u8>>,
    size: Option<u64>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<(i64, u32)>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    sparse: bool,
}

fn padding_of(size: u64) -> u64 {
    (BLOCK_U64 - size % BLOCK_U64) % BLOCK_U64
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R, limits: Limits) -> TarReader<R> {
        TarReader {
            input: Input::new(inner, limits.max_input_bytes),
            limits,
            remaining: 0,
            padding: 0,
            last_name: Vec::new(),
            done: false,
        }
    }

    /// The name of the current (or last) entry, for error messages.
    pub(crate) fn entry_name(&self) -> String {
        display_name(&self.last_name)
    }

    /// Bytes of stream consumed so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.input.consumed()
    }

    /// The sha256 of the whole stream (call after `next` returned `None`).
    pub(crate) fn finish(self) -> Digest {
        self.input.finish()
    }

    fn read_error(&self, source: io::Error) -> LayerError {
        if self.input.over_limit {
            LayerError::Limit {
                entry: self.entry_name(),
                limit: LimitKind::InputBytes,
                value: self.input.consumed().saturating_add(1),
                max: self.limits.max_input_bytes,
            }
        } else {
            LayerError::Read {
                entry: self.entry_name(),
                offset: self.input.consumed(),
                source,
            }
        }
    }

    fn truncated(&self) -> LayerError {
        LayerError::Truncated {
            entry: self.entry_name(),
            offset: self.input.consumed(),
        }
    }

    fn header_error(&self, offset: u64, reason: &'static str) -> LayerError {
        LayerError::Header {
            entry: self.entry_name(),
            offset,
            reason,
        }
    }

    fn limit(&self, limit: LimitKind, value: u64, max: u64) -> LayerError {
        LayerError::Limit {
            entry: self.entry_name(),
            limit,
            value,
            max,
        }
    }

    /// Fills `buf` completely; returns the bytes read (less only at end of stream).
    fn read_full(&mut self, buf: &mut [u8]) -> Result<usize, LayerError> {
        let mut filled = 0;
        while let Some(rest) = buf.get_mut(filled..) {
            if rest.is_empty() {
                break;
            }
            let n = self.input.read_some(rest).map_err(|e| self.read_error(e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }

    /// Reads and drops `n` bytes.
    fn skip(&mut self, mut n: u64) -> Result<(), LayerError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let got = self.read_full(chunk)?;
            if got < want {
                return Err(self.truncated());
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads up to `buf.len()` bytes of the current entry's contents; 0 at its end.
    pub(crate) fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, LayerError> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let got = self.read_full(chunk)?;
        if got < want {
            return Err(self.truncated());
        }
        self.remaining -= got as u64;
        Ok(got)
    }

    /// Reads the whole contents of an extension header (already bounded by the caller).
    fn read_small(&mut self, size: u64) -> Result<Vec<u8>, LayerError> {
        let len = usize::try_from(size).map_err(|_| self.truncated())?;
        let mut data = vec![0u8; len];
        if self.read_full(&mut data)? < len {
            return Err(self.truncated());
        }
        self.skip(padding_of(size))?;
        Ok(data)
    }

    /// Reads the stream to its end after the end-of-archive marker, so that the digest
    /// covers everything (bounded by the input limit).
    fn drain(&mut self) -> Result<(), LayerError> {
        let mut buf = vec![0u8; 64 << 10];
        while self.read_full(&mut buf)? > 0 {}
        Ok(())
    }

    /// The next entry, or `None` at the end of the archive.
    pub(crate) fn next(&mut self) -> Result<Option<Entry>, LayerError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.remaining.saturating_add(self.padding);
        self.skip(rest)?;
        self.remaining = 0;
        self.padding = 0;

        let mut pax = Pax::default();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut extensions = 0u64;
        loop {
            let offset = self.input.consumed();
            let mut block = [0u8; BLOCK];
            let n = self.read_full(&mut block)?;
            if n == 0 && extensions == 0 {
                // End of stream without an end-of-archive marker: accepted, like tar(1).
                self.done = true;
                return Ok(None);
            }
            if n < BLOCK {
                return Err(self.truncated());
            }
            if block.iter().all(|b| *b == 0) {
                if extensions > 0 {
                    return Err(self.header_error(offset, "extension header without an entry"));
                }
                self.done = true;
                self.drain()?;
                return Ok(None);
            }
            check_checksum(&block).map_err(|r| self.header_error(offset, r))?;
            let header = tar::Header::from_byte_slice(&block);
            let typeflag = block.get(156).copied().unwrap_or(0);
            let is_extension = matches!(typeflag, b'x' | b'g' | b'L' | b'K');
            let field = |at: usize, len: usize| block.get(at..at + len).unwrap_or_default();
            let mut size = parse_numeric(field(124, 12))
                .ok_or_else(|| self.header_error(offset, "bad size field"))?;
            if !is_extension {
                if let Some(s) = pax.size {
                    size = s;
                }
            }
            if is_extension {
                extensions += 1;
                if extensions > MAX_EXTENSION_HEADERS {
                    return Err(self.limit(
                        LimitKind::ExtensionHeaders,
                        extensions,
                        MAX_EXTENSION_HEADERS,
                    ));
                }
                match typeflag {
                    b'x' | b'g' => {
                        if size > self.limits.max_pax_size {
                            return Err(self.limit(
                                LimitKind::PaxHeaderSize,
                                size,
                                self.limits.max_pax_size,
                            ));
                        }
                        let data = self.read_small(size)?;
                        // Global headers ('g') are read and ignored, as Docker does.
                        if typeflag == b'x' {
                            self.parse_pax(&data, &mut pax, offset)?;
                        }
                    }
                    _ => {
                        // GNU long name ('L') or long link target ('K'): NUL-terminated.
                        let max = self.limits.max_path_len as u64 + 1;
                        if size > max {
                            return Err(self.limit(LimitKind::PathLength, size, max - 1));
                        }
                        let mut data = self.read_small(size)?;
                        if let Some(nul) = data.iter().position(|b| *b == 0) {
                            data.truncate(nul);
                        }
                        if typeflag == b'L' {
                            long_name = Some(data);
                        } else {
                            long_link = Some(data);
                        }
                    }
                }
                continue;
            }

            let name = pax
                .path
                .take()
                .or(long_name.take())
                .unwrap_or_else(|| header.path_bytes().into_owned());
            self.last_name = name.clone();
            if name.len() > self.limits.max_path_len {
                return Err(self.limit(
                    LimitKind::PathLength,
                    name.len() as u64,
                    self.limits.max_path_len as u64,
                ));
            }
            let link = pax
                .linkpath
                .take()
                .or(long_link.take())
                .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                .unwrap_or_default();
            if link.len() > self.limits.max_path_len {
                return Err(self.limit(
                    LimitKind::PathLength,
                    link.len() as u64,
                    self.limits.max_path_len as u64,
                ));
            }
            let unsupported = |kind: u8| LayerError::UnsupportedEntry {
                entry: display_name(&name),
                kind: char::from(kind),
            };
            if pax.sparse {
                return Err(unsupported(b'S'));
            }
            let kind = match typeflag {
                b'0' | b'7' => Kind::Regular,
                // Pre-POSIX archives: a name ending in '/' is a directory.
                0 if name.ends_with(b"/") => Kind::Dir,
                0 => Kind::Regular,
                b'1' => Kind::HardLink,
                b'2' => Kind::Symlink,
                b'3' => Kind::Char,
                b'4' => Kind::Block,
                b'5' => Kind::Dir,
                b'6' => Kind::Fifo,
                other => return Err(unsupported(other)),
            };
            let mode = parse_numeric(field(100, 8))
                .ok_or_else(|| self.header_error(offset, "bad mode field"))?;
            let mode = u32::try_from(mode & 0o7777).unwrap_or(0);
            let uid = match pax.uid {
                Some(u) => u,
                None => parse_numeric(field(108, 8))
                    .ok_or_else(|| self.header_error(offset, "bad uid field"))?,
            };
            let gid = match pax.gid {
                Some(g) => g,
                None => parse_numeric(field(116, 8))
                    .ok_or_else(|| self.header_error(offset, "bad gid field"))?,
            };
            let mtime = match pax.mtime {
                Some(t) => t,
                None => {
                    let secs = parse_numeric(field(136, 12))
                        .ok_or_else(|| self.header_error(offset, "bad mtime field"))?;
                    (i64::try_from(secs).unwrap_or(i64::MAX), 0)
                }
            };
            let (dev_major, dev_minor) = if matches!(kind, Kind::Char | Kind::Block) {
                let major = parse_numeric(field(329, 8))
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| self.header_error(offset, "bad device major field"))?;
                let minor = parse_numeric(field(337, 8))
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| self.header_error(offset, "bad device minor field"))?;
                (major, minor)
            } else {
                (0, 0)
            };
            self.remaining = size;
            self.padding = padding_of(size);
            return Ok(Some(Entry {
                name,
                link,
                kind,
                mode,
                uid,
                gid,
                mtime,
                size,
                dev_major,
                dev_minor,
                xattrs: std::mem::take(&mut pax.xattrs),
            }));
        }
    }

    /// Parses PAX records (`"%d %s=%s\n"`) into `pax`.
    fn parse_pax(&self, mut data: &[u8], pax: &mut Pax, offset: u64) -> Result<(), LayerError> {
        let bad = |r| self.header_error(offset, r);
        while !data.is_empty() {
            let space = data
                .iter()
                .take(20)
                .position(|b| *b == b' ')
                .ok_or_else(|| bad("PAX record without a length"))?;
            let len = parse_decimal(data.get(..space).unwrap_or_default())
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(|| bad("bad PAX record length"))?;
            if len <= space + 1 || len > data.len() {
                return Err(bad("bad PAX record length"));
            }
            let record = data.get(space + 1..len).unwrap_or_default();
            let record = record
                .strip_suffix(b"\n")
                .ok_or_else(|| bad("PAX record without a newline"))?;
            let eq = record
                .iter()
                .position(|b| *b == b'=')
                .ok_or_else(|| bad("PAX record without '='"))?;
            let key = record.get(..eq).unwrap_or_default();
            let value = record.get(eq + 1..).unwrap_or_default();
            match key {
                b"path" => pax.path = (!value.is_empty()).then(|| value.to_vec()),
                b"linkpath" => pax.linkpath = (!value.is_empty()).then(|| value.to_vec()),
                b"size" => {
                    pax.size = Some(parse_decimal(value).ok_or_else(|| bad("bad PAX size"))?)
                }
                b"uid" => pax.uid = Some(parse_decimal(value).ok_or_else(|| bad("bad PAX uid"))?),
                b"gid" => pax.gid = Some(parse_decimal(value).ok_or_else(|| bad("bad PAX gid"))?),
                b"mtime" => {
                    pax.mtime = Some(parse_time(value).ok_or_else(|| bad("bad PAX mtime"))?)
                }
                k if k.starts_with(b"SCHILY.xattr.") => {
                    let name = k.get(13..).unwrap_or_default();
                    if name.is_empty() || name.len() > 255 || name.contains(&0) {
                        return Err(bad("bad extended attribute name"));
                    }
                    if value.len() > self.limits.max_xattr_size {
                        return Err(self.limit(
                            LimitKind::XattrSize,
                            value.len() as u64,
                            self.limits.max_xattr_size as u64,
                        ));
                    }
                    pax.xattrs.retain(|(n, _)| n != name);
                    if pax.xattrs.len() >= self.limits.max_xattrs {
                        return Err(self.limit(
                            LimitKind::XattrCount,
                            pax.xattrs.len() as u64 + 1,
                            self.limits.max_xattrs as u64,
                        ));
                    }
                    pax.xattrs.push((name.to_vec(), value.to_vec()));
                }
                k if k.starts_with(b"GNU.sparse.") => pax.sparse = true,
                _ => {}
            }
            data = data.get(len..).unwrap_or_default();
        }
        Ok(())
    }
}

fn check_checksum(block: &[u8; BLOCK]) -> Result<(), &'static str> {
    let field = block.get(148..156).unwrap_or_default();
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if text.is_empty() {
        return Err("bad checksum field");
    }
    let mut expected: i64 = 0;
    for d in text {
        expected = expected
            .checked_mul(8)
            .and_then(|e| e.checked_add(i64::from(d - b'0')))
            .ok_or("bad checksum field")?;
    }
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(i8::from_ne_bytes([b]));
    }
    if expected == unsigned || expected == signed {
        Ok(())
    } else {
        Err("header checksum mismatch")
    }
}

/// Parses a numeric header field: octal (leading spaces or zeros, ended by NUL or space;
/// an empty field is 0) or GNU base-256 (high bit of the first byte set; negative values
/// refused).
fn parse_numeric(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first & 0x40 != 0 {
            return None;
        }
        let mut v: u64 = u64::from(first & 0x3f);
        for b in field.get(1..)? {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let digits = field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| **b != 0 && **b != b' ');
    let mut v: u64 = 0;
    for b in digits {
        if !(b'0'..=b'7').contains(b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Parses a PAX time: `[-]seconds[.fraction]`.
fn parse_time(s: &[u8]) -> Option<(i64, u32)> {
    let (neg, s) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = match s.iter().position(|b| *b == b'.') {
        Some(i) => (s.get(..i)?, s.get(i + 1..)?),
        None => (s, &b""[..]),
    };
    let secs = i64::try_from(parse_decimal(whole)?).ok()?;
    let mut nanos: u32 = 0;
    for i in 0..9 {
        let d = match frac.get(i) {
            Some(b) if b.is_ascii_digit() => u32::from(b - b'0'),
            Some(_) => return None,
            None => 0,
        };
        nanos = nanos * 10 + d;
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if neg {
        if nanos > 0 {
            Some((-secs - 1, 1_000_000_000 - nanos))
        } else {
            Some((-secs, 0))
        }
    } else {
        Some((secs, nanos))
    }
}

/// Everything written to a stream: counted and hashed.
pub(crate) struct Output<W> {
    inner: W,
    hasher: Verifier,
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(written) = buf.get(..n) {
            self.hasher.update(written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One entry to write.
pub(crate) struct WriteEntry<'a> {
    /// Name, without a trailing `/` (added for directories).
    pub name: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub link: &'a [u8],
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// Writes a PAX tar stream.
pub(crate) struct TarWriter<W> {
    out: Output<W>,
}

const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
const MAX_MTIME: i64 = 0o77777777777;

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(inner: W) -> TarWriter<W> {
        TarWriter {
            out: Output {
                inner,
                hasher: Verifier::new(Algorithm::Sha256),
            },
        }
    }

    /// Writes an entry's header (and PAX header when needed). For regular files, the
    /// caller then writes exactly `size` bytes with [`TarWriter::write_data`].
    pub(crate) fn write_header(&mut self, e: &WriteEntry<'_>) -> io::Result<()> {
        let mut name = e.name.to_vec();
        if e.kind == Kind::Dir {
            name.push(b'/');
        }
        let uid = u64::from(e.uid);
        let gid = u64::from(e.gid);
        let mtime_fits = (0..=MAX_MTIME).contains(&e.mtime);
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if name.len() > 100 {
            records.push((b"path".to_vec(), name.clone()));
        }
        if e.link.len() > 100 {
            records.push((b"linkpath".to_vec(), e.link.to_vec()));
        }
        if e.size > MAX_OCTAL_11 {
            records.push((b"size".to_vec(), e.size.to_string().into_bytes()));
        }
        if uid > MAX_OCTAL_7 {
            records.push((b"uid".to_vec(), uid.to_string().into_bytes()));
        }
        if gid > MAX_OCTAL_7 {
            records.push((b"gid".to_vec(), gid.to_string().into_bytes()));
        }
        if !mtime_fits {
            records.push((b"mtime".to_vec(), e.mtime.to_string().into_bytes()));
        }
        for (k, v) in e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            records.push((key, v.clone()));
        }
        if !records.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &records {
                data.extend_from_slice(&pax_record(k, v));
            }
            let mut h = UstarHeader::new();
            h.name(b"././@PaxHeader");
            h.octal(100, 8, 0o644);
            h.octal(124, 12, data.len() as u64);
            h.set_type(b'x');
            self.out.write_all(&h.finish())?;
            self.out.write_all(&data)?;
            self.pad(data.len() as u64)?;
        }
        let mut h = UstarHeader::new();
        h.name(name.get(..name.len().min(100)).unwrap_or_default());
        h.octal(100, 8, u64::from(e.mode & 0o7777));
        h.octal(108, 8, if uid > MAX_OCTAL_7 { 0 } else { uid });
        h.octal(116, 8, if gid > MAX_OCTAL_7 { 0 } else { gid });
        h.octal(124, 12, if e.size > MAX_OCTAL_11 { 0 } else { e.size });
        h.octal(
            136,
            12,
            if mtime_fits {
                u64::try_from(e.mtime).unwrap_or(0)
            } else {
                0
            },
        );
        h.set_type(match e.kind {
            Kind::Regular => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        });
        h.bytes(
            157,
            100,
            e.link.get(..e.link.len().min(100)).unwrap_or_default(),
        );
        if matches!(e.kind, Kind::Char | Kind::Block) {
            h.octal(329, 8, u64::from(e.dev_major));
            h.octal(337, 8, u64::from(e.dev_minor));
        }
        self.out.write_all(&h.finish())
    }

    /// Writes file contents, then the padding to the next block.
    pub(crate) fn write_data(&mut self, data: &mut dyn Read, size: u64) -> io::Result<()> {
        let mut left = size;
        let mut buf = vec![0u8; 128 << 10];
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let n = match data.read(chunk) {
                Ok(0) => {
                    // The file shrank while being read: pad with zeros to keep the
                    // archive well-formed.
                    chunk.fill(0);
                    want
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(chunk.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let pad = usize::try_from(padding_of(size)).unwrap_or(0);
        self.out.write_all(&[0u8; BLOCK][..pad.min(BLOCK)])
    }

    /// Writes the end-of-archive marker; returns the writer and the stream's sha256.
    pub(crate) fn finish(mut self) -> io::Result<(W, Digest)> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        self.out.flush()?;
        Ok((self.out.inner, self.out.hasher.finish()))
    }
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    // The length counts itself: find the number of digits that is consistent.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut r = len.to_string().into_bytes();
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

struct UstarHeader([u8; BLOCK]);

impl UstarHeader {
    fn new() -> UstarHeader {
        let mut h = UstarHeader([0u8; BLOCK]);
        h.bytes(257, 6, b"ustar\0");
        h.bytes(263, 2, b"00");
        h
    }

    fn bytes(&mut self, at: usize, width: usize, value: &[u8]) {
        if let Some(field) = self.0.get_mut(at..at + width) {
            for (slot, b) in field.iter_mut().zip(value) {
                *slot = *b;
            }
        }
    }

    fn name(&mut self, name: &[u8]) {
        self.bytes(0, 100, name);
    }

    /// Zero-padded octal with a terminating NUL; the caller guarantees the value fits.
    fn octal(&mut self, at: usize, width: usize, value: u64) {
        let digits = width - 1;
        let s = format!("{value:0digits$o}");
        let s = s.as_bytes();
        let start = s.len().saturating_sub(digits);
        self.bytes(at, digits, s.get(start..).unwrap_or_default());
    }

    fn set_type(&mut self, t: u8) {
        if let Some(slot) = self.0.get_mut(156) {
            *slot = t;
        }
    }

    fn finish(mut self) -> [u8; BLOCK] {
        self.bytes(148, 8, b"        ");
        let sum: u64 = self.0.iter().map(|b| u64::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        self.bytes(148, 8, s.as_bytes());
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn entry<'a>(name: &'a [u8], kind: Kind, size: u64) -> WriteEntry<'a> {
        WriteEntry {
            name,
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            size,
            link: b"",
            dev_major: 0,
            dev_minor: 0,
            xattrs: &[],
        }
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        let r = pax_record(b"path", b"x");
        assert_eq!(r, b"9 path=x\n");
        let r = pax_record(b"k", &[b'v'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 "));
        let r = pax_record(b"k", &[b'v'; 93]);
        assert_eq!(r.len(), 99);
    }

    #[test]
    fn parses_numeric_fields() {
        assert_eq!(parse_numeric(b"0000644\0"), Some(0o644));
        assert_eq!(parse_numeric(b"  644 \0"), Some(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_numeric(&[0xff; 8]), None);
        assert_eq!(parse_numeric(b"0009\0"), None);
        assert_eq!(
            parse_numeric(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time(b"12"), Some((12, 0)));
        assert_eq!(parse_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_time(b"x"), None);
        assert_eq!(parse_time(b"1.x"), None);
    }

    #[test]
    fn writer_output_reads_back() {
        let long = vec![b'n'; 300];
        let xattrs = vec![(b"user.k".to_vec(), b"v\0\x01".to_vec())];
        let mut w = TarWriter::new(Vec::new());
        let mut e = entry(&long, Kind::Regular, 3);
        e.uid = 70_000_000;
        e.xattrs = &xattrs;
        w.write_header(&e).unwrap();
        w.write_data(&mut &b"abc"[..], 3).unwrap();
        let mut l = entry(b"l", Kind::Symlink, 0);
        let target = vec![b't'; 150];
        l.link = &target;
        w.write_header(&l).unwrap();
        w.write_header(&entry(b"d", Kind::Dir, 0)).unwrap();
        let (bytes, digest) = w.finish().unwrap();
        assert_eq!(digest, Digest::sha256_of(&bytes));

        let mut r = TarReader::new(&bytes[..], Limits::default());
        let a = r.next().unwrap().unwrap();
        assert_eq!(a.name, long);
        assert_eq!(a.uid, 70_000_000);
        assert_eq!(a.xattrs, xattrs);
        let mut buf = [0u8; 16];
        assert_eq!(r.read_data(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let b = r.next().unwrap().unwrap();
        assert_eq!((b.kind, b.link), (Kind::Symlink, target));
        let c = r.next().unwrap().unwrap();
        assert_eq!((c.kind, c.name), (Kind::Dir, b"d/".to_vec()));
        assert!(r.next().unwrap().is_none());
        assert_eq!(r.finish(), digest);
    }

    #[test]
    fn reads_what_the_tar_crate_writes() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o4755);
        h.set_mtime(42);
        h.set_entry_type(tar::EntryType::Regular);
        let long = "x/".repeat(80) + "file";
        b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
        let bytes = b.into_inner().unwrap();
        let mut r = TarReader::new(&bytes[..], Limits::default());
        let e = r.next().unwrap().unwrap();
        assert_eq!(e.name, long.as_bytes());
        assert_eq!((e.mode, e.mtime, e.size), (0o4755, (42, 0), 5));
        assert!(r.next().unwrap().is_none());
    }

    #[test]
    fn bounds_extension_headers() {
        let limits = Limits {
            max_pax_size: 100,
            ..Limits::default()
        };
        let mut w = TarWriter::new(Vec::new());
        let xattrs = vec![(b"user.big".to_vec(), vec![b'v'; 200])];
        let mut e = entry(b"f", Kind::Regular, 0);
        e.xattrs = &xattrs;
        w.write_header(&e).unwrap();
        let (bytes, _) = w.finish().unwrap();
        let mut r = TarReader::new(&bytes[..], limits);
        assert!(matches!(
            r.next(),
            Err(LayerError::Limit {
                limit: LimitKind::PaxHeaderSize,
                ..
            })
        ));
    }

    #[test]
    fn bounds_input() {
        let mut w = TarWriter::new(Vec::new());
        for i in 0..10 {
            w.write_header(&entry(format!("f{i}").as_bytes(), Kind::Regular, 0))
                .unwrap();
        }
        let (bytes, _) = w.finish().unwrap();
        let limits = Limits {
            max_input_bytes: 2048,
            ..Limits::default()
        };
        let mut r = TarReader::new(&bytes[..], limits);
        let err = loop {
            match r.next() {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("limit not hit"),
                Err(e) => break e,
            }
        };
        assert!(matches!(
            err,
            LayerError::Limit {
                limit: LimitKind::InputBytes,
                ..
            }
        ));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        for data in [&[0xffu8; 512][..], &[1u8; 1000][..], &[0u8; 100][..], b""] {
            let mut r = TarReader::new(data, Limits::default());
            let _ = r.next();
        }
        let mut bad = [0u8; 512];
        bad[0] = b'a';
        let mut r = TarReader::new(&bad[..], Limits::default());
        assert!(matches!(r.next(), Err(LayerError::Header { .. })));
    }
}
