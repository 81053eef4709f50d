//! The real azure_identity credentials (client secret, workload identity = client assertion)
//! obtain tokens from the fake's AAD endpoint over TLS, trusting only the generated CA.

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use fake_azureml::{FakeAzureMl, Options};
use std::sync::Arc;

const SCOPE: &str = "https://management.azure.com/.default";

fn client_options(fake: &FakeAzureMl, trust_ca: bool) -> ClientOptions {
    let mut builder = reqwest::Client::builder();
    builder = if trust_ca {
        builder.tls_certs_only([reqwest::Certificate::from_der(&fake.ca_der()).unwrap()])
    } else {
        builder.tls_certs_only([])
    };
    let mut cloud = CustomConfiguration::default();
    cloud.authority_host = fake.authority_host();
    ClientOptions {
        transport: Some(Transport::new(Arc::new(builder.build().unwrap()))),
        cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
        retry: RetryOptions::none(),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn client_secret_credential_gets_a_token() {
    let fake = FakeAzureMl::start(Options::default()).await.unwrap();
    let options = ClientSecretCredentialOptions {
        client_options: client_options(&fake, true),
    };
    let cred = ClientSecretCredential::new(
        "tenant-a",
        "app-a".into(),
        Secret::new("s3cret"),
        Some(options),
    )
    .unwrap();
    let token = cred.get_token(&[SCOPE], None).await.unwrap();
    assert!(
        token
            .token
            .secret()
            .starts_with("fake-token.tenant-a.app-a.")
    );
    assert_eq!(fake.count("POST", "/tenant-a/oauth2/v2.0/token"), 1);
}

#[tokio::test]
async fn workload_identity_credential_gets_a_token_with_a_client_assertion() {
    let fake = FakeAzureMl::start(Options::default()).await.unwrap();
    let token_file =
        std::env::temp_dir().join(format!("fake-azureml-sa-token-{}", std::process::id()));
    std::fs::write(
        &token_file,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2ln",
    )
    .unwrap();
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: client_options(&fake, true),
        },
        client_id: Some("wi-app".into()),
        tenant_id: Some("tenant-b".into()),
        token_file_path: Some(token_file.clone()),
    };
    let cred = WorkloadIdentityCredential::new(Some(options)).unwrap();
    let token = cred.get_token(&[SCOPE], None).await.unwrap();
    assert!(
        token
            .token
            .secret()
            .starts_with("fake-token.tenant-b.wi-app.")
    );
    std::fs::remove_file(token_file).unwrap();
}

#[tokio::test]
async fn a_transport_without_the_ca_is_refused() {
    let fake = FakeAzureMl::start(Options::default()).await.unwrap();
    let options = ClientSecretCredentialOptions {
        client_options: client_options(&fake, false),
    };
    let cred = ClientSecretCredential::new(
        "tenant-a",
        "app-a".into(),
        Secret::new("s3cret"),
        Some(options),
    )
    .unwrap();
    assert!(cred.get_token(&[SCOPE], None).await.is_err());
    assert_eq!(
        fake.count("POST", "/oauth2/"),
        0,
        "no request reached the server"
    );
}
