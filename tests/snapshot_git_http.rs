//! Git sources over HTTPS with a token: a real `git http-backend` (smart HTTP, run as CGI by a
//! small TLS server in this test, its CA trusted through `SSL_CERT_FILE`) behind basic auth.
//! The clone sends the token only when the server asks, a wrong token fails with an error
//! that does not contain it, and a new commit is fetched into the cached clone with the same
//! token.

mod git_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use git_support::git;

use amlops::snapshot::{GitAuth, GitSource, Limits, Secret, SnapshotOptions, Source, take};
use base64::Engine;
use fake_azureml::rustls::{ServerConnection, StreamOwned};

const TOKEN: &str = "ghp_test_token_5d1e";

/// What the server saw: (authorization header present, accepted) per request.
type Seen = Arc<Mutex<Vec<(bool, bool)>>>;

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// Serves `root` with `git http-backend` over HTTPS on 127.0.0.1, one thread per connection;
/// requests need basic auth whose password is [`TOKEN`]. Returns the base URL and the CA.
fn serve(root: PathBuf, seen: Seen) -> (String, String) {
    let tls = fake_azureml::tls::generate().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let config = tls.server_config.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, seen, config) = (root.clone(), seen.clone(), config.clone());
            std::thread::spawn(move || {
                let Ok(conn) = ServerConnection::new(config) else {
                    return;
                };
                let _ = handle(StreamOwned::new(conn, stream), &root, &seen);
            });
        }
    });
    (url, tls.ca_pem)
}

fn handle(stream: Tls, root: &Path, seen: &Seen) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = read_body(
        &mut reader,
        &header("content-length"),
        &header("transfer-encoding"),
    )?;
    let auth = header("authorization");
    let accepted = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair.split_once(':').is_some_and(|(_, p)| p == TOKEN));
    seen.lock().unwrap().push((auth.is_some(), accepted));
    let out = reader.get_mut();
    if !accepted {
        let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        out.write_all(reply.as_bytes())?;
        return out.flush();
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_USER", "x-access-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = cgi.stdin.take() {
        stdin.write_all(&body)?;
    }
    let output = cgi.wait_with_output()?;
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            output
                .stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .unwrap_or((output.stdout.len(), 0));
    let head = String::from_utf8_lossy(&output.stdout[..split.0]).to_string();
    let payload = &output.stdout[split.0 + split.1..];
    let mut status = "200 OK".to_string();
    let mut reply = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => reply.push_str(&format!("{h}\r\n")),
            None => {}
        }
    }
    out.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{reply}Content-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    )?;
    out.write_all(payload)?;
    out.flush()
}

/// A request body by Content-Length, or chunked.
fn read_body(
    reader: &mut impl BufRead,
    length: &Option<String>,
    encoding: &Option<String>,
) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if encoding.as_deref().is_some_and(|e| e.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let n = length.as_deref().and_then(|l| l.parse().ok()).unwrap_or(0);
    body.resize(n, 0);
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn source(url: &str, token: &str) -> Source {
    Source::Git(GitSource {
        url: url.to_string(),
        revision: Some("main".into()),
        sub_path: None,
        auth: GitAuth::Token(Secret::new(token)),
    })
}

#[test]
fn token_authenticated_clone_and_fetch_over_smart_http() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "-q"]);
    std::fs::write(w.join("train.py"), "print('v1')\n").unwrap();
    git(w, &["add", "."]);
    git(w, &["commit", "-q", "-m", "c1"]);
    let root = tempfile::tempdir().unwrap();
    git(
        root.path(),
        &["clone", "-q", "--bare", w.to_str().unwrap(), "repo.git"],
    );
    let seen = Seen::default();
    let (base, ca) = serve(root.path().to_path_buf(), seen.clone());
    let url = format!("{base}/repo.git");
    let ca_file = root.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", &ca_file) };
    let cache = tempfile::tempdir().unwrap();
    let options = SnapshotOptions {
        limits: Limits::default(),
        cache_dir: cache.path().to_path_buf(),
    };

    // A wrong token: refused, and the error does not carry it.
    let wrong = take(&source(&url, "ghp_wrong_token_0000"), &options).unwrap_err();
    assert!(
        !wrong.to_string().contains("ghp_wrong_token_0000"),
        "{wrong}"
    );
    assert!(wrong.to_string().contains(&url), "{wrong}");
    assert!(wrong.to_string().contains("not accepted"), "{wrong}");
    assert!(seen.lock().unwrap().iter().all(|(_, ok)| !ok));

    // The right token: the server asked (401) before it was sent, then the clone worked.
    seen.lock().unwrap().clear();
    let snap = take(&source(&url, TOKEN), &options)
        .unwrap_or_else(|e| panic!("{e}: {:?}", seen.lock().unwrap()));
    assert_eq!(
        std::fs::read_to_string(snap.root.join("train.py")).unwrap(),
        "print('v1')\n"
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.first(), Some(&(false, false)), "{requests:?}");
    assert!(requests.iter().any(|(_, ok)| *ok), "{requests:?}");

    // A new commit is fetched into the cached clone with the same token.
    std::fs::write(w.join("train.py"), "print('v2')\n").unwrap();
    git(w, &["commit", "-q", "-am", "c2"]);
    let bare = root.path().join("repo.git");
    git(w, &["push", "-q", bare.to_str().unwrap(), "main"]);
    let newer = take(&source(&url, TOKEN), &options).unwrap();
    assert_eq!(
        std::fs::read_to_string(newer.root.join("train.py")).unwrap(),
        "print('v2')\n"
    );
    assert_ne!(newer.id, snap.id);

    // A password written into the URL stays out of the error too.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let in_url = format!("https://puller:pa55-in-url@{closed}/repo.git");
    let refused = take(&source(&in_url, TOKEN), &options).unwrap_err();
    assert!(!refused.to_string().contains("pa55-in-url"), "{refused}");
    assert!(!refused.to_string().contains(TOKEN), "{refused}");
}
