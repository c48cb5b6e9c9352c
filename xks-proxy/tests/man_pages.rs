//! The manual pages of the xks-proxy package (`packaging/man/`) against the code:
//! `xks-proxy(8)` documents every option and subcommand of the binary's `--help`, and
//! `xks-proxy.toml(5)` every section and key that `xks_proxy::config::parse` accepts (and
//! nothing more).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/common/man_page.rs"]
mod man_page;

use std::path::{Path, PathBuf};

use man_page::{binary_problems, config_problems, read_page, PROBE_KEY};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn xks_proxy_8_documents_every_option_and_command() {
    let problems = binary_problems(
        &read_page(&root(), "xks-proxy.8"),
        Path::new(env!("CARGO_BIN_EXE_xks-proxy")),
    );
    assert!(problems.is_empty(), "xks-proxy.8: {problems:#?}");
}

#[test]
fn xks_proxy_toml_5_documents_every_section_and_key() {
    let probe = |table: &str| format!("{table}\n{PROBE_KEY} = 1\n");
    let texts = [
        ("", format!("{PROBE_KEY} = 1\n")),
        ("[server]", probe("[server]")),
        ("[tls]", probe("[tls]")),
        ("[metrics]", probe("[metrics]")),
        ("[limits]", probe("[limits]")),
        ("[pool]", probe("[pool]")),
        ("[health]", probe("[health]")),
        ("[crypto]", probe("[crypto]")),
        ("[identity]", probe("[identity]")),
        ("[reload]", probe("[reload]")),
        ("[[hsms]]", probe("[[hsms]]")),
        ("[[keys]]", probe("[[keys]]")),
        ("[[keystores]]", probe("[[keystores]]")),
        (
            "[[keystores.credentials]]",
            probe("[[keystores]]\n[[keystores.credentials]]"),
        ),
        (
            "[keystores.authorization]",
            probe("[[keystores]]\n[keystores.authorization]"),
        ),
        (
            "[[keystores.authorization.rules]]",
            probe("[[keystores]]\n[keystores.authorization]\n[[keystores.authorization.rules]]"),
        ),
    ];
    let probes: Vec<(&str, &str)> = texts.iter().map(|(h, t)| (*h, t.as_str())).collect();
    let load = |text: &str| match xks_proxy::config::parse(text, Path::new("."), "probe") {
        Ok(_) => "accepted".to_string(),
        Err(e) => e.to_string(),
    };
    let problems = config_problems(&read_page(&root(), "xks-proxy.toml.5"), &probes, load);
    assert!(problems.is_empty(), "xks-proxy.toml.5: {problems:#?}");
}
