//! Parsing OCI mount options into what the mount API needs.

use berth_sys::MountAttr;

/// Propagation types (`MS_*` values, as `mount_setattr` takes them).
pub(crate) const MS_PRIVATE: u64 = 1 << 18;
pub(crate) const MS_SLAVE: u64 = 1 << 19;
pub(crate) const MS_SHARED: u64 = 1 << 20;
pub(crate) const MS_UNBINDABLE: u64 = 1 << 17;

/// A propagation change, possibly recursive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Propagation {
    pub kind: u64,
    pub recursive: bool,
}

impl Propagation {
    /// Parse `private`, `rprivate`, `shared`, `rshared`, `slave`, `rslave`, `unbindable`,
    /// `runbindable`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (recursive, base) = match s.strip_prefix('r') {
            Some(rest) if matches!(rest, "private" | "shared" | "slave" | "unbindable") => {
                (true, rest)
            }
            _ => (false, s),
        };
        let kind = match base {
            "private" => MS_PRIVATE,
            "shared" => MS_SHARED,
            "slave" => MS_SLAVE,
            "unbindable" => MS_UNBINDABLE,
            _ => return None,
        };
        Some(Propagation { kind, recursive })
    }
}

/// Everything an OCI mount's `options` list says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: the bind includes submounts.
    pub recursive_bind: bool,
    /// Attributes to set on the mount itself.
    pub set: MountAttr,
    /// Attributes to clear on the mount itself.
    pub clear: MountAttr,
    /// Attributes to set on the mount and every submount (`rro`, `rnosuid`, …).
    pub rset: MountAttr,
    /// Attributes to clear recursively (`rrw`, `rsuid`, …).
    pub rclear: MountAttr,
    /// Propagation changes, in order.
    pub propagation: Vec<Propagation>,
    /// Filesystem-specific options (`mode=755`, `size=65536k`, `newinstance`…), passed to the
    /// filesystem as key/value parameters.
    pub data: Vec<(String, Option<String>)>,
    /// `idmap`/`ridmap`: ID-map the bind mount with the container's mappings.
    pub idmap: bool,
    /// `tmpcopyup`: copy the destination's content into a new tmpfs.
    pub tmpcopyup: bool,
}

/// Parse OCI mount options. Unknown words are filesystem data, as with mount(8).
pub(crate) fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    let set = |o: &mut MountOptions, a: MountAttr| {
        o.set = o.set.union(a);
        o.clear = MountAttr(o.clear.0 & !a.0);
    };
    let clear = |o: &mut MountOptions, a: MountAttr| {
        o.clear = o.clear.union(a);
        o.set = MountAttr(o.set.0 & !a.0);
    };
    for opt in options {
        let opt = opt.as_str();
        match opt {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
            }
            "ro" => set(&mut o, MountAttr::RDONLY),
            "rw" => clear(&mut o, MountAttr::RDONLY),
            "nosuid" => set(&mut o, MountAttr::NOSUID),
            "suid" => clear(&mut o, MountAttr::NOSUID),
            "nodev" => set(&mut o, MountAttr::NODEV),
            "dev" => clear(&mut o, MountAttr::NODEV),
            "noexec" => set(&mut o, MountAttr::NOEXEC),
            "exec" => clear(&mut o, MountAttr::NOEXEC),
            "noatime" => {
                clear(&mut o, MountAttr::ATIME_MASK);
                set(&mut o, MountAttr::NOATIME);
            }
            "strictatime" => {
                clear(&mut o, MountAttr::ATIME_MASK);
                set(&mut o, MountAttr::STRICTATIME);
            }
            "relatime" => clear(&mut o, MountAttr::ATIME_MASK),
            "atime" | "norelatime" | "nostrictatime" => {}
            "nodiratime" => set(&mut o, MountAttr::NODIRATIME),
            "diratime" => clear(&mut o, MountAttr::NODIRATIME),
            "nosymfollow" => set(&mut o, MountAttr::NOSYMFOLLOW),
            "rro" => o.rset = o.rset.union(MountAttr::RDONLY),
            "rrw" => o.rclear = o.rclear.union(MountAttr::RDONLY),
            "rnosuid" => o.rset = o.rset.union(MountAttr::NOSUID),
            "rsuid" => o.rclear = o.rclear.union(MountAttr::NOSUID),
            "rnodev" => o.rset = o.rset.union(MountAttr::NODEV),
            "rdev" => o.rclear = o.rclear.union(MountAttr::NODEV),
            "rnoexec" => o.rset = o.rset.union(MountAttr::NOEXEC),
            "rexec" => o.rclear = o.rclear.union(MountAttr::NOEXEC),
            "rnoatime" => o.rset = o.rset.union(MountAttr::NOATIME),
            "rnodiratime" => o.rset = o.rset.union(MountAttr::NODIRATIME),
            "rstrictatime" => o.rset = o.rset.union(MountAttr::STRICTATIME),
            "idmap" | "ridmap" => o.idmap = true,
            "tmpcopyup" => o.tmpcopyup = true,
            // Flags with no meaning for a new mount, accepted as mount(8) does.
            "defaults" | "async" | "sync" | "dirsync" | "mand" | "nomand" | "loud" | "silent"
            | "lazytime" | "nolazytime" | "remount" => {}
            _ => {
                if let Some(p) = Propagation::parse(opt) {
                    o.propagation.push(p);
                } else if let Some((k, v)) = opt.split_once('=') {
                    o.data.push((k.to_string(), Some(v.to_string())));
                } else {
                    o.data.push((opt.to_string(), None));
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data() {
        let o = p(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "newinstance",
        ]);
        assert_eq!(o.set, MountAttr::NOSUID.union(MountAttr::STRICTATIME));
        assert_eq!(
            o.data,
            vec![
                ("mode".into(), Some("755".into())),
                ("size".into(), Some("65536k".into())),
                ("newinstance".into(), None)
            ]
        );
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = p(&["ro", "rw"]);
        assert_eq!(o.set, MountAttr::default());
        assert_eq!(o.clear, MountAttr::RDONLY);
    }

    #[test]
    fn binds_and_propagation() {
        let o = p(&["rbind", "rro", "rslave", "private"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.rset, MountAttr::RDONLY);
        assert_eq!(
            o.propagation,
            vec![
                Propagation {
                    kind: MS_SLAVE,
                    recursive: true
                },
                Propagation {
                    kind: MS_PRIVATE,
                    recursive: false
                }
            ]
        );
    }

    #[test]
    fn propagation_words() {
        assert_eq!(
            Propagation::parse("rshared"),
            Some(Propagation {
                kind: MS_SHARED,
                recursive: true
            })
        );
        assert_eq!(
            Propagation::parse("unbindable"),
            Some(Propagation {
                kind: MS_UNBINDABLE,
                recursive: false
            })
        );
        assert_eq!(Propagation::parse("rfoo"), None);
    }
}
