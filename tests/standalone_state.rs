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

const LOCAL_TARGET: &str = "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: local}\nspec: {local: {}}\n";

/// Runs as a user the file permissions apply to: root reads and writes anything, so as root
/// the tests run amlops as `nobody` on a directory given to it.
fn unprivileged(dir: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    // The test created `dir`: its owner is the user the test runs as.
    let me = std::fs::metadata(dir).unwrap();
    if me.uid() != 0 {
        return (me.uid(), me.gid());
    }
    let nobody = (65534, 65534);
    let give =
        |p: &std::path::Path| std::os::unix::fs::chown(p, Some(nobody.0), Some(nobody.1)).unwrap();
    give(dir);
    for entry in std::fs::read_dir(dir).unwrap() {
        give(&entry.unwrap().path());
    }
    nobody
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn readers_work_on_a_read_only_state_and_writers_say_which_path_and_why() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ct.yaml"), LOCAL_TARGET).unwrap();
    std::fs::create_dir(dir.path().join("locked")).unwrap();
    let (uid, gid) = unprivileged(dir.path());
    let run = |args: &[&str]| {
        amlops_in(dir.path())
            .args(args)
            .uid(uid)
            .gid(gid)
            .output()
            .unwrap()
    };
    let out = run(&["apply", "-f", "ct.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let state = dir.path().join(".amlops");
    for file in std::fs::read_dir(&state).unwrap() {
        set_mode(&file.unwrap().path(), 0o400);
    }
    set_mode(&state, 0o500);
    for (args, shows) in [
        (&["get", "ct"][..], "local   Local"),
        (&["describe", "ct", "local"], "Name:         local"),
        (&["validate", "-f", "ct.yaml"], "1 objects valid"),
        (&["plan", "-f", "ct.yaml"], "computetarget/local: no change"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(shows), "{args:?}: {}", text(&out));
    }
    let out = run(&["apply", "-f", "ct.yaml"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(".amlops/state.db"), "{said}");
    assert!(
        [
            "read-only for you",
            "not writable by you",
            "Permission denied"
        ]
        .iter()
        .any(|why| said.contains(why)),
        "{said}"
    );

    // A state that cannot be created: which path, why, and what to do.
    set_mode(&dir.path().join("locked"), 0o500);
    let out = run(&["apply", "-f", "ct.yaml", "--state", "locked/new/state.db"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("cannot create the state locked/new (for --state locked/new/state.db)")
            && said.contains("choose a --state in a directory you can write"),
        "{said}"
    );
    assert_eq!(said.matches("os error").count(), 1, "{said}");
    // Reading a state that is not there reads nothing and creates nothing.
    let out = run(&["get", "ct", "--state", "locked/new/state.db"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("No resources found"), "{}", text(&out));
    assert!(!dir.path().join("locked/new").exists());
}

#[test]
fn a_broken_state_is_reported_once_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ct.yaml"), LOCAL_TARGET).unwrap();
    let run = |args: &[&str]| amlops_in(dir.path()).args(args).output().unwrap();
    assert_eq!(run(&["apply", "-f", "ct.yaml"]).status.code(), Some(0));

    // An object the store cannot read: its key, the path and serde's words, once.
    let db = dir.path().join(".amlops/state.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("UPDATE objects SET object = '{\"spec\": '", [])
        .unwrap();
    let said = text(&run(&["get", "ct"]));
    assert!(
        said.contains(
            "state store .amlops/state.db: ComputeTarget default/local holds an unreadable object"
        ),
        "{said}"
    );
    assert_eq!(said.matches("EOF while parsing").count(), 1, "{said}");

    // Not a database at all: SQLite's words once, not three times.
    std::fs::write(
        &db,
        "not a database, only text, long enough to hold a header of one",
    )
    .unwrap();
    for args in [&["get", "ct"][..], &["apply", "-f", "ct.yaml"]] {
        let out = run(args);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(
            said.contains("state store .amlops/state.db"),
            "{args:?}: {said}"
        );
        assert_eq!(
            said.matches("not a database").count(),
            1,
            "{args:?}: {said}"
        );
    }

    // A directory given as --state is refused, not made private and then failed on.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o755);
    let said = text(&run(&["apply", "-f", "ct.yaml", "--state", "shared"]));
    assert!(
        said.contains(
            "--state shared is a directory; it names the database file, e.g. shared/state.db"
        ),
        "{said}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o755
    );
}
