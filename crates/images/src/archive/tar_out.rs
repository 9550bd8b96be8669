//! A small tar writer for the archives Berth writes (docker-archive, OCI archive):
//! ustar headers (a PAX `path` record for names that do not fit), owner 0:0, fixed
//! modification time, and contents of exactly the declared size.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// Modification time of every member: the epoch, so the same images give the same
/// archive.
const MTIME: u64 = 0;

/// Writes a tar stream to `W`, counting the bytes written.
pub(crate) struct TarOut<W: Write> {
    w: W,
    written: u64,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W) -> TarOut<W> {
        TarOut { w, written: 0 }
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.w.write_all(data)?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        size: u64,
        link: &str,
    ) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        if h.set_path(name).is_err() {
            self.pax_path(name)?;
            // Readers without PAX support see a truncated name; every reader of
            // image archives supports PAX.
            let cut = name.len().saturating_sub(99);
            let short = name.get(cut..).unwrap_or("pax-long-name");
            h.set_path(short.trim_start_matches('/'))?;
        }
        h.set_mode(match kind {
            tar::EntryType::Directory => 0o755,
            tar::EntryType::Symlink => 0o777,
            _ => 0o644,
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(size);
        h.set_entry_type(kind);
        if !link.is_empty() {
            h.set_link_name(link)?;
        }
        h.set_cksum();
        self.put(h.as_bytes())
    }

    fn pax_path(&mut self, name: &str) -> io::Result<()> {
        let record = pax_record("path", name);
        let mut h = tar::Header::new_ustar();
        h.set_path("././@PaxHeader")?;
        h.set_mode(0o644);
        h.set_size(record.len() as u64);
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_cksum();
        self.put(h.as_bytes())?;
        self.put(record.as_bytes())?;
        self.pad(record.len() as u64)
    }

    /// A directory (`name` without trailing `/`).
    pub(crate) fn dir(&mut self, name: &str) -> io::Result<()> {
        self.header(&format!("{name}/"), tar::EntryType::Directory, 0, "")
    }

    /// A symbolic link.
    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.header(name, tar::EntryType::Symlink, 0, target)
    }

    /// A regular file with `data`.
    pub(crate) fn bytes(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, data.len() as u64, "")?;
        self.put(data)?;
        self.pad(data.len() as u64)
    }

    /// A regular file of exactly `size` bytes read from `data`; fails if `data`
    /// yields fewer or more. `progress` is called with the bytes copied so far.
    pub(crate) fn file(
        &mut self,
        name: &str,
        size: u64,
        data: &mut dyn Read,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        self.header(name, tar::EntryType::Regular, size, "")?;
        let mut buf = vec![0u8; 128 << 10];
        let mut done = 0u64;
        while done < size {
            let want = usize::try_from(size - done)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            let n = match data.read(chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name}: source ended after {done} of {size} bytes"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.put(chunk.get(..n).unwrap_or_default())?;
            done += n as u64;
            progress(done);
        }
        let mut probe = [0u8; 1];
        loop {
            match data.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{name}: source is longer than {size} bytes"),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pad(size)
    }

    /// Writes the end-of-archive marker and flushes; returns the writer and the bytes
    /// written.
    pub(crate) fn finish(mut self) -> io::Result<(W, u64)> {
        self.put(&[0u8; BLOCK * 2])?;
        self.w.flush()?;
        Ok((self.w, self.written))
    }
}

fn pax_record(key: &str, value: &str) -> String {
    // The length counts itself: find the number of digits that is consistent.
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_tar_reads() {
        let long = format!("blobs/sha512/{}", "b".repeat(128));
        let mut out = TarOut::new(Vec::new());
        out.dir("blobs").unwrap();
        out.bytes("index.json", b"{}").unwrap();
        out.file(&long, 3, &mut &b"abc"[..], &mut |_| {}).unwrap();
        out.symlink("a/layer.tar", "../b/layer.tar").unwrap();
        let (buf, n) = out.finish().unwrap();
        assert_eq!(n, buf.len() as u64);
        let mut ar = tar::Archive::new(std::io::Cursor::new(buf));
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((path, data, link));
        }
        assert_eq!(seen[0].0, "blobs/");
        assert_eq!(seen[1], ("index.json".to_owned(), b"{}".to_vec(), None));
        assert_eq!(seen[2], (long, b"abc".to_vec(), None));
        assert_eq!(seen[3].2.as_deref(), Some("../b/layer.tar"));
    }

    #[test]
    fn refuses_wrong_sizes() {
        let mut out = TarOut::new(Vec::new());
        assert!(out.file("short", 5, &mut &b"abc"[..], &mut |_| {}).is_err());
        let mut out = TarOut::new(Vec::new());
        assert!(out.file("long", 2, &mut &b"abc"[..], &mut |_| {}).is_err());
    }
}
