//! Builds the fault-injection PKCS#11 module (`softhsm/fault-module/`) for tests. Shared by the
//! kms and the xks-proxy test suites (the proxy's includes this file by path).

use std::path::Path;

/// Builds the module from the repository at `repo_root` into `out` (atomically, so parallel
/// builds are safe). Panics with the compiler's output when it fails.
pub fn build(repo_root: &Path, out: &Path) {
    let script = repo_root.join("softhsm/fault-module/build.sh");
    let built = std::process::Command::new("bash")
        .arg(&script)
        .arg(out)
        .output()
        .expect("bash must be installed");
    assert!(
        built.status.success(),
        "building the fault module failed (run softhsm/install.sh): {}",
        String::from_utf8_lossy(&built.stderr)
    );
}
