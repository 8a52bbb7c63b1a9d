//! Running the built binary.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use capstan_store_conformance::TempDir;

/// A `capstan` command on `url`, in an empty working directory (no stray
/// capstan.toml), with `CAPSTAN_DATABASE_URL` set and the API of `serve`
/// on a free port (tests run side by side).
pub(crate) fn capstan(url: &str, dir: &TempDir) -> Command {
    // (This process's HTTP clients, too, need rustls's provider.)
    capstan::runtime::push::install_tls();
    let mut c = Command::new(env!("CARGO_BIN_EXE_capstan"));
    c.current_dir(dir.path())
        .env("CAPSTAN_DATABASE_URL", url)
        .env("CAPSTAN_SERVER_LISTEN", "127.0.0.1:0")
        .env("CAPSTAN_LOG", "warn")
        .stdin(Stdio::null());
    c
}

/// Run with `args`; returns the output.
pub(crate) fn run(url: &str, dir: &TempDir, args: &[&str]) -> Output {
    capstan(url, dir).args(args).output().expect("run capstan")
}

/// Run with `args`, expect exit 0, parse stdout as JSON.
pub(crate) fn json(url: &str, dir: &TempDir, args: &[&str]) -> serde_json::Value {
    let out = run(url, dir, args);
    assert!(
        out.status.success(),
        "capstan {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "capstan {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Start `capstan serve` with extra args.
pub(crate) fn serve(url: &str, dir: &TempDir, args: &[&str]) -> Child {
    capstan(url, dir)
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start capstan serve")
}

/// Send a signal with the system's `kill`.
pub(crate) fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

/// Wait for `child` to exit, at most `within`.
pub(crate) async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A file in `dir` holding `text`.
pub(crate) fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write file");
    p
}
