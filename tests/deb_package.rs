//! The Debian package, installed on this machine as an administrator would: built by
//! `scripts/package/build.sh` from the debug binary this suite has already built (no second
//! build), installed with `dpkg -i`, the service's own commands run as its user (`check`, and
//! one `run --once --now` on the embedded default), its unit verified, then purged.
//!
//! Needs root and dpkg. Without dpkg the test says so loudly and passes; as any other user
//! it fails (it cannot install a package).

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const PACKAGE: &str = "push-connector";
const USER: &str = "push-connector";
const STATE: &str = "/var/lib/push-connector";
const CONFIG: &str = "/etc/push-connector/connector.toml";
const UNIT: &str = "/lib/systemd/system/push-connector.service";

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command, killed past `limit`; its output, or a failure naming it.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).map(|_| b)
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        stderr.read_to_end(&mut b).map(|_| b)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

fn ok(cmd: &mut Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let o = run(cmd, limit);
    assert!(
        o.status.success(),
        "{what}: {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

fn purge() {
    let _ = run(
        Command::new("dpkg").args(["--purge", PACKAGE]),
        Duration::from_secs(120),
    );
}

/// Purges the package however the test ends, so a failure leaves nothing installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        purge();
    }
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.parse().ok()
}

fn gid_of(group: &str) -> Option<u32> {
    let out = Command::new("getent")
        .args(["group", group])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.parse().ok()
}

/// The service's command as its unit runs it: as its user, with no configuration from the
/// environment, from a folder that is not the state folder (every path must be absolute).
fn as_service(args: &[&str]) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args([
        "-u",
        USER,
        "--",
        "/usr/bin/push-connector",
        "--config",
        CONFIG,
    ])
    .args(args)
    .current_dir("/")
    .env_remove("PUSH_CONNECTOR_CONFIG")
    .env_remove("PUSH_CONNECTOR_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("PUSH_CONNECTOR__") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_debian_package_installs_runs_as_its_user_and_purges() {
    if !on_path("dpkg") {
        eprintln!(
            "\n\n*** SKIPPED the_debian_package_installs_runs_as_its_user_and_purges: dpkg is \
             not on this machine, so the Debian package is neither built nor tested ***\n"
        );
        return;
    }
    // Root: the owner of this process's /proc entry.
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1);
    assert_eq!(me, 0, "installing a package with dpkg needs root");

    // One test at a time on a machine may install the package (several worktrees' suites).
    let lock = std::fs::File::create("/var/lock/push-connector-deb-test.lock").unwrap();
    lock.lock().unwrap();
    if installed() {
        purge();
    }
    assert!(
        uid_of(USER).is_none(),
        "a {USER} user exists before the install"
    );

    // The package, from the binary the suite built (its target folder and profile).
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_push-connector"));
    let profile_dir = binary.parent().unwrap();
    let target = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("no profile folder in {}", binary.display()),
    };
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let built = ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package/build.sh"))
            .args(["--profile", profile, "--no-build", "--fast", "--output"])
            .arg(out.path())
            .env("CARGO_TARGET_DIR", target),
        Duration::from_secs(600),
    );
    let deb = PathBuf::from(built.lines().last().unwrap().trim());
    assert!(deb.is_file(), "build.sh names {}", deb.display());
    eprintln!("the package built in {:?}", started.elapsed());

    let package = Installed;
    ok(
        Command::new("dpkg").arg("-i").arg(&deb),
        Duration::from_secs(300),
    );

    // Its own system user: no shell, no login, home the state folder.
    let entry = ok(
        Command::new("getent").args(["passwd", USER]),
        Duration::from_secs(10),
    );
    let fields: Vec<&str> = entry.trim().split(':').collect();
    assert_eq!(fields[5], STATE, "{entry}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{entry}");
    let uid = uid_of(USER).unwrap();
    assert!(uid < 1000, "a system user: {entry}");
    let shadow = ok(
        Command::new("getent").args(["shadow", USER]),
        Duration::from_secs(10),
    );
    let password = shadow.split(':').nth(1).unwrap_or_default();
    assert!(
        password.starts_with('!') || password.starts_with('*'),
        "no password login: {password:?}"
    );

    // The configuration is a conffile, readable by the service's group only.
    let conffiles = ok(
        Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]),
        Duration::from_secs(10),
    );
    assert!(conffiles.contains(CONFIG), "{conffiles}");
    let group = gid_of(USER).unwrap();
    let readable_by_the_service = || {
        for file in [CONFIG, "/etc/push-connector/environment"] {
            let meta = std::fs::metadata(file).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{file}");
            assert_eq!((meta.uid(), meta.gid()), (0, group), "{file}");
        }
    };
    readable_by_the_service();
    let config = std::fs::read_to_string(CONFIG).unwrap();
    assert!(config.contains("\nstate_dir = \"/var/lib/push-connector\"\n"));
    assert!(config.contains("\ntemplates = \"/usr/share/push-connector/templates\"\n"));
    assert!(
        !config.contains("\n[[organisation]]"),
        "no organisation configured"
    );
    assert!(Path::new("/usr/share/push-connector/templates/acknowledgement.txt").is_file());
    let state = std::fs::metadata(STATE).unwrap();
    assert_eq!(state.permissions().mode() & 0o777, 0o700);
    assert_eq!(state.uid(), uid);

    // The unit: the service's command as its user, hardened.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "User=push-connector",
        "ExecStart=/usr/bin/push-connector --config /etc/push-connector/connector.toml run",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/push-connector",
        "PrivateTmp=yes",
        "StateDirectoryMode=0700",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in\n{unit}");
    }
    if on_path("systemd-analyze") {
        let o = run(
            Command::new("systemd-analyze").args(["verify", UNIT]),
            Duration::from_secs(60),
        );
        let said =
            String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
        // Only what concerns this unit: without a running systemd, verify also remarks on
        // the machine's other units.
        let ours: Vec<&str> = said
            .lines()
            .filter(|l| l.contains("push-connector"))
            .collect();
        assert!(o.status.success() && ours.is_empty(), "{said}");
    } else {
        eprintln!("systemd-analyze is not here: the unit's contents were checked, not verified");
    }

    // What the unit runs, run as its user: check, then one pass of the service.
    let checked = ok(&mut as_service(&["check"]), Duration::from_secs(120));
    assert!(
        checked.contains(
            "ok      templates: /usr/share/push-connector/templates (18 of 18 from there"
        ),
        "{checked}"
    );
    assert!(
        checked.contains("ok      state: /var/lib/push-connector/state.sqlite"),
        "{checked}"
    );
    assert!(
        checked.contains("WARNING no organisation is configured"),
        "{checked}"
    );
    ok(
        &mut as_service(&["run", "--once", "--now"]),
        Duration::from_secs(120),
    );
    let written: Vec<PathBuf> = std::fs::read_dir(STATE)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        written.iter().any(|p| p.ends_with("state.sqlite")),
        "{written:?}"
    );
    for p in &written {
        assert_eq!(std::fs::metadata(p).unwrap().uid(), uid, "{}", p.display());
    }
    let state = std::fs::metadata(STATE).unwrap();
    assert_eq!(state.permissions().mode() & 0o777, 0o700);
    assert_eq!(state.uid(), uid);

    // An upgrade (the package installed again over itself) keeps the configuration's
    // owner and mode and the state; the service still starts and finds its databases.
    ok(
        Command::new("dpkg").arg("-i").arg(&deb),
        Duration::from_secs(300),
    );
    readable_by_the_service();
    assert!(Path::new(STATE).join("state.sqlite").is_file());
    ok(&mut as_service(&["check"]), Duration::from_secs(120));

    // Purged: nothing of it is left, not even its user.
    drop(package);
    assert!(!installed());
    for gone in [
        STATE,
        "/etc/push-connector",
        "/usr/bin/push-connector",
        UNIT,
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after the purge");
    }
    assert!(uid_of(USER).is_none(), "the user is left after the purge");
    assert!(gid_of(USER).is_none(), "the group is left after the purge");
    let overrides = ok(
        Command::new("dpkg-statoverride").arg("--list"),
        Duration::from_secs(10),
    );
    assert!(!overrides.contains("/etc/push-connector"), "{overrides}");
}
