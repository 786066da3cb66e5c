//! Source rules a compiler cannot check, checked by reading the source (as TigerBeetle's
//! `tidy.zig` does).

use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Every atomic, lock and epoch type comes from `sync.rs`, so that loom can swap them all;
/// a type taken from elsewhere would silently escape the models.
#[test]
fn synchronization_primitives_come_only_from_the_sync_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 10, "found the engine's sources");
    let banned =
        ["std::sync::atomic", "std::sync::Mutex", "parking_lot", "crossbeam_epoch::", "loom::sync"];
    for file in files {
        let name = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().into_owned();
        if name == "sync.rs" || name == "tidy.rs" || name == "loom_models.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|error| panic!("reading {name}: {error}"));
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for pattern in banned {
                assert!(
                    !code.contains(pattern),
                    "{name}:{}: `{pattern}` outside sync.rs: {line}",
                    number + 1
                );
            }
        }
    }
}
