//! The tiny `/bin/sh` supervisor every run starts under, and the run's environment.
//! The supervisor runs the command as its child, waits, and writes the exit code
//! atomically into the run directory, so the outcome survives a crash of amlops.
//! Pure string building only; spawning is in `run`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// Quotes `s` for a POSIX shell: single quotes, with `'` written as `'\''`.
pub(crate) fn shell_quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'\'');
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// The `sh -c` script: the command comes in as positional parameters (`"$@"`), so it
/// needs no quoting; only the exit-code path is embedded, quoted.
pub(crate) fn wrapper_script(exit_code_path: &Path) -> OsString {
    let mut tmp = exit_code_path.as_os_str().to_owned();
    tmp.push(".tmp");
    let (path, tmp) = (
        shell_quote(exit_code_path.as_os_str().as_bytes()),
        shell_quote(tmp.as_bytes()),
    );
    let mut script = b"\"$@\"\ncode=$?\nprintf '%s\\n' \"$code\" > ".to_vec();
    script.extend_from_slice(&tmp);
    script.extend_from_slice(b" && mv -f ");
    script.extend_from_slice(&tmp);
    script.push(b' ');
    script.extend_from_slice(&path);
    script.push(b'\n');
    OsString::from_vec(script)
}

/// Variables passed through from the amlops process; everything else (cloud
/// credentials, tokens) stays out of the user's script, as it would on Azure.
const PASSED_THROUGH: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];

/// Builds the run's environment: passed-through variables, `PYTHONUNBUFFERED=1` (so
/// `logs -f` streams), the user's variables, then the `AZUREML_*` ones; the
/// interpreter's directory goes first on `PATH` so `python`/`pip` mean the staged ones.
pub(crate) fn run_environment<'a>(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    user: impl IntoIterator<Item = (&'a String, &'a String)>,
    azureml: &[(&str, &str)],
    interpreter_dir: Option<&Path>,
) -> Vec<(OsString, OsString)> {
    let mut env: std::collections::BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            PASSED_THROUGH.contains(&k.as_ref()) || k.starts_with("LC_")
        })
        .collect();
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    env.extend(user.into_iter().map(|(k, v)| (k.into(), v.into())));
    env.extend(azureml.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    if let Some(dir) = interpreter_dir {
        let mut path = dir.as_os_str().to_owned();
        if let Some(rest) = env.get(OsStr::new("PATH")).filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(rest);
        }
        env.insert("PATH".into(), path);
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::process::Command;

    #[test]
    fn quoting_round_trips_through_sh() {
        for s in ["plain", "it's", "a b", "$HOME", "`x`", "\"q\"", "'", ""] {
            let quoted = String::from_utf8(shell_quote(s.as_bytes())).unwrap();
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {quoted}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn wrapper_records_exit_code_in_awkward_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("it's a $dir");
        std::fs::create_dir(&sub).unwrap();
        let exit = sub.join("exit_code");
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(wrapper_script(&exit))
            .args(["amlops-run", "sh", "-c", "exit 7; echo '$@'"])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(&exit).unwrap(), "7\n");
        assert!(!sub.join("exit_code.tmp").exists());
    }

    #[test]
    fn environment_filters_and_layers() {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("PYTHONUNBUFFERED", "0"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let user = BTreeMap::from([
            ("LR".to_string(), "0.1".to_string()),
            ("AZUREML_RUN_ID".to_string(), "spoofed".to_string()),
        ]);
        let env: BTreeMap<_, _> = run_environment(
            inherited,
            &user,
            &[("AZUREML_RUN_ID", "r1")],
            Some(Path::new("/env/bin")),
        )
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
        let expected: BTreeMap<String, String> = [
            ("AZUREML_RUN_ID", "r1"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C"),
            ("LR", "0.1"),
            ("PATH", "/env/bin:/usr/bin"),
            ("PYTHONUNBUFFERED", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(env, expected);
    }
}
