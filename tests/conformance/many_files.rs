//! Restore at scale on every store: a point of 100,000 small files restores bit for bit
//! in few requests, and a partial restore takes exactly the files asked for and reads
//! only what they need.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use offsite::progress::Progress;
use offsite::repo::Repository;
use offsite::restore::{self, PathFilter, RestoreOptions};

use super::{MakeLocation, backup_dir, fixtures, init};

const DIRS: usize = 100;
const PER_DIR: usize = 1000;

/// 100,000 files of 16–316 bytes in 100 folders under `many/` — every 97th the same
/// content, one empty, names with spaces and accents — made once and kept under the
/// target's test folder: a `TempDir` in a static is never dropped, so each test process
/// used to leave 400 MB behind in the system's temporary folder.
static MANY: LazyLock<PathBuf> = LazyLock::new(|| {
    // Bump the version when the content below changes.
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("many-files-v1");
    let root = home.join("many");
    if root.join("d000/empty").exists() {
        return root;
    }
    // Built beside and renamed into place, so a process killed half-way leaves nothing
    // a later one would take for complete.
    let part = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("many-files-v1.part{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&part);
    let building = part.join("many");
    for d in 0..DIRS {
        let sub = building.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..PER_DIR {
            let n = d * PER_DIR + f;
            let body = match n % 97 {
                0 => b"the same small file, many times\n".to_vec(),
                _ => fixtures::noise(n as u64, 16 + n * 31 % 301),
            };
            let name = match f % 250 {
                7 => format!("f{f:04} \u{e9}t\u{e9}"),
                _ => format!("f{f:04}"),
            };
            std::fs::write(sub.join(name), body).unwrap();
        }
    }
    std::fs::write(building.join("d000/empty"), b"").unwrap();
    if std::fs::rename(&part, &home).is_err() {
        // Another process finished first: its copy is the same.
        let _ = std::fs::remove_dir_all(&part);
    }
    root
});

/// The packs holding the point's tree and data blobs, and the bytes it takes to read
/// the index and walk the tree.
async fn packs_touched(repo: &Repository, point: &offsite::format::point::Point) -> (usize, u64) {
    let before = repo.loc.requests.snapshot();
    let index = repo.load_index().await.unwrap();
    let mut packs = HashSet::new();
    for t in &point.tree {
        packs.insert(index.pack_id(index.get(t).unwrap().pack));
    }
    offsite::repo::tree::for_each_node(repo, &index, "p", point, async |n| {
        for b in &n.blobs {
            packs.insert(index.pack_id(index.get(b).unwrap().pack));
        }
        Ok(())
    })
    .await
    .unwrap();
    (
        packs.len(),
        repo.loc.requests.snapshot().since(&before).bytes_in,
    )
}

/// The file entries of a digest (folders above a partial restore are there too).
fn files(d: BTreeMap<Vec<u8>, String>) -> BTreeMap<Vec<u8>, String> {
    d.into_iter()
        .filter(|(_, v)| v.starts_with("file"))
        .collect()
}

fn under(out: &Path) -> BTreeMap<Vec<u8>, String> {
    files(fixtures::digest(&out.join("many")))
}

pub async fn restore_100k_files(mk: &MakeLocation) {
    let root: &Path = &MANY;
    let repo = init(mk()).await;
    let (id, point) = backup_dir(&repo, "many", root).await;
    assert_eq!(point.summary.files, (DIRS * PER_DIR + 1) as u64);
    let want = files(fixtures::digest(root));

    // Whole: bit for bit, in few GETs: a restore plans a batch of files at a time, and
    // each batch reads each pack it touches in about one request — a batch's files may
    // straddle two packs — plus one for the blob every 97th file shares, which sits
    // apart from the batch's own; the tree takes about one read per pack it is in.
    // Where a backup's packer cuts depends on timing, so the bound is per pack and per
    // batch rather than a count. (One request per file would be 100,000.)
    let (packs, meta_bytes) = packs_touched(&repo, &point).await;
    let out = tempfile::tempdir().unwrap();
    let before = repo.loc.requests.snapshot();
    let stats = restore::run(&repo, &id, &point, out.path(), &Progress::hidden())
        .await
        .unwrap();
    let whole = repo.loc.requests.snapshot().since(&before);
    assert_eq!(stats.files, point.summary.files);
    let batches = (DIRS * PER_DIR).div_ceil(restore::FILES_PER_BATCH);
    assert!(
        whole.get <= (2 * packs + 3 * batches) as u64,
        "{} GETs for a point in {packs} packs, restored in {batches} batches",
        whole.get
    );
    assert!(under(out.path()) == want, "the restore differs");

    // Partial: two folders and a glob, less one excluded run of names.
    let filter = PathFilter::new(
        &["many/d007".into(), "many/d05*/f0042".into()],
        &["many/d007/f01*".into()],
    )
    .unwrap();
    let opts = RestoreOptions {
        filter: filter.clone(),
        ..Default::default()
    };
    let out = tempfile::tempdir().unwrap();
    let before = repo.loc.requests.snapshot();
    restore::run_with(&repo, &id, &point, out.path(), &opts, &Progress::hidden())
        .await
        .unwrap();
    let partial = repo.loc.requests.snapshot().since(&before);
    let taken: BTreeMap<_, _> = want
        .iter()
        .filter(|(p, _)| filter.takes(&[b"many/".as_slice(), p].concat()))
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect();
    assert_eq!(taken.len(), PER_DIR - 100 + 10);
    assert!(under(out.path()) == taken, "the partial restore differs");
    // Index and tree are read whole (they say which files there are and where); of the
    // data, only the taken files' blobs and the gaps coalescing reads over.
    assert!(
        partial.bytes_in <= meta_bytes + (2 << 20),
        "a partial restore of 1% of the files read {} bytes; index and tree are {meta_bytes}, the whole point {}",
        partial.bytes_in,
        whole.bytes_in
    );
}
