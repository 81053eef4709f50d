//! The blob container client against the real Azurite emulator.

use std::time::Duration;

use amlops::azure::blob::{BlobContainer, BlobError, BlobOptions};
use bytes::Bytes;
use fake_azureml::azurite::Azurite;

fn container(azurite: &Azurite, name: &str) -> BlobContainer {
    azurite.create_container(name);
    BlobContainer::from_sas_url(&azurite.container_sas_url(name, Duration::from_secs(3600)))
        .unwrap()
}

#[tokio::test]
async fn put_get_exists_list_and_copy() {
    let azurite = Azurite::start();
    let c = container(&azurite, "code");
    assert!(!c.exists("dir/a.txt").await.unwrap());
    assert!(c.get_blob("dir/a.txt").await.unwrap().is_none());
    c.put_blob("dir/a.txt", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    c.put_blob("dir/sub dir/b#1.txt", Bytes::from_static(b"bee"))
        .await
        .unwrap();
    c.put_blob("other/c.txt", Bytes::from_static(b"c"))
        .await
        .unwrap();
    assert!(c.exists("dir/a.txt").await.unwrap());
    assert_eq!(
        &c.get_blob("dir/a.txt").await.unwrap().unwrap()[..],
        b"hello"
    );

    let mut names: Vec<_> = c
        .list("dir/")
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.size))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("dir/a.txt".to_string(), 5),
            ("dir/sub dir/b#1.txt".to_string(), 3)
        ]
    );

    c.copy_blob("copied/a.txt", "dir/a.txt").await.unwrap();
    assert_eq!(
        &c.get_blob("copied/a.txt").await.unwrap().unwrap()[..],
        b"hello"
    );
    let copies = azurite
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/copied/a.txt") && r.method == "PUT")
        .count();
    assert_eq!(copies, 1, "one server-side copy request");
    assert_eq!(c.stats().copy, 1);
}

#[tokio::test]
async fn large_file_goes_up_as_blocks_streamed_from_disk() {
    let azurite = Azurite::start();
    let options = BlobOptions {
        block_size: 256 * 1024,
        single_put_max: 256 * 1024,
        ..BlobOptions::default()
    };
    let c = container(&azurite, "big").with_options(options);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bin");
    let content: Vec<u8> = (0..(1024 * 1024 + 1000))
        .map(|i: u32| (i % 251) as u8)
        .collect();
    std::fs::write(&path, &content).unwrap();

    c.upload_file("m/model.bin", &path).await.unwrap();

    let got = c.get_blob("m/model.bin").await.unwrap().unwrap();
    assert_eq!(got.len(), content.len());
    assert!(got[..] == content[..], "content round-trips");
    let log = azurite.requests();
    let blocks = log
        .iter()
        .filter(|r| r.query.contains("comp=block&"))
        .count();
    let lists = log
        .iter()
        .filter(|r| r.query.contains("comp=blocklist"))
        .count();
    assert_eq!(blocks, 5, "4 full 256 KiB blocks + 1 partial");
    assert_eq!(lists, 1);
    assert_eq!(
        (
            c.stats().put_block,
            c.stats().put_block_list,
            c.stats().put_blob
        ),
        (5, 1, 0)
    );
}

#[tokio::test]
async fn metadata_is_written_and_listed_only_when_asked_for() {
    let azurite = Azurite::start();
    let c = container(&azurite, "meta");
    c.put_blob_with_metadata(
        "m/a.json",
        Bytes::from_static(b"{}"),
        &[("amlops_sketch", "0123456789abcdef")],
    )
    .await
    .unwrap();
    c.put_blob("m/b.json", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let listed = c.list_with_metadata("m/").await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].metadata.get("amlops_sketch").map(String::as_str),
        Some("0123456789abcdef")
    );
    assert!(listed[1].metadata.is_empty());
    assert!(listed.iter().all(|i| i.last_modified.is_some()));
    let plain = c.list("m/").await.unwrap();
    assert!(plain.iter().all(|i| i.metadata.is_empty()));
    let lists: Vec<_> = azurite
        .requests()
        .into_iter()
        .filter(|r| r.query.contains("comp=list"))
        .collect();
    assert_eq!(lists.len(), 2);
    assert!(lists[0].query.contains("include=metadata"));
    assert!(!lists[1].query.contains("include"));
}

#[tokio::test]
async fn errors_name_the_blob_and_never_the_signature() {
    let azurite = Azurite::start();
    // No container created: the service answers 404 ContainerNotFound.
    let url = azurite.container_sas_url("missing", Duration::from_secs(60));
    let sig = url.split("sig=").nth(1).unwrap().to_string();
    let c = BlobContainer::from_sas_url(&url).unwrap();
    let err = c
        .put_blob("a/b.txt", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    let text = format!("{err} {err:?} {c:?}");
    assert!(
        text.contains("a/b.txt") && text.contains("404") && text.contains("ContainerNotFound"),
        "{text}"
    );
    assert!(!text.contains(&sig), "{text}");

    // A tampered signature is refused (403) and still not echoed.
    let bad = url.replace(&sig, "AAAA");
    let err = BlobContainer::from_sas_url(&bad)
        .unwrap()
        .exists("x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
}

#[tokio::test]
async fn connection_failures_are_retried_then_reported() {
    // A port nobody listens on: connect errors are retryable; after the retries the error says so.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let options = BlobOptions {
        max_retries: 2,
        base_delay: Duration::from_millis(1),
        ..BlobOptions::default()
    };
    let c = BlobContainer::from_sas_url(&format!(
        "http://127.0.0.1:{port}/devstoreaccount1/c?sv=1&sig=s"
    ))
    .unwrap()
    .with_options(options);
    let err = c.exists("x").await.unwrap_err();
    assert!(matches!(err, BlobError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(c.stats().head, 3, "first attempt + 2 retries");
}

/// A token source that counts how often it is asked.
struct StaticToken(std::sync::atomic::AtomicUsize);

impl amlops::azure::blob::BearerSource for StaticToken {
    fn token(&self) -> futures::future::BoxFuture<'_, Result<String, BlobError>> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async { Ok("tok-123".to_string()) })
    }
}

#[tokio::test]
async fn bearer_auth_sends_the_token_and_authorises_copy_sources() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A one-request-per-connection HTTP stub that records request heads (Azurite serves
    // bearer tokens only over HTTPS with its own certificates).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = sock.read(&mut buf).await.unwrap();
            tx.send(String::from_utf8_lossy(&buf[..n]).to_string())
                .unwrap();
            let answer = "HTTP/1.1 202 Accepted\r\nx-ms-copy-status: success\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            sock.write_all(answer.as_bytes()).await.unwrap();
        }
    });
    let tokens = std::sync::Arc::new(StaticToken(Default::default()));
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/acct/code")).unwrap();
    let c = BlobContainer::new(url, amlops::azure::blob::BlobAuth::Bearer(tokens.clone()));
    c.copy_blob("new/a.py", "old/a.py").await.unwrap();
    let head = rx.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("put /acct/code/new/a.py http/1.1"),
        "{head}"
    );
    assert!(head.contains("authorization: bearer tok-123"), "{head}");
    assert!(
        head.contains("x-ms-copy-source: http://127.0.0.1:"),
        "{head}"
    );
    assert!(
        head.contains("/acct/code/old/a.py\r\n"),
        "no SAS on the source: {head}"
    );
    assert!(
        head.contains("x-ms-copy-source-authorization: bearer tok-123"),
        "{head}"
    );
    assert!(head.contains("x-ms-version: 2021-10-04"), "{head}");
    assert_eq!(tokens.0.load(std::sync::atomic::Ordering::SeqCst), 2);
}
