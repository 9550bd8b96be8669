//! Just enough ELF parsing to tell whether a binary needs a dynamic loader.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};

const PT_INTERP: u32 = 3;

/// Whether the 64-bit little-endian ELF file at `path` has no `PT_INTERP`
/// program header, i.e. runs without a dynamic loader (static or static-pie).
pub(crate) fn is_static(path: &Path) -> Result<bool> {
    let mut head = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("open {}", path.display()))?
        .take(64 * 1024)
        .read_to_end(&mut head)?;
    is_static_image(&head).with_context(|| format!("parse ELF {}", path.display()))
}

fn is_static_image(image: &[u8]) -> Result<bool> {
    if image.get(..4) != Some(b"\x7fELF".as_slice())
        || image.get(4) != Some(&2)
        || image.get(5) != Some(&1)
    {
        bail!("not a 64-bit little-endian ELF file");
    }
    let u16_at = |off: usize| {
        image
            .get(off..off + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |off: usize| {
        image
            .get(off..off + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |off: usize| {
        image.get(off..off + 8).map(|b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        bail!("truncated ELF header");
    };
    let phoff = usize::try_from(phoff)?;
    for i in 0..usize::from(phnum) {
        let off = phoff + i * usize::from(phentsize);
        match u32_at(off) {
            Some(PT_INTERP) => return Ok(false),
            Some(_) => {}
            None => bail!("program headers beyond the first 64 KiB"),
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn host_shell_is_dynamic() {
        assert!(!is_static(Path::new("/bin/sh")).unwrap());
    }

    #[test]
    fn busybox_static_is_static() {
        let busybox = Path::new("/bin/busybox");
        if busybox.exists() {
            assert!(is_static(busybox).unwrap());
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(is_static_image(b"not an elf").is_err());
    }
}
