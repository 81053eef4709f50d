//! The default datastore and the two upload paths against Azurite: `listSecrets` hands out a
//! working account SAS on the datastore container (job/…dependency_label_resolution.json #2–#3),
//! `startPendingUpload` a fresh container with a write-but-not-delete SAS (code/…2023-10-31.json
//! #1), and `datastore_secrets_forbidden` refuses `listSecrets` with 403.

mod common;

use common::{Harness, assert_same_keys, fast, fixture};
use fake_azureml::Options;
use fake_azureml::azurite::{ACCOUNT, Azurite};
use serde_json::{Value, json};

const VERSION: &str = "2021-12-02";

async fn start(azurite: &Azurite, forbidden: bool) -> Harness {
    Harness::start(Options {
        storage: Some(azurite.storage_backend()),
        datastore_secrets_forbidden: forbidden,
        ..fast()
    })
    .await
}

fn query_value<'a>(sas: &'a str, key: &str) -> Option<&'a str> {
    sas.trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
}

/// `PUT` of a block blob; returns the status.
async fn put_blob(http: &reqwest::Client, url: &str, body: &str, meta: Option<&str>) -> u16 {
    let mut req = http
        .put(url)
        .header("x-ms-version", VERSION)
        .header("x-ms-blob-type", "BlockBlob")
        .header("Content-Length", body.len().to_string())
        .body(body.to_string());
    if let Some(status) = meta {
        req = req.header("x-ms-meta-upload_status", status);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_datastore_answers_as_recorded_and_its_sas_works() {
    let get = fixture("datastore_get.json");
    let secrets = fixture("datastore_list_secrets.json");
    let azurite = Azurite::start();
    let h = start(&azurite, false).await;
    let store = h
        .call("GET", &h.ws_url("/datastores/workspaceblobstore"), None)
        .await;
    assert_eq!(store.status, get["status"]);
    for pointer in ["", "/properties", "/properties/credentials"] {
        assert_same_keys(&get["responseBody"], &store.body, pointer);
    }
    for same in [
        "credentials",
        "datastoreType",
        "endpoint",
        "protocol",
        "isDefault",
        "serviceDataAccessAuthIdentity",
    ] {
        assert_eq!(
            store.body["properties"][same], get["responseBody"]["properties"][same],
            "{same}"
        );
    }
    let props = &store.body["properties"];
    assert_eq!(props["accountName"], ACCOUNT);
    let guid = h.call("GET", &h.ws_url(""), None).await.body["properties"]["workspaceId"].clone();
    let container = props["containerName"].as_str().unwrap();
    assert_eq!(
        container,
        format!("azureml-blobstore-{}", guid.as_str().unwrap())
    );

    let listed = h
        .call(
            "POST",
            &h.ws_url("/datastores/workspaceblobstore/listSecrets"),
            Some(secrets["requestBody"].clone()),
        )
        .await;
    assert_eq!(listed.status, secrets["status"], "{:?}", listed.body);
    assert_same_keys(&secrets["responseBody"], &listed.body, "");
    assert_eq!(listed.body["secretsType"], "Sas");
    let sas = listed.body["sasToken"].as_str().unwrap();
    let recorded_sas = secrets["responseBody"]["sasToken"].as_str().unwrap();
    assert!(sas.starts_with('?') && recorded_sas.starts_with('?'));
    for key in ["sp", "srt", "ss"] {
        assert_eq!(
            query_value(sas, key),
            query_value(recorded_sas, key),
            "{key}"
        );
    }
    let expiry: jiff::Timestamp = query_value(sas, "se")
        .unwrap()
        .replace("%3A", ":")
        .parse()
        .unwrap();
    let hours = expiry.duration_since(jiff::Timestamp::now()).as_secs_f64() / 3600.0;
    assert!(
        (0.9..=1.0).contains(&hours),
        "expireAfterHours 1, got {hours} h"
    );

    // The SAS works on the datastore container, which now exists: write as the SDK does
    // (LocalUpload/<hash>/ with upload_status metadata), read back, list, delete.
    let http = reqwest::Client::new();
    let blob = format!(
        "{}/{container}/LocalUpload/abc/train.py",
        azurite.account_url()
    );
    assert_eq!(
        put_blob(
            &http,
            &format!("{blob}{sas}"),
            "print(1)\n",
            Some("completed")
        )
        .await,
        201
    );
    let head = http
        .head(format!("{blob}{sas}"))
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-ms-meta-upload_status"], "completed");
    let list = http
        .get(format!(
            "{}/{container}{sas}&restype=container&comp=list&prefix=LocalUpload/",
            azurite.account_url()
        ))
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert!(
        list.text()
            .await
            .unwrap()
            .contains("LocalUpload/abc/train.py")
    );
    let deleted = http
        .delete(format!("{blob}{sas}"))
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202, "sp=rcuwdl includes delete");
}

#[tokio::test]
async fn list_secrets_can_be_forbidden() {
    let azurite = Azurite::start();
    let h = start(&azurite, true).await;
    let refused = h
        .call(
            "POST",
            &h.ws_url("/datastores/workspaceblobstore/listSecrets"),
            Some(json!({"expirableSecret": true, "expireAfterHours": 1})),
        )
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["error"]["code"], "AuthorizationFailed");
    assert!(!refused.body.to_string().contains("sig="));
    assert_eq!(
        h.call("GET", &h.ws_url("/datastores/workspaceblobstore"), None)
            .await
            .status,
        200,
        "the datastore itself stays readable"
    );
}

#[tokio::test]
async fn pending_upload_containers_take_writes_but_not_deletes() {
    let azurite = Azurite::start();
    let h = start(&azurite, false).await;
    let upload = |version: &'static str| {
        let url = h.ws_url(&format!("/codes/src/versions/{version}/startPendingUpload"));
        let h = &h;
        async move {
            h.call(
                "POST",
                &url,
                Some(json!({"pendingUploadType": "TemporaryBlobReference"})),
            )
            .await
            .body["blobReferenceForConsumption"]
                .clone()
        }
    };
    let (first, second): (Value, Value) = (upload("1").await, upload("1").await);
    assert_ne!(
        first["blobUri"], second["blobUri"],
        "a fresh container per call"
    );
    let blob_uri = first["blobUri"].as_str().unwrap();
    assert!(
        blob_uri.starts_with(&azurite.account_url()),
        "Azurite's http URL is kept: {blob_uri}"
    );
    let sas_uri = first["credential"]["sasUri"].as_str().unwrap();
    let (container_url, sas) = sas_uri.split_once('?').unwrap();
    assert_eq!(container_url, blob_uri);
    assert_eq!(query_value(sas, "sp"), Some("rcwl"));
    let http = reqwest::Client::new();
    let blob = format!("{container_url}/code.txt?{sas}");
    assert_eq!(put_blob(&http, &blob, "hello", None).await, 201);
    let read = http
        .get(&blob)
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(read.text().await.unwrap(), "hello");
    let deleted = http
        .delete(&blob)
        .header("x-ms-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 403, "no delete permission");
    let other = second["credential"]["sasUri"].as_str().unwrap();
    let (other_container, _) = other.split_once('?').unwrap();
    assert_eq!(
        put_blob(
            &http,
            &format!("{other_container}/code.txt?{sas}"),
            "x",
            None
        )
        .await,
        403,
        "a container SAS is good for its own container only"
    );
}
