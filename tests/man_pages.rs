//! The manual pages of the kms-server package (`packaging/man/`) against the code: `kms(8)` and
//! `kms-cluster-key(8)` document every option and subcommand of the binaries' `--help`, and
//! `kms.toml(5)` every section and key that `kms::config::load` accepts (and nothing more).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/man_page.rs"]
mod man_page;

use std::path::Path;

use man_page::{binary_problems, config_problems, read_page, PROBE_KEY};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn kms_8_documents_every_option_and_command() {
    let problems = binary_problems(
        &read_page(root(), "kms.8"),
        Path::new(env!("CARGO_BIN_EXE_kms")),
    );
    assert!(problems.is_empty(), "kms.8: {problems:#?}");
}

#[test]
fn kms_cluster_key_8_documents_every_option() {
    let problems = binary_problems(
        &read_page(root(), "kms-cluster-key.8"),
        Path::new(env!("CARGO_BIN_EXE_kms-cluster-key")),
    );
    assert!(problems.is_empty(), "kms-cluster-key.8: {problems:#?}");
}

#[test]
fn kms_toml_5_documents_every_section_and_key() {
    let probe = |table: &str| format!("{table}\n{PROBE_KEY} = 1\n");
    let texts = [
        ("", format!("{PROBE_KEY} = 1\n")),
        ("[server]", probe("[server]")),
        ("[root]", probe("[root]")),
        ("[store]", probe("[store]")),
        ("[audit]", probe("[audit]")),
        ("[[credentials]]", probe("[[credentials]]")),
        ("[[users]]", probe("[[users]]")),
        ("[[groups]]", probe("[[groups]]")),
        ("[[roles]]", probe("[[roles]]")),
        ("[[guardrails]]", probe("[[guardrails]]")),
        ("[[clusters]]", probe("[[clusters]]")),
        (
            "[[clusters.members]]",
            probe("[[clusters]]\n[[clusters.members]]"),
        ),
        ("[xks]", probe("[xks]")),
        ("[limits]", probe("[limits]")),
        (
            "[limits.accounts.ACCOUNT]",
            probe("[limits.accounts.\"111122223333\"]"),
        ),
    ];
    let probes: Vec<(&str, &str)> = texts.iter().map(|(h, t)| (*h, t.as_str())).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kms.toml");
    let load = |text: &str| {
        std::fs::write(&file, text).unwrap();
        match kms::config::load(Some(&file), Vec::new()) {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        }
    };
    let problems = config_problems(&read_page(root(), "kms.toml.5"), &probes, load);
    assert!(problems.is_empty(), "kms.toml.5: {problems:#?}");
}
