//! The drift guard of the manual pages in `packaging/man/`: a page must document every option
//! and subcommand its binary's `--help` lists, and every section and key its configuration
//! loader accepts, and nothing else. Included (`#[path]`) by `tests/man_pages.rs` (kms,
//! kms-cluster-key, kms.toml) and `xks-proxy/tests/man_pages.rs` (xks-proxy and its file).
//!
//! The pages follow two conventions that this reads:
//! - an option or subcommand is in bold on the tag line of a `.TP` item (`.BI \-\-config " file"`,
//!   `\fB\-\-config\fR`); subcommands are the `.TP` items of `.SH COMMANDS`; positional
//!   arguments are in italics somewhere in the page (`.I output`);
//! - a configuration section is a `.SS` heading (`.SS "[server]"`, `.SS "[[users]]"`), each of
//!   its keys the first bold word of a `.TP` tag line under it: `\fBlisten\fR = ...`.
//!
//! The keys the loader accepts come from the loader itself: serde's `deny_unknown_fields`
//! error for an unknown key lists every key of that table (``unknown field `x`, expected one
//! of `a`, `b` ``), so each section is probed with a file holding one unknown key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The unknown key the probes use.
pub const PROBE_KEY: &str = "zz_not_a_key";

/// A page of `packaging/man/`, read from the workspace at `root`.
pub fn read_page(root: &Path, file: &str) -> String {
    let path = root.join("packaging/man").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Roff text as a reader sees it: font escapes gone, `\-` and `\(dq` resolved.
fn plain(roff: &str) -> String {
    let mut s = roff.replace("\\-", "-").replace("\\(dq", "\"");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        s = s.replace(font, "");
    }
    s.trim().trim_matches('"').to_string()
}

/// The spans of one roff line set in `font` (`'B'` bold or `'I'` italic), as plain text: the
/// `\fB...\fR` escapes, and the arguments of the font macros (`.B`, `.BI`, `.RB`, ...).
fn spans(line: &str, font: char) -> Vec<String> {
    let escape = format!("\\f{font}");
    let escapes = |text: &str| -> Vec<String> {
        text.split(escape.as_str())
            .skip(1)
            .filter_map(|rest| rest.split_once("\\f").map(|(span, _)| plain(span)))
            .collect()
    };
    let Some((name, args)) = line
        .strip_prefix('.')
        .map(|m| m.split_once(' ').unwrap_or((m, "")))
    else {
        return escapes(line);
    };
    let fonts: Vec<char> = name.chars().collect();
    if fonts.is_empty() || fonts.len() > 2 || !fonts.iter().all(|c| "BIR".contains(*c)) {
        return escapes(line);
    }
    let args = macro_args(args);
    if fonts.len() == 1 {
        // `.B` and `.I` set all their arguments in one font.
        let mut out = escapes(&args.join(" "));
        if fonts[0] == font {
            out.push(plain(&args.join(" ")));
        }
        return out;
    }
    // `.BI a b c`: the arguments alternate between the two fonts.
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if fonts[i % 2] == font {
            out.push(plain(arg));
        }
        out.extend(escapes(arg));
    }
    out
}

/// The arguments of a roff macro: words, or `"..."` with `""` for a quote.
fn macro_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut arg = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        arg.push('"');
                    }
                    '"' => break,
                    c => arg.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                arg.push(c);
                chars.next();
            }
        }
        args.push(arg);
    }
    args
}

/// The tag lines of the `.TP` items of a page, each with the `.SH` and `.SS` headings it is
/// under (plain text).
fn tagged_items(page: &str) -> Vec<(String, String, String)> {
    let (mut sh, mut ss) = (String::new(), String::new());
    let mut items = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        if let Some(h) = line.strip_prefix(".SH ") {
            sh = plain(h);
            ss.clear();
        } else if let Some(h) = line.strip_prefix(".SS ") {
            ss = plain(h);
        } else if line == ".TP" {
            if let Some(tag) = lines.next() {
                items.push((sh.clone(), ss.clone(), tag.to_string()));
            }
        }
    }
    items
}

/// What `--help` of one command lists.
#[derive(Default)]
struct Help {
    options: BTreeSet<String>,
    commands: BTreeSet<String>,
    arguments: BTreeSet<String>,
}

fn help_of(binary: &Path, command: &[&str]) -> Help {
    let out = Command::new(binary)
        .args(command)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    assert!(
        out.status.success(),
        "{} {command:?} --help failed",
        binary.display()
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut help = Help::default();
    let mut block = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            block = line.trim_end_matches(':');
            continue;
        }
        let entry = line.trim_start();
        match block {
            "Options" => {
                // `-h, --help   Print help`, `--config <CONFIG>  TOML ...`
                for word in entry.split("  ").next().unwrap_or("").split(", ") {
                    let name = word.split([' ', '<', '=']).next().unwrap_or("");
                    if name.starts_with('-') {
                        help.options.insert(name.to_string());
                    }
                }
            }
            "Commands" => {
                let name = entry.split_whitespace().next().unwrap_or("");
                if !name.is_empty() && name != "help" {
                    help.commands.insert(name.to_string());
                }
            }
            "Arguments" => {
                let name = entry.split_whitespace().next().unwrap_or("");
                let name = name.trim_matches(['<', '>', '[', ']', '.']);
                help.arguments.insert(name.to_ascii_lowercase());
            }
            _ => {}
        }
    }
    assert!(!help.options.is_empty(), "no options found in:\n{text}");
    help
}

/// Every problem between a section-8 page and its binary's `--help` (and its subcommands').
pub fn binary_problems(page: &str, binary: &Path) -> Vec<String> {
    let top = help_of(binary, &[]);
    let mut options = top.options.clone();
    let mut arguments = top.arguments.clone();
    for command in &top.commands {
        let sub = help_of(binary, &[command]);
        assert!(sub.commands.is_empty(), "nested subcommands of {command}");
        options.extend(sub.options);
        arguments.extend(sub.arguments);
    }
    let items = tagged_items(page);
    let documented: BTreeSet<String> = items
        .iter()
        .flat_map(|(_, _, tag)| spans(tag, 'B'))
        .filter(|b| b.starts_with('-'))
        .collect();
    let commands: BTreeSet<String> = items
        .iter()
        .filter(|(sh, _, _)| sh == "COMMANDS")
        .filter_map(|(_, _, tag)| spans(tag, 'B').into_iter().next())
        // A command's own options may be items under it (`.RS`).
        .filter(|c| !c.starts_with('-'))
        .collect();
    let mut problems = Vec::new();
    for o in options.difference(&documented) {
        problems.push(format!("option {o} is not documented"));
    }
    for o in documented.difference(&options) {
        problems.push(format!("option {o} is documented but the binary has none"));
    }
    for c in top.commands.difference(&commands) {
        problems.push(format!("command {c} is not a .TP item of COMMANDS"));
    }
    for c in commands.difference(&top.commands) {
        problems.push(format!("command {c} is documented but the binary has none"));
    }
    let italic: BTreeSet<String> = page.lines().flat_map(|l| spans(l, 'I')).collect();
    for a in arguments.difference(&italic) {
        problems.push(format!("argument {a} is not documented (in italics)"));
    }
    problems
}

/// The keys a loader error lists after ``unknown field `PROBE_KEY`, expected``.
pub fn expected_keys(error: &str) -> Option<BTreeSet<String>> {
    let marker = format!("unknown field `{PROBE_KEY}`");
    let after = error.split_once(&marker)?.1;
    let after = after.split_once("expected")?.1;
    // One line of keys; `there are no fields` has none.
    let list = after.lines().next().unwrap_or("");
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// Every problem between a section-5 page and the loader. `probes`: a section heading as the
/// page writes it (`[server]`; `""` for the file's top level) and a configuration text with
/// [`PROBE_KEY`] in that section; `load` returns the loader's error for a text.
pub fn config_problems(
    page: &str,
    probes: &[(&str, &str)],
    load: impl Fn(&str) -> String,
) -> Vec<String> {
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, ss, tag) in tagged_items(page) {
        if ss.starts_with('[') {
            let key = spans(&tag, 'B').into_iter().next().unwrap_or_default();
            documented.entry(ss).or_default().insert(key);
        }
    }
    let mut problems = Vec::new();
    for (heading, text) in probes {
        let error = load(text);
        let Some(accepted) = expected_keys(&error) else {
            problems.push(format!("probe of {heading:?}: no key list in: {error}"));
            continue;
        };
        if heading.is_empty() {
            // The top level: every table is a section of the page.
            for key in &accepted {
                if !documented.contains_key(&format!("[{key}]"))
                    && !documented.contains_key(&format!("[[{key}]]"))
                {
                    problems.push(format!("section [{key}] has no .SS heading"));
                }
            }
            continue;
        }
        let empty = BTreeSet::new();
        let keys = documented.get(*heading).unwrap_or(&empty);
        for k in accepted.difference(keys) {
            problems.push(format!("{heading} {k} is not documented"));
        }
        for k in keys.difference(&accepted) {
            problems.push(format!("{heading} {k} is documented but not accepted"));
        }
    }
    for heading in documented.keys() {
        if !probes.iter().any(|(h, _)| h == heading) {
            problems.push(format!("{heading} is documented but not probed"));
        }
    }
    problems
}
