//! Snapshot uploads against the real Azurite emulator: incremental, content-addressed uploads
//! into a datastore container, and whole uploads into a pending-upload container. Requests are
//! counted in Azurite's own access log, not only by the client.

use std::fs;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use amlops::azure::Secret;
use amlops::azure::blob::{BlobContainer, BlobOptions};
use amlops::azure::models::workspace::{DatastoreProperties, DatastoreSecrets};
use amlops::azure::storage::{container_url, parse_blob_endpoint, sas_container};
use amlops::snapshot::{
    Limits, NoProgress, Progress, SKETCH_METADATA, Transfer, UploadOptions, manifest_blob,
    take_dir, upload, upload_whole,
};
use fake_azureml::azurite::{ACCOUNT, Azurite, LoggedRequest};

fn container(azurite: &Azurite) -> BlobContainer {
    azurite.create_container("code");
    BlobContainer::from_sas_url(&azurite.container_sas_url("code", Duration::from_secs(3600)))
        .unwrap()
}

fn tree(root: &Path, files: usize) {
    for i in 0..files {
        let p = root.join(format!("pkg{}/mod{i}.py", i % 3));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("value = {i}\n")).unwrap();
    }
}

/// Requests Azurite logged after the first `from` ones.
fn requests_since(azurite: &Azurite, from: usize) -> Vec<LoggedRequest> {
    azurite.requests().into_iter().skip(from).collect()
}

fn count(log: &[LoggedRequest], pred: impl Fn(&LoggedRequest) -> bool) -> usize {
    log.iter().filter(|r| pred(r)).count()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Transfer)>>);

impl Progress for Recorder {
    fn file_done(&self, path: &str, _bytes: u64, how: Transfer) {
        self.0.lock().unwrap().push((path.to_string(), how));
    }
}

#[tokio::test]
async fn resubmission_with_one_changed_file_sends_one_blob_plus_manifest() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 20);
    fs::write(src.path().join("same_a.txt"), "duplicate").unwrap();
    fs::write(src.path().join("same_b.txt"), "duplicate").unwrap();

    // First submission: every distinct content is sent once, the duplicate is copied.
    let first = take_dir(src.path(), &Limits::default()).unwrap();
    let before = azurite.requests().len();
    let out1 = upload(&first, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let log1 = requests_since(&azurite, before);
    assert_eq!((out1.uploaded_files, out1.copied_files), (21, 1));
    assert_eq!(out1.folder, format!("LocalUpload/{}", first.id));
    let file_puts = |log: &[LoggedRequest]| {
        count(log, |r| {
            r.method == "PUT" && r.path.contains("/code/LocalUpload/") && !r.query.contains("comp=")
        })
    };
    assert_eq!(
        file_puts(&log1),
        22,
        "21 uploads + 1 copy land in the folder"
    );
    assert_eq!(
        count(&log1, |r| r.status >= 400 && r.status != 404),
        0,
        "{log1:?}"
    );
    let listed = c.list_with_metadata("amlops-manifests/").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].metadata.contains_key(SKETCH_METADATA),
        "the manifest carries its sketch: {listed:?}"
    );

    // Same tree again: the manifest is there, nothing else happens.
    let before = azurite.requests().len();
    let again = upload(&first, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(again.already_complete);
    let log_again = requests_since(&azurite, before);
    assert_eq!(
        log_again.len(),
        1,
        "one HEAD of the manifest: {log_again:?}"
    );
    assert_eq!(log_again[0].method, "HEAD");

    // One file changed: exactly one file's bytes are sent; the other 21 are server-side copies
    // found through the first snapshot's manifest.
    fs::write(src.path().join("pkg0/mod0.py"), "value = 'changed'\n").unwrap();
    let second = take_dir(src.path(), &Limits::default()).unwrap();
    assert_ne!(second.id, first.id);
    let stats_before = c.stats();
    let before = azurite.requests().len();
    let progress = Recorder::default();
    let out2 = upload(&second, &c, &UploadOptions::default(), &progress)
        .await
        .unwrap();
    let log2 = requests_since(&azurite, before);
    assert_eq!(
        (out2.uploaded_files, out2.copied_files, out2.present_files),
        (1, 21, 0)
    );
    assert_eq!(out2.uploaded_bytes, "value = 'changed'\n".len() as u64);
    assert_eq!(file_puts(&log2), 22, "1 upload + 21 copies");
    let stats = c.stats();
    assert_eq!(
        stats.put_blob - stats_before.put_blob,
        2,
        "changed file + manifest"
    );
    assert_eq!(stats.copy - stats_before.copy, 21);
    assert_eq!(stats.put_block - stats_before.put_block, 0);
    assert_eq!(
        count(&log2, |r| r.method == "GET"
            && !r.query.contains("comp=list")),
        1,
        "the first snapshot's manifest is read: {log2:?}"
    );
    assert!(
        log2.iter()
            .any(|r| r.method == "GET" && r.path.ends_with(&manifest_blob(&first.id))),
        "{log2:?}"
    );
    let writes: Vec<&LoggedRequest> = log2.iter().filter(|r| r.method == "PUT").collect();
    assert!(
        writes
            .last()
            .is_some_and(|r| r.path.ends_with(&manifest_blob(&second.id))),
        "the manifest is the last write: {writes:?}"
    );
    let done = progress.0.lock().unwrap().clone();
    assert_eq!(
        done.iter()
            .filter(|(_, how)| *how == Transfer::Uploaded)
            .count(),
        1
    );
    assert!(done.contains(&("pkg0/mod0.py".to_string(), Transfer::Uploaded)));

    // The copied folder is complete and correct.
    let listed = c.list(&format!("{}/", out2.folder)).await.unwrap();
    assert_eq!(listed.len(), 22);
    let got = c
        .get_blob(&format!("{}/pkg1/mod1.py", out2.folder))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"value = 1\n");
}

#[tokio::test]
async fn an_unrelated_snapshot_reads_no_manifest() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let a = tempfile::tempdir().unwrap();
    tree(a.path(), 5);
    let first = take_dir(a.path(), &Limits::default()).unwrap();
    upload(&first, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let b = tempfile::tempdir().unwrap();
    fs::write(b.path().join("other.py"), "print('other')\n").unwrap();
    let second = take_dir(b.path(), &Limits::default()).unwrap();
    let before = c.stats();
    let out = upload(&second, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((out.uploaded_files, out.copied_files), (1, 0));
    assert_eq!(c.stats().get - before.get, 0, "its sketch shares nothing");
}

#[tokio::test]
async fn concurrent_uploads_of_different_snapshots_never_write_the_same_blob() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let base = tempfile::tempdir().unwrap();
    tree(base.path(), 30);
    let first = take_dir(base.path(), &Limits::default()).unwrap();
    upload(&first, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    // Four variants of the base, each with its own extra file, uploaded at once.
    let variants: Vec<_> = (0..4)
        .map(|i| {
            let dir = tempfile::tempdir().unwrap();
            tree(dir.path(), 30);
            fs::write(
                dir.path().join(format!("extra{i}.py")),
                format!("x = {i}\n"),
            )
            .unwrap();
            let snap = take_dir(dir.path(), &Limits::default()).unwrap();
            (dir, snap)
        })
        .collect();
    let before = azurite.requests().len();
    let options = UploadOptions::default();
    let outcomes = futures::future::join_all(
        variants
            .iter()
            .map(|(_, s)| upload(s, &c, &options, &NoProgress)),
    )
    .await;
    for out in outcomes {
        let out = out.unwrap();
        assert_eq!((out.uploaded_files, out.copied_files), (1, 30));
    }
    let log = requests_since(&azurite, before);
    let mut written: Vec<&str> = log
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.as_str())
        .collect();
    let total = written.len();
    written.sort();
    written.dedup();
    assert_eq!(written.len(), total, "every blob is written once");
    assert_eq!(count(&log, |r| r.status == 409 || r.status == 412), 0);
}

#[tokio::test]
async fn interrupted_upload_resumes_and_skips_blobs_already_there() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 6);
    let snap = take_dir(src.path(), &Limits::default()).unwrap();
    // Simulate a crash after two files: they exist, the manifest does not.
    let folder = format!("LocalUpload/{}", snap.id);
    for f in &snap.manifest.files[..2] {
        c.upload_file(&format!("{folder}/{}", f.path), &src.path().join(&f.path))
            .await
            .unwrap();
    }
    let out = upload(&snap, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert!(!out.already_complete);
    assert_eq!((out.present_files, out.uploaded_files), (2, 4));
    assert!(c.exists(&manifest_blob(&snap.id)).await.unwrap());
}

#[tokio::test]
async fn large_files_in_a_snapshot_go_up_in_blocks() {
    let azurite = Azurite::start();
    let options = BlobOptions {
        block_size: 512 * 1024,
        single_put_max: 512 * 1024,
        ..BlobOptions::default()
    };
    let c = container(&azurite).with_options(options);
    let src = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(2 * 1024 * 1024 + 5))
        .map(|i: u32| (i * 7 % 256) as u8)
        .collect();
    fs::write(src.path().join("weights.bin"), &big).unwrap();
    fs::write(src.path().join("small.py"), "x").unwrap();
    let snap = take_dir(src.path(), &Limits::default()).unwrap();
    let out = upload(&snap, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(out.uploaded_files, 2);
    let stats = c.stats();
    assert_eq!(
        (stats.put_block, stats.put_block_list),
        (5, 1),
        "4 full blocks + 1 partial"
    );
    let got = c
        .get_blob(&format!("{}/weights.bin", out.folder))
        .await
        .unwrap()
        .unwrap();
    assert!(got[..] == big[..]);
}

#[tokio::test]
async fn a_copy_source_that_vanished_falls_back_to_upload() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 2);
    let first = take_dir(src.path(), &Limits::default()).unwrap();
    upload(&first, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    // Delete one blob the first manifest points at, then submit a changed tree.
    let victim = format!("LocalUpload/{}/{}", first.id, first.manifest.files[0].path);
    let url = {
        let mut u = c.blob_url(&victim);
        let sas = azurite.container_sas_url("code", Duration::from_secs(60));
        u.set_query(sas.split_once('?').map(|(_, q)| q));
        u
    };
    let status = reqwest::Client::new()
        .delete(url)
        .header("x-ms-version", "2021-10-04")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);
    fs::write(src.path().join("new.py"), "new").unwrap();
    let second = take_dir(src.path(), &Limits::default()).unwrap();
    let out = upload(&second, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (out.uploaded_files, out.copied_files),
        (2, 1),
        "new file + the vanished one re-sent"
    );
    let got = c
        .get_blob(&format!("{}/{}", out.folder, first.manifest.files[0].path))
        .await
        .unwrap();
    assert!(got.is_some());
}

/// The datastore path end to end: the container URL from a datastore as Azure describes it,
/// the Workspace's blob endpoint override (the emulator), and a SAS as `listSecrets` answers.
#[tokio::test]
async fn a_snapshot_lands_in_the_datastore_container_named_by_the_datastore() {
    let azurite = Azurite::start();
    let name = "azureml-blobstore-8e7dad76-df37-472b-b882-0c1c58adfcf9";
    azurite.create_container(name);
    let datastore: DatastoreProperties = serde_json::from_value(serde_json::json!({
        "datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": name,
        "endpoint": "core.windows.net", "protocol": "https",
        "credentials": {"credentialsType": "AccountKey"}
    }))
    .unwrap();
    let endpoint = parse_blob_endpoint(&azurite.account_url()).unwrap();
    let url = container_url(&datastore, Some(&endpoint)).unwrap();
    let sas_url = azurite.container_sas_url(name, Duration::from_secs(600));
    let secrets = DatastoreSecrets {
        secrets_type: "Sas".into(),
        sas_token: Some(Secret::new(format!(
            "?{}",
            sas_url.split_once('?').unwrap().1
        ))),
    };
    let c = sas_container(url, &secrets).unwrap();
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 3);
    let snap = take_dir(src.path(), &Limits::default()).unwrap();
    let out = upload(&snap, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        out.folder_url.as_str(),
        format!("{}/{name}/LocalUpload/{}", azurite.account_url(), snap.id)
    );
    assert_eq!(out.uploaded_files, 3);
    let sig = sas_url.split("sig=").nth(1).unwrap();
    let shown = format!("{c:?} {out:?}");
    assert!(!shown.contains(sig), "{shown}");
}

#[tokio::test]
async fn a_whole_upload_only_puts_files_at_the_container_root() {
    let azurite = Azurite::start();
    let c = container(&azurite);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 4);
    fs::write(src.path().join("dup.txt"), "value = 0\n").unwrap();
    let snap = take_dir(src.path(), &Limits::default()).unwrap();
    let before = azurite.requests().len();
    let out = upload_whole(&snap, &c, &UploadOptions::default(), &NoProgress)
        .await
        .unwrap();
    let log = requests_since(&azurite, before);
    assert_eq!((out.uploaded_files, out.copied_files), (5, 0));
    assert_eq!(out.folder, "");
    assert!(
        out.folder_url.as_str().ends_with("/code/"),
        "{}",
        out.folder_url
    );
    // `sp=rcwl`: create and write only; no listing, no copies, no reads, no manifest.
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.method == "PUT" && !r.query.contains("comp="))
    );
    let got = c.get_blob("pkg1/mod1.py").await.unwrap().unwrap();
    assert_eq!(&got[..], b"value = 1\n");
}
