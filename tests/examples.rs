//! Every example in `examples/` runs and prints what it says it does.
//!
//! `cargo test` builds the examples; each test runs the built binary, or, when this test
//! was built alone (`cargo test --test examples`), `cargo run --example`.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The example's binary built beside this test (`target/<profile>/examples/<name>`).
fn built(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.is_file().then_some(path)
}

/// Runs the example `name` to completion and returns its output, which must be a success.
fn run(name: &str) -> String {
    let output: Output = match built(name) {
        Some(path) => Command::new(&path).output(),
        None => Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output(),
    }
    .unwrap_or_else(|error| panic!("running example {name}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn kv_shows_a_stable_snapshot_a_transaction_and_a_range_delete() {
    let out = run("kv");
    assert!(out.contains("snapshot sees apple = red"), "{out}");
    assert!(out.contains("now           apple = green"), "{out}");
    assert!(out.contains("fruit/banana = yellow (ripe)"), "{out}");
    assert!(out.contains("after delete_prefix: 0 fruit"), "{out}");
}

#[test]
fn durable_reopens_with_every_commit_and_a_clean_recovery() {
    let out = run("durable");
    assert!(out.contains("checkpoint at version 2"), "{out}");
    assert!(out.contains("reopened at version 4 (was 4): checkpoint version 2"), "{out}");
    assert!(out.contains("clean: true"), "{out}");
    assert!(out.contains("order/2 = shipped\norder/3 = paid\n"), "{out}");
    assert!(!out.contains("order/1 ="), "{out}");
}

#[test]
fn primitives_commit_together_and_a_run_deletes_as_a_whole() {
    let out = run("primitives");
    assert!(out.contains("events: 2 appended, chain verified: true"), "{out}");
    assert!(out.contains("state: cas at version 1 -> Written(2)"), "{out}");
    assert!(out.contains("traces: 1 tagged web, 1 children of the call"), "{out}");
    assert!(out.contains("after the transaction: status Some(Completed), 3 events"), "{out}");
    assert!(out.contains("after delete: kv model present: false, events: 0"), "{out}");
}
