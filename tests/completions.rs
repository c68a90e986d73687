//! `supervisor completions SHELL` and `worker completions SHELL`: a script
//! for each shell that names every subcommand `--help` lists; bash's
//! passes `bash -n`. And `man`: a page groff reads without a warning.

use std::process::Command;

use harness::supervisor::supervisor_bin;
use harness::worker_bin;

/// The subcommands `BIN --help` lists (its "Commands:" block), but `help`.
fn subcommands(bin: &std::path::Path) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

fn script(bin: &std::path::Path, shell: &str) -> String {
    let out = Command::new(bin)
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{shell}: {out:?}");
    assert!(out.stderr.is_empty(), "{shell}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn check(bin: &std::path::Path, expected: &[&str]) {
    let commands = subcommands(bin);
    for c in expected {
        assert!(commands.iter().any(|x| x == c), "{c} not in {commands:?}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let text = script(bin, shell);
        assert!(text.len() > 200, "{shell}: {text}");
        for c in &commands {
            assert!(text.contains(c.as_str()), "{shell} script lacks {c}");
        }
    }
    let dir = harness::temp_dir();
    let file = dir.path().join("completion.bash");
    std::fs::write(&file, script(bin, "bash")).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(out.status.success(), "bash -n: {out:?}");
}

#[test]
fn supervisor_completions_name_every_subcommand() {
    check(
        &supervisor_bin(),
        &[
            "run",
            "status",
            "restart",
            "update",
            "install",
            "uninstall",
            "start",
            "stop",
            "logs",
            "doctor",
            "completions",
            "man",
        ],
    );
}

#[test]
fn worker_completions_name_every_subcommand() {
    check(&worker_bin(), &["call", "completions", "man"]);
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let out = Command::new(supervisor_bin())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bash") && err.contains("zsh") && err.contains("fish"),
        "{err}"
    );
}

/// `BIN man` renders as a manual page: `groff -man` reads it without a
/// warning, and it names every subcommand.
fn check_man(bin: &std::path::Path, name: &str) {
    let out = Command::new(bin).arg("man").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(&format!(".TH {name} 1")), "{page}");
    for c in subcommands(bin) {
        assert!(page.contains(&c), "the page lacks {c}");
    }
    let dir = harness::temp_dir();
    let file = dir.path().join("page.1");
    std::fs::write(&file, &page).unwrap();
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output()
        .expect("groff is installed (Debian: groff-base)");
    assert!(
        groff.status.success() && groff.stderr.is_empty(),
        "groff: {groff:?}"
    );

    // --dir: one page per command and subcommand.
    let pages = dir.path().join("man1");
    let out = Command::new(bin)
        .args(["man", "--dir"])
        .arg(&pages)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(pages.join(format!("{name}.1")).is_file());
    for c in subcommands(bin) {
        let page = pages.join(format!("{name}-{c}.1"));
        assert!(page.is_file(), "{} is missing", page.display());
    }
}

#[test]
fn both_binaries_have_manual_pages() {
    check_man(&supervisor_bin(), "supervisor");
    check_man(&worker_bin(), "worker");
}
