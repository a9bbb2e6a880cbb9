//! The layer guard `.ci/layers` (run by CI): passes on this tree, fails on an upward use.

use std::path::Path;
use std::process::Command;

fn guard(src: &Path) -> std::process::Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/layers"))
        .arg(src)
        .output()
        .expect("the guard runs")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_tree_keeps_its_layers_and_an_upward_use_is_caught() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let clean = guard(&src);
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    // The log engine reaching up into the simulation: the guard must name it.
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join("layers-src");
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(&src, &copy);
    let engine = copy.join("log/engine.rs");
    let text = std::fs::read_to_string(&engine).unwrap();
    std::fs::write(&engine, format!("use crate::sim::SimOutput;\n{text}")).unwrap();
    let upward = guard(&copy);
    assert_eq!(upward.status.code(), Some(1));
    let err = String::from_utf8_lossy(&upward.stderr);
    assert!(err.contains("layer violation: log"), "{err}");
    assert!(
        err.contains("log/engine.rs:1:use crate::sim::SimOutput;"),
        "{err}"
    );
}
