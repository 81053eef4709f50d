//! `amlops apply` with Azure-backed objects: the real binary against the fake Azure ML server,
//! trusting its CA through SSL_CERT_FILE, authenticating with a service principal Secret
//! from the manifests.

use std::process::{Command, Output};

use serde_json::Value;

const SP_SECRET: &str = "sp-secret-value-never-printed";

fn amlops(dir: &std::path::Path, ca: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amlops"))
        .args(args)
        .current_dir(dir)
        .env("SSL_CERT_FILE", ca)
        .env_remove("AMLOPS_STATE")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn condition(obj: &Value, type_: &str) -> Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_and_aml_compute_converge_against_azure_and_delete_cleans_up() {
    let fake = fake_azureml::FakeAzureMl::start(fake_azureml::Options {
        compute_provision_delay: std::time::Duration::from_millis(300),
        lro_retry_after_secs: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: sp}}\nstringData:\n  AZURE_TENANT_ID: 11111111-1111-1111-1111-111111111111\n  AZURE_CLIENT_ID: client-1\n  AZURE_CLIENT_SECRET: {SP_SECRET}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: Workspace\nmetadata: {{name: ml}}\nspec:\n  subscriptionId: 00000000-0000-0000-0000-000000000001\n  resourceGroup: rg1\n  workspaceName: ws1\n  \
         credential: {{servicePrincipal: {{secretRef: {{name: sp}}}}}}\n  endpoints: {{resourceManager: \"{}\", authorityHost: \"{}\"}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: cpu-cluster}}\nspec:\n  workspaceRef: {{name: ml}}\n  amlCompute: {{vmSize: STANDARD_D2_V2, minNodes: 0, maxNodes: 2}}\n",
        fake.arm_endpoint(),
        fake.authority_host()
    );
    std::fs::write(dir.path().join("azure.yaml"), manifests).unwrap();

    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["apply", "-f", "azure.yaml", "--timeout", "60s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let get = |kind: &str, name: &str| -> Value {
        let out = amlops(dir.path(), &ca, &["get", kind, name, "-o", "json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ws = tokio::task::block_in_place(|| get("amlws", "ml"));
    assert_eq!(condition(&ws, "Ready")["status"], "True", "{ws:#}");
    assert!(ws["status"]["location"].is_string());
    let ct = tokio::task::block_in_place(|| get("ct", "cpu-cluster"));
    assert_eq!(condition(&ct, "Ready")["status"], "True", "{ct:#}");
    assert_eq!(ct["status"]["provisioningState"], "Succeeded");
    assert_eq!(fake.count("PUT", "/computes/cpu-cluster"), 1);
    assert!(
        !ws.to_string().contains(SP_SECRET)
            && !ct.to_string().contains(SP_SECRET)
            && !text(&out).contains(SP_SECRET)
    );

    // Applying the same manifests again writes nothing to Azure.
    let out =
        tokio::task::block_in_place(|| amlops(dir.path(), &ca, &["apply", "-f", "azure.yaml"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fake.count("PUT", "/computes/cpu-cluster"), 1);
    assert_eq!(fake.count("PATCH", "/computes/cpu-cluster"), 0);

    // Deleting goes through the finalizer: the compute is deleted in Azure, then the object goes.
    let out = tokio::task::block_in_place(|| {
        amlops(
            dir.path(),
            &ca,
            &["delete", "ct", "cpu-cluster", "--timeout", "60s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("computetarget/cpu-cluster deleted"),
        "{}",
        text(&out)
    );
    let deletes: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/computes/cpu-cluster"))
        .collect();
    assert_eq!(deletes.len(), 1);
    assert!(deletes[0].query.contains("underlyingResourceAction=Delete"));
    fake.shutdown().await;
}
