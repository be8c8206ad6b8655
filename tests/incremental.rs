//! Backups that read only what changed: a machine's next point takes the blob lists of
//! files its parent shows unchanged (size, modification and change time, inode, device)
//! without reading them, and reads everything else — a file rewritten with its old size
//! and modification time put back, a file replaced by another, a file changed in the
//! second of the backup — and every point restores bit for bit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use offsite::backup::{self, BackupOptions};
use offsite::format::point::Point;
use offsite::progress::Progress;
use offsite::repo::Repository;
use offsite::testkit;
use offsite::{Id, restore};

/// Writes `data` to `path` with the modification time `mtime` (the change time is now).
fn write_with_mtime(path: &Path, data: &[u8], mtime: SystemTime) {
    std::fs::write(path, data).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
}

fn write_old(path: &Path, data: &[u8]) {
    write_with_mtime(path, data, SystemTime::now() - Duration::from_secs(3600));
}

async fn backup(repo: &Arc<Repository>, root: &Path, force_read: bool) -> (Id, Point) {
    let opts = BackupOptions {
        machine: "web".into(),
        paths: vec![root.to_path_buf()],
        base: Some(root.parent().unwrap().to_path_buf()),
        force_read,
        ..Default::default()
    };
    backup::run(repo.clone(), opts, Progress::hidden())
        .await
        .unwrap()
}

/// Restores the point and compares every file with `root` as it is now.
async fn restores_as(repo: &Repository, id: &Id, point: &Point, root: &Path) {
    let out = tempfile::tempdir().unwrap();
    restore::run(repo, id, point, out.path(), &Progress::hidden())
        .await
        .unwrap();
    same_files(root, &out.path().join("m"));
}

fn same_files(a: &Path, b: &Path) {
    let mut names = 0;
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        let back = b.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            same_files(&e.path(), &back);
        } else {
            let (want, got) = (
                std::fs::read(e.path()).unwrap(),
                std::fs::read(&back).unwrap(),
            );
            assert!(want == got, "{} differs", back.display());
        }
        names += 1;
    }
    assert_eq!(
        std::fs::read_dir(b).unwrap().count(),
        names,
        "{}",
        b.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_files_are_taken_from_the_parent_and_changed_ones_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("m");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    write_old(&root.join("big.bin"), &big);
    for i in 0..20 {
        write_old(
            &root.join(format!("sub/f{i}")),
            format!("file {i}\n").repeat(50).as_bytes(),
        );
    }
    write_old(&root.join("same-size"), b"aaaaaaaa");
    write_old(&root.join("replaced"), b"bbbbbbbb");
    // Change times are now: files changed within a second of a backup are not trusted
    // by the next one (they could change again unseen), so let that second pass.
    std::thread::sleep(Duration::from_millis(2100));
    let repo = testkit::repo(testkit::memory(), 1 << 20).await;

    let (id1, p1) = backup(&repo, &root, false).await;
    assert_eq!(p1.summary.files_reused, 0);
    assert_eq!(p1.summary.files, 23);

    // Nothing changed: nothing is read, nothing is added but what the tree needs.
    let (id2, p2) = backup(&repo, &root, false).await;
    assert_eq!(p2.summary.files_reused, 23, "{:?}", p2.summary);
    assert_eq!(p2.summary.bytes_reused, p1.summary.bytes);
    assert_eq!(p2.summary.blobs_added, 0);
    assert_eq!(p2.tree, p1.tree, "an unchanged machine has the same tree");
    assert_eq!(p2.parent, Some(id1));
    restores_as(&repo, &id2, &p2, &root).await;

    // Same size and modification time, other content: the change time tells.
    let mtime = std::fs::metadata(root.join("same-size"))
        .unwrap()
        .modified()
        .unwrap();
    write_with_mtime(&root.join("same-size"), b"cccccccc", mtime);
    // Another file in its place (a new inode), its times set to the old one's.
    let old = std::fs::metadata(root.join("replaced"))
        .unwrap()
        .modified()
        .unwrap();
    write_with_mtime(&root.join("replaced.new"), b"dddddddd", old);
    std::fs::rename(root.join("replaced.new"), root.join("replaced")).unwrap();
    // A new file, changed in the backup's own second.
    std::fs::write(root.join("sub/new"), b"new").unwrap();

    let (id3, p3) = backup(&repo, &root, false).await;
    assert_eq!(p3.summary.files, 24);
    assert_eq!(p3.summary.files_reused, 21, "{:?}", p3.summary);
    restores_as(&repo, &id3, &p3, &root).await;

    // The three files of that second got no stamp: the next backup reads them again
    // (now long enough after their change to record one), the one after takes them.
    std::thread::sleep(Duration::from_millis(2100));
    let (id4, p4) = backup(&repo, &root, false).await;
    assert_eq!(p4.summary.files_reused, 21, "{:?}", p4.summary);
    restores_as(&repo, &id4, &p4, &root).await;
    let (_, p5) = backup(&repo, &root, false).await;
    assert_eq!(p5.summary.files_reused, 24, "{:?}", p5.summary);

    // --force-read reads everything, and changes nothing stored.
    let (id6, p6) = backup(&repo, &root, true).await;
    assert_eq!(p6.summary.files_reused, 0);
    assert_eq!(p6.summary.blobs_added, 0);
    restores_as(&repo, &id6, &p6, &root).await;
}
