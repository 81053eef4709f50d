//! Snapshot benchmark (`cargo bench --bench snapshot`, run by `make bench`).
//!
//! 1. Hashing: a generated 10,000-file / ~500 MB tree; amlops' walk + BLAKE3 manifest next
//!    to `b3sum` (else `sha256sum`) over the same files in the same run, as a ratio.
//! 2. Upload against Azurite through the datastore path (the container named by a datastore
//!    as Azure describes it, the Workspace's blob endpoint override, a `listSecrets`-style SAS):
//!    requests by kind, bytes and wall time for a first submission, a resubmission after one
//!    file changed, and the same resubmission with copies limited to 8 at once (the old
//!    setting), to show whether the client or the storage service bounds it.
//!
//! Environment: SNAPSHOT_BENCH_FILES / SNAPSHOT_BENCH_MB override the tree size,
//! SNAPSHOT_BENCH_DIR where it is generated (default /var/tmp), B3SUM the b3sum binary.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use amlops::azure::Secret;
use amlops::azure::blob::{BlobContainer, BlobStats};
use amlops::azure::models::workspace::{DatastoreProperties, DatastoreSecrets};
use amlops::azure::storage::{container_url, parse_blob_endpoint, sas_container};
use amlops::snapshot::{Limits, NoProgress, Snapshot, UploadOptions, take_dir, upload};
use fake_azureml::azurite::{ACCOUNT, Azurite};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 1% of the files are large (10 MiB-ish share of the bytes), the rest small; content is
/// pseudo-random (BLAKE3 XOF) so nothing compresses or dedupes by accident.
fn generate(root: &Path, files: u64, total_bytes: u64) {
    let large = (files / 1000).max(1);
    let large_bytes = total_bytes / 5;
    let small_size = (total_bytes - large_bytes) / (files - large);
    for i in 0..files {
        let size = if i < large {
            large_bytes / large
        } else {
            small_size + (i % 7) * 97
        };
        let path = root.join(format!("d{:02}/s{:02}/f{i:05}.dat", i % 50, (i / 50) % 20));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut content = vec![0u8; size as usize];
        blake3::Hasher::new()
            .update(&i.to_le_bytes())
            .finalize_xof()
            .fill(&mut content);
        std::fs::write(path, content).unwrap();
    }
}

fn time<T>(f: impl Fn() -> T) -> (Duration, T) {
    let mut best = None;
    let mut out = None;
    for _ in 0..3 {
        let start = Instant::now();
        let value = f();
        let elapsed = start.elapsed();
        if best.is_none_or(|b| elapsed < b) {
            best = Some(elapsed);
        }
        out = Some(value);
    }
    (best.unwrap(), out.unwrap())
}

fn find_tool() -> (String, String) {
    let b3 = std::env::var("B3SUM").ok().or_else(|| {
        ["b3sum", "/var/tmp/b3sum/bin/b3sum"]
            .iter()
            .find(|t| {
                Command::new(t)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .map(|t| t.to_string())
    });
    match b3 {
        Some(t) => (t, "b3sum".into()),
        None => ("sha256sum".into(), "sha256sum".into()),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(label: &str, s: &BlobStats, elapsed: Duration, azurite_requests: usize) {
    println!(
        "{label}: {:.2} s, {:.2} MiB sent, {} requests (client) / {} (Azurite access log): \
         {} put blob, {} put block, {} block list, {} copy, {} head, {} get, {} list",
        elapsed.as_secs_f64(),
        mib(s.bytes_sent),
        s.total_requests(),
        azurite_requests,
        s.put_blob,
        s.put_block,
        s.put_block_list,
        s.copy,
        s.head,
        s.get,
        s.list,
    );
}

fn diff(a: BlobStats, b: BlobStats) -> BlobStats {
    BlobStats {
        head: b.head - a.head,
        get: b.get - a.get,
        list: b.list - a.list,
        put_blob: b.put_blob - a.put_blob,
        put_block: b.put_block - a.put_block,
        put_block_list: b.put_block_list - a.put_block_list,
        copy: b.copy - a.copy,
        bytes_sent: b.bytes_sent - a.bytes_sent,
    }
}

/// The default datastore's container on Azurite, reached the way `code::stage` reaches it.
fn datastore_container(azurite: &Azurite) -> BlobContainer {
    let name = "azureml-blobstore-00000000-0000-0000-0000-000000000000";
    azurite.create_container(name);
    let datastore: DatastoreProperties = serde_json::from_value(serde_json::json!({
        "datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": name,
        "endpoint": "core.windows.net", "protocol": "https",
        "credentials": {"credentialsType": "AccountKey"}
    }))
    .unwrap();
    let endpoint = parse_blob_endpoint(&azurite.account_url()).unwrap();
    let url = container_url(&datastore, Some(&endpoint)).unwrap();
    let sas_url = azurite.container_sas_url(name, Duration::from_secs(7200));
    let secrets = DatastoreSecrets {
        secrets_type: "Sas".into(),
        sas_token: Some(Secret::new(sas_url.split_once('?').unwrap().1)),
    };
    sas_container(url, &secrets).unwrap()
}

/// One measured upload.
fn measure(
    label: &str,
    rt: &tokio::runtime::Runtime,
    azurite: &Azurite,
    container: &BlobContainer,
    snapshot: &Snapshot,
    options: &UploadOptions,
) {
    let log0 = azurite.requests().len();
    let s0 = container.stats();
    let t = Instant::now();
    let out = rt
        .block_on(upload(snapshot, container, options, &NoProgress))
        .unwrap();
    let elapsed = t.elapsed();
    let log1 = azurite.requests().len();
    report(
        &format!(
            "{label} ({} uploaded, {} copied server-side)",
            out.uploaded_files, out.copied_files
        ),
        &diff(s0, container.stats()),
        elapsed,
        log1 - log0,
    );
}

/// Changes the content of the `n`th file of `snapshot` and takes the tree again.
fn change_one_file(root: &Path, snapshot: &Snapshot, n: usize, limits: &Limits) -> Snapshot {
    let changed = &snapshot.manifest.files[n].path;
    std::fs::write(root.join(changed), format!("changed content {n}\n")).unwrap();
    take_dir(root, limits).unwrap()
}

fn main() {
    let files = env_or("SNAPSHOT_BENCH_FILES", 10_000);
    let total = env_or("SNAPSHOT_BENCH_MB", 500) * 1_000_000;
    let dir = tempfile::tempdir_in(
        std::env::var("SNAPSHOT_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()),
    )
    .unwrap();
    let root = dir.path().join("tree");
    let start = Instant::now();
    generate(&root, files, total);
    let limits = Limits {
        max_bytes: u64::MAX,
        max_files: u64::MAX,
    };
    println!(
        "generated {files} files in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // Hashing, page cache warm for both (each is run 3 times, best time kept).
    let (ours, snap) = time(|| take_dir(&root, &limits).unwrap());
    let bytes = snap.manifest.total_bytes();
    let (tool, name) = find_tool();
    let script = format!("find . -type f -print0 | xargs -0 {tool} > /dev/null");
    let (theirs, ok) = time(|| {
        Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(&root)
            .status()
            .unwrap()
            .success()
    });
    assert!(ok, "{name} failed");
    let rate = |d: Duration| mib(bytes) / d.as_secs_f64();
    println!(
        "hashing {} files, {:.1} MiB: amlops (walk + ignore rules + BLAKE3 manifest) {:.3} s = {:.0} MiB/s; \
         {name} (find | xargs) {:.3} s = {:.0} MiB/s; ratio amlops/{name} time = {:.2}",
        snap.manifest.files.len(),
        mib(bytes),
        ours.as_secs_f64(),
        rate(ours),
        theirs.as_secs_f64(),
        rate(theirs),
        ours.as_secs_f64() / theirs.as_secs_f64()
    );

    // Upload against Azurite, through the datastore path.
    let azurite = Azurite::start();
    let container = datastore_container(&azurite);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = UploadOptions::default();
    measure(
        "first submission",
        &rt,
        &azurite,
        &container,
        &snap,
        &options,
    );
    let files = files as usize;
    let second = change_one_file(&root, &snap, files / 2, &limits);
    measure(
        &format!(
            "resubmission, one file changed, {} copies at once",
            options.copy_concurrency
        ),
        &rt,
        &azurite,
        &container,
        &second,
        &options,
    );
    let narrow = UploadOptions {
        copy_concurrency: options.concurrency,
        ..options.clone()
    };
    let third = change_one_file(&root, &second, files / 3, &limits);
    measure(
        &format!(
            "resubmission, one file changed, {} copies at once",
            narrow.copy_concurrency
        ),
        &rt,
        &azurite,
        &container,
        &third,
        &narrow,
    );
}
