//! Runs a browser scenario (a Node script in tests/browser/ driving Debian's
//! Chromium through playwright-core) against a running mgmt.
//!
//! `scripts/setup` installs Chromium and the scenario's npm packages. Each
//! scenario gets its own artifacts folder, `target/browser-artifacts/<name>/`,
//! where it leaves its screenshots (kept after the run, pass or fail) and,
//! on failure, `failure.png` of the page as it was.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// tests/browser (the scenarios and their package.json).
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Where a scenario's screenshots go: `<target>/browser-artifacts/<name>/`.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/
    let target = exe
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.parent())
        .expect("target dir");
    target.join("browser-artifacts").join(name)
}

/// Runs `node tests/browser/<script>` with `CROSSLINE_URL=<url>`, the
/// artifacts folder in `CROSSLINE_ARTIFACTS` and the extra `env`; panics with
/// the scenario's output if it fails or outlives `deadline` (then it is killed).
/// Returns the artifacts folder.
pub fn run_scenario(script: &str, url: &str, env: &[(&str, &str)], deadline: Duration) -> PathBuf {
    let dir = scenarios_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/setup",
        dir.display()
    );
    assert!(
        Path::new(&chromium()).exists(),
        "Chromium not found at {}: run scripts/setup (installs Debian's chromium)",
        chromium()
    );
    let name = script.trim_end_matches(".mjs");
    let artifacts = artifacts_dir(name);
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let out_path = artifacts.join("output.txt");
    let out = std::fs::File::create(&out_path).expect("scenario output file");
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("CROSSLINE_URL", url)
        .env("CROSSLINE_ARTIFACTS", &artifacts)
        .env("CROSSLINE_CHROMIUM", chromium())
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup output file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting node for {script}: {e} (is Node.js installed?)"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    if let Ok(mut f) = std::fs::File::open(&out_path) {
        let _ = f.read_to_string(&mut output);
    }
    eprintln!(
        "--- browser scenario {script} ---\n{output}--- artifacts: {}",
        artifacts.display()
    );
    match status {
        Some(s) if s.success() => artifacts,
        Some(s) => panic!(
            "browser scenario {script} failed ({s}); screenshots in {}",
            artifacts.display()
        ),
        None => panic!(
            "browser scenario {script} did not finish within {deadline:?}; screenshots in {}",
            artifacts.display()
        ),
    }
}

/// The Chromium binary: `$CROSSLINE_CHROMIUM` or Debian's /usr/bin/chromium.
pub fn chromium() -> String {
    std::env::var("CROSSLINE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}
