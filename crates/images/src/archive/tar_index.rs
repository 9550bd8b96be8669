//! A bounded index of a (hostile) tar archive on a seekable file.
//!
//! One pass over the headers only: each member's contents are skipped by offset, not
//! read, so indexing a multi-gigabyte `docker save` output costs a few reads per
//! member. Members are then read by offset with `pread(2)` (any number of readers at
//! once, no shared file position), exactly once each.
//!
//! Header fields are decoded with the `tar` crate's [`tar::Header`]; extension headers
//! (PAX `x`, GNU long names `L`/`K`) are read here, each bounded before it is read,
//! because the `tar` crate reads them whole whatever their declared size.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use super::error::{display_name, ArchiveError};
use super::path;
use super::ArchiveLimits;

const BLOCK: u64 = 512;
/// Extension headers accepted in a row before one member.
const MAX_EXTENSION_HEADERS: u32 = 8;
/// Most symlinks followed to resolve one member.
const MAX_SYMLINK_HOPS: usize = 16;

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Member {
    /// A regular file: its contents are `size` bytes at `offset`.
    File {
        /// Offset of the contents in the archive.
        offset: u64,
        /// Size of the contents.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link to another member (target as written).
    Symlink(String),
    /// A hard link to an earlier member (normalised path from the archive root).
    HardLink(String),
}

/// The members of a tar archive, by normalised name.
#[derive(Debug)]
pub(crate) struct TarIndex {
    file: File,
    len: u64,
    members: BTreeMap<String, Member>,
    max_path_len: usize,
}

/// Extension records that apply to the next member.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    count: u32,
}

fn header_err(offset: u64, reason: &'static str) -> ArchiveError {
    ArchiveError::TarHeader { offset, reason }
}

fn round_up(size: u64) -> Option<u64> {
    size.checked_add(BLOCK - 1).map(|s| s / BLOCK * BLOCK)
}

/// Checks a header block's checksum (unsigned or signed sum, as tar(1) accepts).
fn checksum_ok(block: &[u8; 512]) -> bool {
    let field = block.get(148..156).unwrap_or_default();
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    if digits.is_empty() {
        return false;
    }
    let mut expected: i64 = 0;
    for d in digits {
        match expected
            .checked_mul(8)
            .and_then(|e| e.checked_add(i64::from(d - b'0')))
        {
            Some(e) => expected = e,
            None => return false,
        }
    }
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(i8::from_ne_bytes([b]));
    }
    expected == unsigned || expected == signed
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl TarIndex {
    /// Indexes the tar archive in `file`.
    pub(crate) fn build(file: File, limits: &ArchiveLimits) -> Result<TarIndex, ArchiveError> {
        let len = file
            .metadata()
            .map_err(|source| ArchiveError::Read {
                file: String::new(),
                source,
            })?
            .len();
        let mut index = TarIndex {
            file,
            len,
            members: BTreeMap::new(),
            max_path_len: limits.max_path_len,
        };
        let mut offset = 0u64;
        let mut pending = Pending::default();
        let mut entries = 0usize;
        loop {
            if offset >= len && pending.count == 0 {
                // End of file without an end-of-archive marker: accepted, like tar(1).
                break;
            }
            let mut block = [0u8; 512];
            index.read_exact_at(&mut block, offset, "")?;
            if block.iter().all(|b| *b == 0) {
                if pending.count > 0 {
                    return Err(header_err(offset, "extension header without a member"));
                }
                break;
            }
            if !checksum_ok(&block) {
                return Err(header_err(offset, "header checksum mismatch"));
            }
            let header = tar::Header::from_byte_slice(&block);
            let typeflag = block.get(156).copied().unwrap_or(0);
            let header_size = header
                .entry_size()
                .map_err(|_| header_err(offset, "bad size field"))?;
            let data = offset + BLOCK;
            if matches!(typeflag, b'x' | b'g' | b'L' | b'K') {
                pending.count += 1;
                if pending.count > MAX_EXTENSION_HEADERS {
                    return Err(header_err(offset, "too many extension headers in a row"));
                }
                let max = if matches!(typeflag, b'L' | b'K') {
                    limits.max_path_len as u64 + 1
                } else {
                    limits.max_pax_size
                };
                if header_size > max {
                    return Err(ArchiveError::Limit {
                        file: format!("tar extension header at byte {offset}"),
                        what: "extension header size",
                        value: header_size,
                        max,
                    });
                }
                let size = usize::try_from(header_size)
                    .map_err(|_| header_err(offset, "bad size field"))?;
                let mut buf = vec![0u8; size];
                index.read_exact_at(&mut buf, data, "")?;
                match typeflag {
                    b'x' => index.parse_pax(&buf, &mut pending, offset)?,
                    b'g' => {} // global headers: ignored
                    _ => {
                        if let Some(nul) = buf.iter().position(|b| *b == 0) {
                            buf.truncate(nul);
                        }
                        if typeflag == b'L' {
                            pending.path = Some(buf);
                        } else {
                            pending.link = Some(buf);
                        }
                    }
                }
                offset = round_up(header_size)
                    .and_then(|s| data.checked_add(s))
                    .ok_or_else(|| header_err(offset, "bad size field"))?;
                continue;
            }
            let pend = std::mem::take(&mut pending);
            let size = pend.size.unwrap_or(header_size);
            let raw_name = pend
                .path
                .unwrap_or_else(|| header.path_bytes().into_owned());
            let shown = display_name(&raw_name);
            let end = data
                .checked_add(size)
                .ok_or_else(|| header_err(offset, "bad size field"))?;
            if end > len {
                return Err(ArchiveError::Truncated {
                    file: shown,
                    needed: end,
                    len,
                });
            }
            entries += 1;
            if entries > limits.max_entries {
                return Err(ArchiveError::Limit {
                    file: shown,
                    what: "number of archive members",
                    value: entries as u64,
                    max: limits.max_entries as u64,
                });
            }
            let next = round_up(size)
                .and_then(|s| data.checked_add(s))
                .ok_or_else(|| header_err(offset, "bad size field"))?;
            let name = String::from_utf8(raw_name).map_err(|_| ArchiveError::UnsafePath {
                file: shown.clone(),
                path: shown.clone(),
                reason: "member name is not UTF-8",
            })?;
            let is_dir_name = name.ends_with('/');
            let normalized = match path::member(&name, limits.max_path_len) {
                Ok(n) => n,
                // `./` and `/`: the archive root itself.
                Err("empty path") => {
                    offset = next;
                    continue;
                }
                Err(reason) => {
                    return Err(ArchiveError::UnsafePath {
                        file: shown.clone(),
                        path: shown,
                        reason,
                    })
                }
            };
            let link = || -> Result<String, ArchiveError> {
                let raw = pend
                    .link
                    .clone()
                    .or_else(|| header.link_name_bytes().map(|l| l.into_owned()))
                    .unwrap_or_default();
                if raw.len() > limits.max_path_len {
                    return Err(ArchiveError::Limit {
                        file: shown.clone(),
                        what: "link target length",
                        value: raw.len() as u64,
                        max: limits.max_path_len as u64,
                    });
                }
                String::from_utf8(raw).map_err(|_| ArchiveError::UnsafePath {
                    file: shown.clone(),
                    path: shown.clone(),
                    reason: "link target is not UTF-8",
                })
            };
            let member = match typeflag {
                0 if is_dir_name => Member::Dir,
                b'0' | b'7' | 0 => Member::File { offset: data, size },
                b'5' => Member::Dir,
                b'2' => Member::Symlink(link()?),
                b'1' => {
                    let target = link()?;
                    let target = path::member(&target, limits.max_path_len).map_err(|reason| {
                        ArchiveError::UnsafePath {
                            file: shown.clone(),
                            path: display_name(target.as_bytes()),
                            reason,
                        }
                    })?;
                    Member::HardLink(target)
                }
                // Devices, FIFOs, sparse files…: never part of an image archive's
                // structure; skipped (a document referring to one finds it missing).
                _ => {
                    offset = next;
                    continue;
                }
            };
            match index.members.get(&normalized) {
                Some(Member::Dir) if member == Member::Dir => {}
                Some(_) => return Err(ArchiveError::DuplicateEntry { file: normalized }),
                None => {
                    index.members.insert(normalized, member);
                }
            }
            offset = next;
        }
        Ok(index)
    }

    fn parse_pax(
        &self,
        data: &[u8],
        pending: &mut Pending,
        offset: u64,
    ) -> Result<(), ArchiveError> {
        for ext in tar::PaxExtensions::new(data) {
            let ext = ext.map_err(|_| header_err(offset, "malformed PAX record"))?;
            match ext.key_bytes() {
                b"path" => pending.path = Some(ext.value_bytes().to_vec()),
                b"linkpath" => pending.link = Some(ext.value_bytes().to_vec()),
                b"size" => {
                    pending.size = Some(
                        parse_decimal(ext.value_bytes())
                            .ok_or_else(|| header_err(offset, "bad PAX size"))?,
                    )
                }
                _ => {}
            }
        }
        if pending
            .path
            .as_ref()
            .is_some_and(|p| p.len() > self.max_path_len)
        {
            return Err(ArchiveError::Limit {
                file: format!("tar extension header at byte {offset}"),
                what: "path length",
                value: pending.path.as_ref().map_or(0, |p| p.len() as u64),
                max: self.max_path_len as u64,
            });
        }
        Ok(())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, file: &str) -> Result<(), ArchiveError> {
        let needed = offset.saturating_add(buf.len() as u64);
        if needed > self.len {
            return Err(ArchiveError::Truncated {
                file: if file.is_empty() {
                    format!("tar header at byte {offset}")
                } else {
                    file.to_owned()
                },
                needed,
                len: self.len,
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| ArchiveError::Read {
                file: file.to_owned(),
                source,
            })
    }

    /// The member `name` (normalised), symlinks and hard links followed.
    /// Returns the contents' offset and size.
    pub(crate) fn resolve(
        &self,
        name: &str,
        referenced_by: &str,
    ) -> Result<(u64, u64), ArchiveError> {
        let mut cur = name.to_owned();
        for _ in 0..MAX_SYMLINK_HOPS {
            match self.members.get(&cur) {
                Some(Member::File { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Dir) => return Err(ArchiveError::NotAFile { file: cur }),
                Some(Member::Symlink(target)) => {
                    cur = path::symlink_target(&cur, target, self.max_path_len).map_err(
                        |reason| ArchiveError::UnsafePath {
                            file: cur.clone(),
                            path: display_name(target.as_bytes()),
                            reason,
                        },
                    )?;
                }
                Some(Member::HardLink(target)) => cur = target.clone(),
                None => {
                    return Err(ArchiveError::Missing {
                        file: cur,
                        referenced_by: referenced_by.to_owned(),
                    })
                }
            }
        }
        Err(ArchiveError::UnsafePath {
            file: name.to_owned(),
            path: name.to_owned(),
            reason: "too many levels of symbolic links",
        })
    }

    /// Whether member `name` exists (as anything).
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// A reader of `size` bytes at `offset`.
    pub(crate) fn reader(&self, offset: u64, size: u64) -> MemberReader<'_> {
        MemberReader {
            file: &self.file,
            pos: offset,
            end: offset.saturating_add(size),
        }
    }
}

/// Reads one member's contents with `pread(2)`.
#[derive(Debug)]
pub(crate) struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        let n = self.file.read_at(chunk, self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive file shrank while being read",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    fn header(name: &str, size: u64, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        if let Some(l) = link {
            h.set_link_name_literal(l).unwrap();
        }
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    fn archive(parts: &[(&str, &[u8], tar::EntryType, Option<&str>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data, kind, link) in parts {
            out.extend(header(name, data.len() as u64, *kind, *link));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend([0u8; 1024]);
        out
    }

    fn index_of(bytes: &[u8]) -> Result<TarIndex, ArchiveError> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        TarIndex::build(f, &ArchiveLimits::default())
    }

    fn read(idx: &TarIndex, name: &str) -> Vec<u8> {
        let (off, size) = idx.resolve(name, "test").unwrap();
        let mut v = Vec::new();
        idx.reader(off, size).read_to_end(&mut v).unwrap();
        v
    }

    #[test]
    fn indexes_and_follows_links() {
        use tar::EntryType as T;
        let bytes = archive(&[
            ("./a/", b"", T::Directory, None),
            ("a/layer.tar", b"hello", T::Regular, None),
            ("b/layer.tar", b"", T::Symlink, Some("../a/layer.tar")),
            ("c", b"", T::Link, Some("a/layer.tar")),
            ("loop", b"", T::Symlink, Some("loop")),
            ("out", b"", T::Symlink, Some("../../etc/passwd")),
        ]);
        let idx = index_of(&bytes).unwrap();
        assert_eq!(read(&idx, "a/layer.tar"), b"hello");
        assert_eq!(read(&idx, "b/layer.tar"), b"hello");
        assert_eq!(read(&idx, "c"), b"hello");
        assert!(matches!(
            idx.resolve("loop", "t"),
            Err(ArchiveError::UnsafePath { .. })
        ));
        assert!(matches!(
            idx.resolve("out", "t"),
            Err(ArchiveError::UnsafePath { .. })
        ));
        assert!(matches!(
            idx.resolve("a", "t"),
            Err(ArchiveError::NotAFile { .. })
        ));
        assert!(matches!(
            idx.resolve("nope", "t"),
            Err(ArchiveError::Missing { .. })
        ));
    }

    #[test]
    fn refuses_hostile_archives() {
        use tar::EntryType as T;
        let dup = archive(&[
            ("manifest.json", b"[]", T::Regular, None),
            ("./manifest.json", b"[]", T::Regular, None),
        ]);
        assert!(matches!(
            index_of(&dup),
            Err(ArchiveError::DuplicateEntry { .. })
        ));
        let dotdot = archive(&[("../x", b"1", T::Regular, None)]);
        assert!(matches!(
            index_of(&dotdot),
            Err(ArchiveError::UnsafePath { .. })
        ));
        let mut truncated = archive(&[("big", &[7u8; 2000], T::Regular, None)]);
        truncated.truncate(1000);
        assert!(matches!(
            index_of(&truncated),
            Err(ArchiveError::Truncated { .. })
        ));
        let mut bad_sum = archive(&[("x", b"1", T::Regular, None)]);
        bad_sum[0] = b'y';
        assert!(matches!(
            index_of(&bad_sum),
            Err(ArchiveError::TarHeader { .. })
        ));
        // A GNU long name header claiming 1 GiB.
        let mut long = header("././@LongLink", 1 << 30, T::GNULongName, None);
        long.extend([0u8; 1024]);
        assert!(matches!(index_of(&long), Err(ArchiveError::Limit { .. })));
    }

    #[test]
    fn bounds_entry_count() {
        use tar::EntryType as T;
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let parts: Vec<_> = names
            .iter()
            .map(|n| (n.as_str(), &b""[..], T::Regular, None))
            .collect();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&archive(&parts)).unwrap();
        let limits = ArchiveLimits {
            max_entries: 10,
            ..ArchiveLimits::default()
        };
        assert!(matches!(
            TarIndex::build(f, &limits),
            Err(ArchiveError::Limit { .. })
        ));
    }

    #[test]
    fn pax_path_and_size() {
        let long = format!("blobs/sha512/{}", "a".repeat(128));
        let rec = |k: &str, v: &str| {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while len != base + len.to_string().len() {
                len = base + len.to_string().len();
            }
            format!("{len} {k}={v}\n")
        };
        let pax = rec("path", &long);
        let mut out = header("pax", pax.len() as u64, tar::EntryType::XHeader, None);
        out.extend(pax.as_bytes());
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend(header("short", 3, tar::EntryType::Regular, None));
        out.extend(b"abc");
        out.resize(out.len().div_ceil(512) * 512, 0);
        out.extend([0u8; 1024]);
        let idx = index_of(&out).unwrap();
        assert_eq!(read(&idx, &long), b"abc");
    }
}
