//! Build script: records the git commit ksim is built from (`KSIM_GIT_COMMIT`), for the
//! provenance in `verdict.json` that `ksim replay` compares. "unknown" outside a checkout;
//! a `-dirty` suffix when tracked files differ from the commit.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Sources: a change makes the tree dirty (the crate is rebuilt anyway).
    for path in ["src", "Cargo.toml", "Cargo.lock"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|status| !status.is_empty());
            // A new commit moves HEAD or the branch it names (only files that exist, or
            // cargo would rerun this script on every build).
            let git_dir = git(&["rev-parse", "--git-dir"]);
            let common_dir = git(&["rev-parse", "--git-common-dir"]);
            let head_ref = git(&["symbolic-ref", "-q", "HEAD"]);
            let mut watched = Vec::new();
            if let Some(dir) = &git_dir {
                watched.push(format!("{dir}/HEAD"));
            }
            if let Some(dir) = common_dir.as_ref().or(git_dir.as_ref()) {
                watched.push(format!("{dir}/packed-refs"));
                if let Some(head_ref) = &head_ref {
                    watched.push(format!("{dir}/{head_ref}"));
                }
            }
            for file in watched {
                if Path::new(&file).exists() {
                    println!("cargo:rerun-if-changed={file}");
                }
            }
            if dirty {
                format!("{commit}-dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=KSIM_GIT_COMMIT={commit}");
}
