//! Test support: the real Azurite blob emulator as a child process.
//!
//! Tests use the emulator rather than a hand-written fake so blob semantics (block lists,
//! copies, SAS validation) are Azure's, not ours. Azurite is found in `$AZURITE_BIN`, in
//! `node_modules/.bin` under the repository root, or in `PATH`; when it is missing the
//! tests fail with an instruction to install it (they never skip silently).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The emulator's well-known account (public, documented by Microsoft; not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// SAS version we sign with; Azurite 3 accepts it and it has the 2020-12-06 string-to-sign layout.
const SAS_VERSION: &str = "2021-10-04";

/// One running Azurite blob service; killed (by pid) when dropped.
pub struct Azurite {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// One line of Azurite's access log: the method and the path (query removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

impl Azurite {
    /// Starts Azurite on a free 127.0.0.1 port with its data in a fresh temp dir and
    /// waits until it accepts connections. Panics (failing the test) with an install hint
    /// when the binary is missing.
    pub fn start() -> Azurite {
        let bin = find_binary().unwrap_or_else(|| {
            panic!(
                "azurite-blob not found (looked in $AZURITE_BIN, node_modules/.bin under the repository root, and PATH); \
                 install it with `npm install azurite` in the repository root"
            )
        });
        // A port picked free can be taken by a parallel test before Azurite binds it: then
        // this Azurite exits (address in use) and we try another port.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir for azurite");
            let port = free_port();
            let log =
                std::fs::File::create(dir.path().join("access.log")).expect("azurite log file");
            let child = Command::new(&bin)
                .args([
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    &port.to_string(),
                    "--location",
                ])
                .arg(dir.path().join("data"))
                .args(["--disableTelemetry", "--skipApiVersionCheck"])
                .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
                .stderr(Stdio::from(log))
                .stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let mut azurite = Azurite { child, port, dir };
            match azurite.wait_ready() {
                Ok(()) => return azurite,
                Err(e) => last_error = e,
            }
        }
        panic!("azurite did not start after 5 attempts: {last_error}");
    }

    /// Ready when our own process says it listens on its port (not merely when something
    /// answers there: that could be another test's emulator).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let listening = format!("listens on http://127.0.0.1:{}", self.port);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "azurite exited early ({status}); log:\n{}",
                    self.log_text()
                ));
            }
            if self.log_text().contains(&listening)
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "azurite did not listen on port {} within 30 s; log:\n{}",
                    self.port,
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` (path-style, as the emulator serves it).
    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// This emulator as the blob storage the fake ARM server signs upload SAS URLs for.
    pub fn storage_backend(&self) -> crate::StorageBackend {
        crate::StorageBackend {
            blob_endpoint: self.account_url(),
            account: ACCOUNT.to_string(),
            account_key_b64: ACCOUNT_KEY.to_string(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A container-level service SAS URL (read, add, create, write, delete, list) valid for `ttl`.
    pub fn container_sas_url(&self, container: &str, ttl: Duration) -> String {
        format!(
            "{}/{container}?{}",
            self.account_url(),
            container_sas(container, ttl)
        )
    }

    /// Creates a container (idempotent: an existing container is fine).
    pub fn create_container(&self, container: &str) {
        let url = format!(
            "{}/{container}?restype=container&{}",
            self.account_url(),
            account_sas_create()
        );
        let status = http_put_empty(self.port, &url);
        assert!(
            status == 201 || status == 409,
            "creating container {container} in azurite answered HTTP {status}"
        );
    }

    /// The access log so far (Azurite writes one line per request, shortly after answering,
    /// so this waits until the log has been quiet for 150 ms).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        let mut last = self.log_text();
        loop {
            std::thread::sleep(Duration::from_millis(150));
            let now = self.log_text();
            if now == last {
                return now.lines().filter_map(parse_access_line).collect();
            }
            last = now;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        // Child::kill signals exactly this pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `127.0.0.1 - - [date] "PUT /path?query HTTP/1.1" 201 -`.
fn parse_access_line(line: &str) -> Option<LoggedRequest> {
    let start = line.find('"')?;
    let rest = &line[start + 1..];
    let end = rest.find('"')?;
    let mut request = rest[..end].split(' ');
    let method = request.next()?.to_string();
    let target = request.next()?;
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(LoggedRequest {
        method,
        path: path.to_string(),
        query: query.to_string(),
        status,
    })
}

fn find_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("AZURITE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut dir = Some(Path::new(env!("CARGO_MANIFEST_DIR")));
    while let Some(d) = dir {
        let candidate = d.join("node_modules/.bin/azurite-blob");
        if candidate.is_file() {
            return Some(candidate);
        }
        dir = d.parent();
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("azurite-blob"))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn sign(string_to_sign: &str) -> String {
    let key = STANDARD
        .decode(ACCOUNT_KEY)
        .expect("well-known key is base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac accepts any key length");
    mac.update(string_to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn expiry(ttl: Duration) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::try_from(ttl).expect("ttl fits");
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Service SAS (sr=c) with the 2020-12-06+ string-to-sign layout.
fn container_sas(container: &str, ttl: Duration) -> String {
    let permissions = "racwdl";
    let se = expiry(ttl);
    let resource = format!("/blob/{ACCOUNT}/{container}");
    let fields = [
        permissions,
        "",
        &se,
        &resource,
        "",
        "",
        "",
        SAS_VERSION,
        "c",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ];
    let sig = sign(&fields.join("\n"));
    query(&[
        ("sv", SAS_VERSION),
        ("sp", permissions),
        ("se", &se),
        ("sr", "c"),
        ("sig", &sig),
    ])
}

/// Account SAS allowing container creation only.
fn account_sas_create() -> String {
    let se = expiry(Duration::from_secs(600));
    let fields = [ACCOUNT, "c", "b", "c", "", &se, "", "", SAS_VERSION, "", ""];
    let sig = sign(&fields.join("\n"));
    query(&[
        ("sv", SAS_VERSION),
        ("ss", "b"),
        ("srt", "c"),
        ("sp", "c"),
        ("se", &se),
        ("sig", &sig),
    ])
}

fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A minimal blocking HTTP/1.1 PUT with an empty body; returns the status code.
fn http_put_empty(port: u16, url: &str) -> u16 {
    use std::io::Read;
    let target = url
        .split_once(&format!("127.0.0.1:{port}"))
        .map(|(_, t)| t)
        .expect("url on azurite");
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect azurite");
    write!(
        stream,
        "PUT {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-ms-version: {SAS_VERSION}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable azurite response: {response}"))
}
