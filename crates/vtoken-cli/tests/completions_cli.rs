//! `vtoken completions SHELL`: the scripts are generated from the command line and
//! work in the real shell (bash completes a subcommand), the man page renders with
//! `man`, and no configuration or token is needed.

use std::process::Command;

use vtoken_testsupport::cli::Env;

fn env() -> Env {
    Env::new(env!("CARGO_BIN_EXE_vtoken"))
}

#[test]
fn bash_completion_completes_subcommands_in_bash() {
    let e = env();
    let script = e.ok(&["completions", "bash"]);
    std::fs::write(e.path("vtoken.bash"), &script).unwrap();
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(vtoken ke); COMP_CWORD=1; COMP_LINE='vtoken ke'; \
             COMP_POINT=9; _vtoken vtoken ke vtoken; echo \"${{COMPREPLY[@]}}\"",
            e.s("vtoken.bash")
        ))
        .output()
        .expect("run bash");
    let words = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "bash: {o:?}");
    assert_eq!(words.trim(), "key", "completions of `vtoken ke`: {words}");
}

#[test]
fn zsh_fish_and_man_are_generated_without_a_token() {
    let e = env();
    // No token directory exists: the command reads no configuration.
    assert!(!e.path("tokens").exists());
    let zsh = e.ok(&["completions", "zsh"]);
    assert!(
        zsh.starts_with("#compdef vtoken"),
        "{}",
        &zsh[..80.min(zsh.len())]
    );
    let fish = e.ok(&["completions", "fish"]);
    assert!(fish.contains("complete -c vtoken"), "fish script");
    assert!(fish.contains("enroll"), "fish knows the subcommands");
    let man = e.ok(&["completions", "man"]);
    assert!(man.contains(".TH vtoken 1"), "roff header");
    assert!(
        man.contains("completions"),
        "the man page lists the subcommands"
    );
    assert!(!e.path("tokens").exists(), "no token directory created");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let o = env().run(&["completions", "powershell-7"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("possible values: bash, zsh, fish, man"));
}

#[test]
fn man_dir_writes_one_page_per_subcommand_that_man_renders() {
    let e = env();
    let dir = e.path("man1");
    let listed = e.ok(&["completions", "man", "--dir", &e.s("man1")]);
    for page in [
        "vtoken.1",
        "vtoken-init.1",
        "vtoken-key-generate.1",
        "vtoken-vault-add.1",
        "vtoken-completions.1",
    ] {
        assert!(
            listed.lines().any(|l| l == page),
            "{page} not listed: {listed}"
        );
        assert!(dir.join(page).is_file(), "{page} not written");
    }
    assert!(
        !listed.contains("vtoken-help"),
        "no page for the help subcommand"
    );
    // The page of a nested subcommand names itself and documents its options.
    let o = Command::new("man")
        .arg("-l")
        .arg(dir.join("vtoken-key-generate.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("run man");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "man -l: {o:?}");
    assert!(text.contains("vtoken-key-generate"), "{text}");
    assert!(text.contains("--type"), "{text}");
    // Completions go to stdout: --dir with a shell is refused with a hint.
    let err = e.fails(&["completions", "bash", "--dir", &e.s("x")]);
    assert!(err.contains("--dir is for `man`"), "{err}");
    assert!(!e.path("x").exists());
}
