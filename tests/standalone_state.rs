//! What the standalone state does with Secrets that change: the real binary against the fake
//! Azure ML server (its CA trusted through SSL_CERT_FILE).

mod cli_support;

use cli_support::{amlops_in, text};

/// A service principal Workspace `ml` on the fake, the amlCompute `cpu-cluster` in it, and a
/// RunConfiguration `rc` pulling from a private registry whose password is `password`.
fn manifests(fake: &fake_azureml::FakeAzureMl, password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: sp}}\nstringData:\n  AZURE_TENANT_ID: 11111111-1111-1111-1111-111111111111\n  AZURE_CLIENT_ID: client-1\n  AZURE_CLIENT_SECRET: sp-secret\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: Workspace\nmetadata: {{name: ml}}\nspec:\n  subscriptionId: 00000000-0000-0000-0000-000000000001\n  resourceGroup: rg1\n  workspaceName: ws1\n  \
         credential: {{servicePrincipal: {{secretRef: {{name: sp}}}}}}\n  endpoints: {{resourceManager: \"{}\", authorityHost: \"{}\"}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: cpu-cluster}}\nspec:\n  workspaceRef: {{name: ml}}\n  amlCompute: {{vmSize: STANDARD_D2_V2, minNodes: 0, maxNodes: 2}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: registry}}\nstringData: {{password: {password}}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: RunConfiguration\nmetadata: {{name: rc}}\nspec:\n  targetRef: {{name: cpu-cluster}}\n  \
         docker: {{baseImage: private.example.io/train:1, registry: {{address: private.example.io, username: puller, passwordSecretRef: {{name: registry, key: password}}}}}}\n  \
         environment: {{condaDependencies: {{pythonVersion: \"3.11\", pipPackages: [scikit-learn==1.5.2]}}}}\n",
        fake.arm_endpoint(),
        fake.authority_host(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_registry_password_is_configured_and_rewrites_the_connection() {
    let fake = fake_azureml::FakeAzureMl::start(fake_azureml::Options::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, fake.ca_pem()).unwrap();
    let amlops = |args: &[&str]| {
        tokio::task::block_in_place(|| {
            amlops_in(dir.path())
                .args(args)
                .env("SSL_CERT_FILE", &ca)
                .output()
                .unwrap()
        })
    };
    let apply = || amlops(&["apply", "-f", "rc.yaml", "--wait", "--timeout", "60s"]);
    std::fs::write(
        dir.path().join("rc.yaml"),
        manifests(&fake, "first-pass-1a"),
    )
    .unwrap();
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rc: serde_json::Value =
        serde_json::from_slice(&amlops(&["get", "runcfg", "rc", "-o", "json"]).stdout).unwrap();
    let connection = rc["status"]["registryConnection"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fake.count("PUT", "/connections/"), 1);

    // Only the password changes: the Secret is configured and the connection written again.
    std::fs::write(
        dir.path().join("rc.yaml"),
        manifests(&fake, "second-pass-2b"),
    )
    .unwrap();
    let plan = text(&amlops(&["plan", "-f", "rc.yaml"]));
    assert!(
        plan.contains("RunConfiguration \"rc\" writes its registry connection again"),
        "{plan}"
    );
    let out = apply();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("secret/registry configured"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("second-pass-2b"));
    assert_eq!(fake.count("PUT", "/connections/"), 2);
    assert_eq!(
        fake.connections(&connection).last().unwrap()["properties"]["credentials"]["password"],
        "second-pass-2b"
    );
    fake.shutdown().await;
}
