//! Layer tars built entry by entry with the `tar` crate (raw headers where hostile names
//! need them: names and link targets are written verbatim, so `..` and absolute names
//! get through), and the compressions layers come in.

use std::io::{self, Read, Write};

use tar::EntryType;

/// The modification time of every entry [`header`] makes.
pub const MTIME: u64 = 1_600_000_000;

/// A ustar header owned by root, with [`MTIME`].
pub fn header(kind: EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

/// A tar built entry by entry; [`Tar::bytes`] ends it.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Tar {
        Tar::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends an entry with `name` (and `link`) written into the header verbatim: no
    /// validation, so `..` and absolute names get through.
    pub fn raw(
        &mut self,
        mut h: tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: &[u8],
    ) -> &mut Tar {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// A regular file, mode 0644, owned by root.
    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Tar {
        self.file_with(name, data, 0o644, 0, 0)
    }

    pub fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Tar {
        let mut h = header(EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Tar {
        let mut h = header(EntryType::Directory, mode, 0);
        self.b.append_data(&mut h, name, io::empty()).unwrap();
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.link(EntryType::Symlink, 0o777, name, target)
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Tar {
        self.link(EntryType::Link, 0o644, name, target)
    }

    fn link(&mut self, kind: EntryType, mode: u32, name: &str, target: &str) -> &mut Tar {
        self.raw(
            header(kind, mode, 0),
            name.as_bytes(),
            Some(target.as_bytes()),
            b"",
        )
    }

    pub fn device(&mut self, name: &str, kind: EntryType, major: u32, minor: u32) -> &mut Tar {
        let mut h = header(kind, 0o660, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, name.as_bytes(), None, b"")
    }

    /// A PAX extended header for the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tar {
        let mut data = Vec::new();
        for (k, v) in records {
            let base = k.len() + v.len() + 3;
            let mut len = base + 1;
            while len != base + len.to_string().len() {
                len = base + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let h = header(EntryType::XHeader, 0o644, data.len() as u64);
        self.raw(h, b"././@PaxHeader", None, &data)
    }

    /// The finished tar; the builder starts over empty.
    pub fn bytes(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A layer tar of regular files (name, contents).
pub fn files(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = Tar::new();
    for (name, data) in files {
        t.file(name, data);
    }
    t.bytes()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// The (name, type) of every entry of `tar`, in order.
pub fn entries(tar: &[u8]) -> Vec<(String, EntryType)> {
    tar::Archive::new(tar)
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            )
        })
        .collect()
}
