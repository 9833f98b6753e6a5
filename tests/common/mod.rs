//! Helpers shared by the integration tests: running the binary and golden files.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `samples/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with arguments, in `dir`, with no configuration from the environment.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .output()
        .expect("the binary runs")
}

/// Whether `id` has the shape of a portal ID this service mints: a UUID, hyphenated, lower
/// case (`3e2072aa-bb42-4047-bab2-bcccd54316eb`).
pub fn is_minted_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it. On a mismatch the
/// actual text is left beside it as `<name>.failed` and the test fails with both.
pub fn assert_golden(path: &Path, actual: &str) {
    let failed = path.with_extension("failed");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        let _ = std::fs::remove_file(&failed);
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "no golden file {} (run with UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    if expected != actual {
        std::fs::write(&failed, actual).expect("write .failed");
        panic!(
            "{} differs from the golden file; actual output written to {}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display(),
            failed.display()
        );
    }
    let _ = std::fs::remove_file(&failed);
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command");
    assert!(o.status.success(), "openssl {args:?}: {o:?}");
}

/// A CA (`ca.crt`) and a certificate for 127.0.0.1 it signed (`server.crt`, `server.key`).
pub fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=push-connector test CA",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// A running `push-connector serve`, stopped when dropped.
pub struct Serve {
    child: std::process::Child,
    /// The SCIM base URL it announced (`http(s)://127.0.0.1:PORT/v2`).
    pub url: String,
    /// The folder it runs in, when the helper made it.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// The process ID (of `prlimit`'s child too: it execs the binary).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its peak resident memory so far (`VmHWM`), in KiB, where `/proc` tells.
    pub fn peak_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The URL without `/v2` (where `/oauth/token` is).
    pub fn root(&self) -> &str {
        self.url.strip_suffix("/v2").unwrap_or(&self.url)
    }
}

/// Imports the sample export (`samples/directory.csv`) into `dir`'s embedded directory.
pub fn import_samples(dir: &Path) {
    let o = run_in(
        dir,
        &[
            "directory",
            "import",
            root()
                .join("samples/directory.csv")
                .to_str()
                .expect("UTF-8 path"),
        ],
    );
    assert!(o.status.success(), "{o:?}");
}

/// Starts `serve --listen LISTEN` in `dir` (with `--config CONFIG` when given) and the
/// variables `env` (no fixed token unless `env` sets one), and waits until it listens.
pub fn start_serve(dir: &Path, config: Option<&str>, listen: &str, env: &[(&str, &str)]) -> Serve {
    start_serve_capped(dir, config, listen, env, &[])
}

/// As [`start_serve`], under the resource limits `prlimit` (e.g. `--as=1073741824`,
/// `--nofile=256`); none when empty.
pub fn start_serve_capped(
    dir: &Path,
    config: Option<&str>,
    listen: &str,
    env: &[(&str, &str)],
    prlimit: &[&str],
) -> Serve {
    use std::io::BufRead as _;
    let bin = env!("CARGO_BIN_EXE_push-connector");
    let mut command = if prlimit.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new("prlimit");
        c.args(prlimit).arg("--").arg(bin);
        c
    };
    if let Some(config) = config {
        command.args(["--config", config]);
    }
    let mut child = command
        .args(["serve", "--listen", listen])
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env_remove("PUSH_CONNECTOR__SERVE__TOKEN")
        .env_remove("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve announces its address");
    let url = line
        .trim()
        .strip_prefix("serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Serve {
        child,
        url,
        _dir: None,
    }
}

/// `serve` on a free port with bearer token `token` for every organisation (`["*"]`), over a
/// folder of its own seeded with the sample export.
pub fn serve_seeded(token: &str) -> Serve {
    let dir = tempfile::tempdir().expect("tempdir");
    import_samples(dir.path());
    let mut serve = start_serve(
        dir.path(),
        None,
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", token),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    );
    serve._dir = Some(dir);
    serve
}

/// An HTTP client for the tests' own loopback servers (rustls with ring), giving up after
/// `timeout`; with `self_signed`, it trusts any certificate (the tests' servers make theirs).
pub fn http(timeout: std::time::Duration, self_signed: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .tls_danger_accept_invalid_certs(self_signed)
        .build()
        .unwrap()
}
