//! Source trees to back up, and a digest that compares two trees bit for bit (content,
//! kind, mode, mtime to the nanosecond, symlink targets).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

// The demo's sample-data generator, shared by path so tests and demo make the same bytes
// without the library carrying test support.
#[path = "../../src/cli/sample.rs"]
mod sample;
pub use sample::noise;

/// A small machine: nested folders, an empty file, compressible text, random data,
/// a symlink, odd modes and times, a non-UTF-8 name, and a disk image with zero runs.
pub fn machine_tree(root: &Path, seed: u64) {
    let d = root.join("etc/app/conf.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::create_dir_all(root.join("var/empty")).unwrap();
    std::fs::write(root.join("etc/hostname"), format!("host-{seed}\n")).unwrap();
    std::fs::write(root.join("etc/app/empty"), b"").unwrap();
    let text: String = (0..20_000)
        .map(|i| format!("line {i} of machine {seed}\n"))
        .collect();
    std::fs::write(d.join("big.conf"), text).unwrap();
    std::fs::write(root.join("var/random.bin"), noise(seed, 2_500_000)).unwrap();
    std::fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"var/caf\xe9")),
        b"latin-1 name",
    )
    .unwrap();
    std::os::unix::fs::symlink("../etc/hostname", root.join("var/host-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("var/dangling")).unwrap();
    std::fs::set_permissions(d.join("big.conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::set_permissions(
        root.join("var/random.bin"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // A raw disk image: 8 MiB of zeros, random blocks, zeros again.
    let mut img = vec![0u8; 8 << 20];
    img.extend(noise(seed + 1, 1 << 20));
    img.extend(vec![0u8; 7 << 20]);
    std::fs::write(root.join("var/disk.img"), img).unwrap();
    let t = FileTime::from_unix_time(1_700_000_000 + seed as i64, 123_456_789);
    for p in [
        "etc/hostname",
        "var/random.bin",
        "etc/app/conf.d/big.conf",
        "var/disk.img",
    ] {
        filetime::set_file_mtime(root.join(p), t).unwrap();
    }
    filetime::set_symlink_file_times(root.join("var/host-link"), t, t).unwrap();
    filetime::set_file_mtime(root.join("etc/app/conf.d"), t).unwrap();
}

/// Everything that must survive a backup and restore, keyed by relative path.
pub fn digest(root: &Path) -> BTreeMap<Vec<u8>, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            let what = if m.file_type().is_symlink() {
                format!(
                    "link {:?} mtime {}.{}",
                    std::fs::read_link(&p).unwrap(),
                    m.mtime(),
                    m.mtime_nsec()
                )
            } else if m.is_dir() {
                stack.push(p.clone());
                format!(
                    "dir mode {:o} mtime {}.{}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    m.mtime_nsec()
                )
            } else {
                let content = std::fs::read(&p).unwrap();
                format!(
                    "file mode {:o} mtime {}.{} size {} blake3 {}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    m.mtime_nsec(),
                    content.len(),
                    blake3::hash(&content)
                )
            };
            out.insert(rel, what);
        }
    }
    out
}
