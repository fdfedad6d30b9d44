//! The man pages and completions are generated, and say what `--help` says: every page names
//! each option of its command (long and short forms) and each subcommand, and every
//! completion script offers each option of the top-level command.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use clap::Command;
use nova_guest_tools::{SHELLS, completion_path, programs, write_completions, write_man_pages};

/// The page's text with roff's escaped hyphens made plain.
fn page_text(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .replace("\\-", "-")
}

/// `--long` and `-s` of every visible argument of `command` (help and version included).
fn options(command: &Command) -> Vec<String> {
    let mut all = Vec::new();
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            all.push(format!("--{long}"));
        }
        if let Some(short) = arg.get_short() {
            all.push(format!("-{short}"));
        }
        if arg.is_positional() {
            let name = arg
                .get_value_names()
                .and_then(|n| n.first())
                .map_or_else(|| arg.get_id().to_string(), ToString::to_string);
            all.push(name);
        }
    }
    all
}

/// Checks the page of `command` (`NAME.SECTION` in `dir`) and its subcommands' pages.
fn check_pages(command: &Command, section: &str, dir: &Path, seen: &mut BTreeSet<String>) {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name())
        .to_owned();
    let file = dir.join(format!("{name}.{section}"));
    let text = page_text(&file);
    assert!(text.starts_with(".ie"), "{name}: not roff");
    assert!(
        text.contains(&format!(".TH {name} {section}")),
        "{name}: title"
    );
    for option in options(command) {
        assert!(
            text.contains(&option),
            "{}: does not mention {option}",
            file.display()
        );
    }
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        assert!(
            text.contains(sub.get_name()),
            "{name}: does not list subcommand {}",
            sub.get_name()
        );
        check_pages(sub, section, dir, seen);
    }
    seen.insert(file.file_name().unwrap().to_string_lossy().into_owned());
}

#[test]
fn man_pages_name_every_option_and_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_man_pages(dir.path()).unwrap();
    let mut seen = BTreeSet::new();
    for program in programs() {
        let mut command = program.command.disable_help_subcommand(true);
        command.build();
        check_pages(&command, program.section, dir.path(), &mut seen);
    }
    let written: BTreeSet<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, seen, "exactly one page per command and subcommand");
    for expected in [
        "qga.1",
        "qga-exec.1",
        "qga-fsfreeze-thaw.1",
        "qga-qmp-events.1",
        "nova-guest-agent.8",
        "nova-guest-api.8",
    ] {
        assert!(
            written.contains(expected),
            "{expected} missing: {written:?}"
        );
    }
}

#[test]
fn daemon_pages_carry_files_signals_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    write_man_pages(dir.path()).unwrap();
    for page in ["nova-guest-agent.8", "nova-guest-api.8"] {
        let text = page_text(&dir.path().join(page));
        for section in [
            ".SH FILES",
            ".SH SIGNALS",
            ".SH ENVIRONMENT",
            ".SH EXIT STATUS",
            ".SH SEE ALSO",
        ] {
            assert!(text.contains(section), "{page}: no {section}");
        }
        assert!(text.contains("/etc/nova-guest/nova-guest.conf"), "{page}");
        assert!(text.contains("WatchdogSec="), "{page}");
        // The extras sit before VERSION, after the generated OPTIONS.
        let files = text.find(".SH FILES").unwrap();
        assert!(text.find(".SH OPTIONS").unwrap() < files, "{page}");
        assert!(files < text.find(".SH VERSION").unwrap(), "{page}");
    }
    let api = page_text(&dir.path().join("nova-guest-api.8"));
    assert!(api.contains("--print-agent-token"));
    let qga = page_text(&dir.path().join("qga.1"));
    assert!(qga.contains("QGA_SOCKET") && qga.contains("Exit status"));
}

#[test]
fn completions_for_every_shell_offer_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_completions(dir.path()).unwrap();
    assert_eq!(written.len(), programs().len() * SHELLS.len());
    for program in programs() {
        let name = program.command.get_name().to_owned();
        for shell in SHELLS {
            let path = completion_path(dir.path(), shell, &name);
            let text =
                fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(text.contains(&name), "{}", path.display());
            for arg in program.command.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // bash and zsh spell `--long`; fish `-l long`.
                    assert!(
                        text.contains(&format!("--{long}")) || text.contains(&format!("-l {long}")),
                        "{}: no --{long}",
                        path.display()
                    );
                }
            }
        }
    }
    // The daemons' completions know their one-shot options; qga's its subcommands.
    let api = fs::read_to_string(completion_path(dir.path(), SHELLS[0], "nova-guest-api")).unwrap();
    assert!(api.contains("--print-agent-token"));
    let qga = fs::read_to_string(completion_path(dir.path(), SHELLS[0], "qga")).unwrap();
    assert!(qga.contains("set-password") && qga.contains("fsfreeze"));
}

#[test]
fn the_binary_writes_both() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_nova-guest-tools");
    for what in ["man", "completions"] {
        let out = std::process::Command::new(bin)
            .arg(what)
            .arg(dir.path().join(what))
            .output()
            .unwrap();
        assert!(out.status.success(), "{what}: {out:?}");
        let listed = String::from_utf8(out.stdout).unwrap();
        assert!(listed.lines().count() >= 6, "{what}: {listed}");
        for line in listed.lines() {
            assert!(Path::new(line).is_file(), "{line}");
        }
    }
    assert!(dir.path().join("man/nova-guest-api.8").is_file());
    assert!(dir.path().join("completions/zsh/_qga").is_file());
    assert!(
        dir.path()
            .join("completions/fish/nova-guest-agent.fish")
            .is_file()
    );
    assert!(dir.path().join("completions/bash/nova-guest-api").is_file());
}
