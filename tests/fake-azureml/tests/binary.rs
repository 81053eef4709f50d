//! The `fake-azureml` binary: first stdout line is the endpoint JSON, it serves HTTPS with the
//! CA it wrote, and SIGTERM stops it with a zero exit status.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn prints_endpoints_serves_and_exits_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("fake-azureml-bin-test-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-azureml"))
        .args(["--listen", "127.0.0.1:0", "--tls-dir"])
        .arg(&dir)
        .args(["--compute-provision-delay-ms", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let info: Value = serde_json::from_str(&first).unwrap();
    let arm = info["arm"].as_str().unwrap();
    assert!(arm.starts_with("https://127.0.0.1:"), "{info}");
    assert!(
        info["login"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let pem = std::fs::read(info["caFile"].as_str().unwrap()).unwrap();

    let client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let ws = format!(
        "{arm}/subscriptions/s1/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws-bin?api-version=2026-07-01"
    );
    let resp = client.get(&ws).bearer_auth("t").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let discovery = info["discovery"].as_str().unwrap();
    assert_eq!(discovery, format!("{arm}/discovery"));
    let hosts: Value = client
        .get(discovery)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hosts["history"], arm);

    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "fake-azureml did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        client.get(&ws).bearer_auth("t").send().await.is_err(),
        "nothing listens after exit"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
