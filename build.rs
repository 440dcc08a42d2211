//! Embeds the git commit and the target triple for `artifact --version`.

use std::process::Command;

fn main() {
    let commit = std::env::var("ARTIFACT_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=ARTIFACT_COMMIT={commit}");
    println!("cargo:rustc-env=ARTIFACT_TARGET={target}");
    println!("cargo:rerun-if-env-changed=ARTIFACT_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
