//! Scenarios: attaching a VM with an SSH key from a Secret, AlreadyAttached, detach, secrets
//! never leaking, and every Kubernetes call allowed by the chart's RBAC.

mod controller_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use controller_support::*;
use serde_json::{Value, json};

const VM_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----vm-private-key-material-91c2";
const VM_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1";

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn vm_spec() -> Value {
    json!({"workspaceRef": {"name": "ws"}, "remoteVM": {"resourceId": VM_ID, "address": "10.0.0.4", "username": "azureuser", "privateKeySecretRef": {"name": "vm-key", "key": "id_rsa"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_a_late_secret_detach_and_no_secret_anywhere() {
    let logs = Logs::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .init();
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", None);
    env.compute_target("vm-one", vm_spec());

    // The key's Secret does not exist yet: Stalled, naming it; no PUT.
    let ct = env
        .wait_for("ComputeTarget", "vm-one", 30, |o| {
            condition(o, "Stalled").is_some()
        })
        .await;
    assert_eq!(condition(&ct, "Stalled").unwrap().1, "SecretNotFound");
    let msg = ct["status"]["lastError"]["message"].as_str().unwrap();
    assert!(msg.contains("vm-key") && msg.contains("id_rsa"), "{msg}");
    assert_eq!(env.compute_calls("PUT"), 0);

    // The Secret appears: the ComputeTarget recovers without any change to it.
    env.kube.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vm-key", "namespace": NS}, "stringData": {"id_rsa": VM_KEY}})).unwrap();
    let ct = env.wait_for("ComputeTarget", "vm-one", 30, is_ready).await;
    assert_eq!(condition(&ct, "Ready").unwrap().1, "Attached");
    assert_eq!(
        ct["status"]["attached"], true,
        "the fake marks a compute attached when the PUT carried properties.resourceId"
    );
    assert_eq!(ct["status"]["computeType"], "VirtualMachine");
    assert!(ct["status"].get("lastError").is_none());
    assert_eq!(env.compute_calls("PUT"), 1);

    // A second object for the same VM is refused, naming the first.
    env.compute_target("vm-again", json!({"workspaceRef": {"name": "ws"}, "azureName": "vm-two", "remoteVM": vm_spec()["remoteVM"]}));
    let dup = env
        .wait_for("ComputeTarget", "vm-again", 30, |o| {
            condition(o, "Stalled").is_some()
        })
        .await;
    assert_eq!(condition(&dup, "Stalled").unwrap().1, "AlreadyAttached");
    assert!(
        dup["status"]["conditions"].to_string().contains("vm-one"),
        "{:#}",
        dup["status"]
    );
    assert_eq!(env.compute_calls("PUT"), 1);

    // Deleting the duplicate never detaches the first one's compute; deleting the first detaches.
    env.kube
        .delete(AMLOPS, "ComputeTarget", NS, "vm-again")
        .unwrap();
    env.wait_gone("ComputeTarget", "vm-again", 30).await;
    assert_eq!(env.compute_calls("DELETE"), 0);
    env.kube
        .delete(AMLOPS, "ComputeTarget", NS, "vm-one")
        .unwrap();
    env.wait_gone("ComputeTarget", "vm-one", 30).await;
    let deletes: Vec<_> = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0].query.contains("underlyingResourceAction=Detach"),
        "{deletes:#?}"
    );
    env.wait_for_event("vm-one", "Normal", "Detached", 10).await;

    // No secret value in any object (statuses, events) or log line.
    let mut everything = String::new();
    for kind in ["ComputeTarget", "Workspace"] {
        everything
            .push_str(&serde_json::to_string(&env.kube.list(AMLOPS, kind, Some(NS))).unwrap());
    }
    everything.push_str(
        &serde_json::to_string(&env.kube.list("events.k8s.io/v1", "Event", Some(NS))).unwrap(),
    );
    assert!(
        everything.contains("SecretNotFound"),
        "the scan sees the statuses and events"
    );
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("executed"),
        "the scan sees the controller's logs"
    );
    for secret in [VM_KEY, SP_SECRET] {
        assert!(
            !everything.contains(secret),
            "a secret value leaked into an object"
        );
        assert!(
            !logs.contains(secret),
            "a secret value leaked into the logs"
        );
    }
    assert_rbac_allows(&env);
}
