//! The documentation must work: every TOML example in README.md and docs/
//! loads as a tillgate config (or, fenced as `toml,invalid`, is refused),
//! every `tillgate` command shown is accepted by the binary's command line,
//! every relative link points at a file in the repository, and no page cites
//! a document that is not in it.

use std::path::{Path, PathBuf};

use tillgate::core::config::Config;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `docs/**/*.md`, as paths relative to the root.
fn doc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let root = root();
    let mut files = vec![root.join("README.md")];
    walk(&root.join("docs"), &mut files);
    files
        .into_iter()
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect()
}

fn read(rel: &Path) -> String {
    std::fs::read_to_string(root().join(rel))
        .unwrap_or_else(|e| panic!("reading {}: {e}", rel.display()))
}

/// A fenced code block: its info string, the 1-based line of the opening
/// fence, and its text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

fn fenced_blocks(md: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim().to_string(),
                        line: i + 1,
                        text: String::new(),
                    });
                }
            }
            Some(b) => {
                if trimmed.trim_end() == "```" {
                    blocks.push(open.take().unwrap());
                } else {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "a code fence is never closed");
    blocks
}

/// The words of an info string: "toml,invalid" and "toml invalid" both give
/// ["toml", "invalid"].
fn info_words(info: &str) -> Vec<&str> {
    info.split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect()
}

fn load(name: &str, text: &str) -> Result<Config, String> {
    tillgate::app::config_from_str(text).map_err(|e| format!("{name}: {e}"))
}

#[test]
fn every_toml_example_in_the_docs_loads() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for rel in doc_files() {
        let md = read(&rel);
        for b in fenced_blocks(&md) {
            let words = info_words(&b.info);
            if words.first() != Some(&"toml") {
                continue;
            }
            checked += 1;
            let at = format!("{}:{}", rel.display(), b.line);
            let expect_invalid = words.contains(&"invalid");
            match (load(&at, &b.text), expect_invalid) {
                (Ok(_), false) | (Err(_), true) => {}
                (Err(e), false) => failures.push(format!("{at}: does not load: {e}")),
                (Ok(_), true) => {
                    failures.push(format!("{at}: fenced as invalid but loads"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "TOML examples in the docs:\n{}",
        failures.join("\n")
    );
    // The docs have one example per feature and a complete file: a parser
    // that finds none must not pass.
    assert!(checked >= 8, "only {checked} toml blocks found");
}

/// Relative link targets of `[text](target)` outside code blocks and
/// inline code.
fn relative_links(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_fence = false;
    for (i, line) in md.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Drop inline code spans: `[a](b)` inside backticks is not a link.
        let mut text = String::new();
        for (k, part) in line.split('`').enumerate() {
            if k % 2 == 0 {
                text.push_str(part);
            }
        }
        let mut rest = text.as_str();
        while let Some(pos) = rest.find("](") {
            let after = &rest[pos + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            rest = &after[end..];
            if target.is_empty()
                || target.starts_with('#')
                || target.contains("://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            out.push((i + 1, target.to_string()));
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_points_at_a_file() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for rel in doc_files() {
        let md = read(&rel);
        let dir = root.join(rel.parent().unwrap_or(Path::new("")));
        for (line, target) in relative_links(&md) {
            checked += 1;
            let path = target.split('#').next().unwrap_or("");
            if !dir.join(path).exists() {
                broken.push(format!("{}:{line}: {target}", rel.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 20, "only {checked} relative links found");
}

#[test]
fn no_page_cites_a_document_outside_the_repository() {
    // The project's research notes live outside the repository; the docs
    // state the facts instead of pointing at them.
    let outside = [
        "../shared",
        "shared/docs",
        "r_keeper.md",
        "seed 00",
        "seeds/",
    ];
    let mut found = Vec::new();
    for rel in doc_files() {
        for (i, line) in read(&rel).lines().enumerate() {
            for o in outside {
                if line.contains(o) {
                    found.push(format!("{}:{}: {o:?}", rel.display(), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "citations of outside documents:\n{}",
        found.join("\n")
    );
}

/// Splits one shell command line into words as `sh` would for a simple
/// command: quotes and backslashes, `#` comments; stops at `|`, `;`, `&`,
/// `<`, `>` (what follows is another command or a redirection).
fn shell_words(line: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut skip_next_word = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    word.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        d => word.push(d),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break,
            c if c.is_whitespace() || "|;&<>".contains(c) => {
                if in_word {
                    if skip_next_word {
                        skip_next_word = false;
                    } else {
                        commands.last_mut().unwrap().push(std::mem::take(&mut word));
                    }
                    word.clear();
                    in_word = false;
                }
                if "|;&".contains(c) {
                    commands.push(Vec::new());
                } else if "<>".contains(c) {
                    // The redirection's target is not an argument.
                    skip_next_word = true;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word && !skip_next_word {
        commands.last_mut().unwrap().push(word);
    }
    commands
}

/// The environment assignments before `tillgate` (or `cargo run
/// --release --`) in a command and the arguments after it, if it runs
/// tillgate.
type Invocation = (Vec<(String, String)>, Vec<String>);

fn tillgate_args(words: &[String]) -> Option<Invocation> {
    let env: Vec<(String, String)> = words
        .iter()
        .map_while(|w| {
            w.split_once('=')
                .filter(|(k, _)| {
                    !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                })
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let words = &words[env.len()..];
    let args = match words.first().map(|w| w.as_str()) {
        Some("tillgate" | "tillgate.exe") => words[1..].to_vec(),
        Some("cargo") if words.get(1).is_some_and(|w| w == "run") => {
            let dash = words.iter().position(|w| w == "--")?;
            words[dash + 1..].to_vec()
        }
        _ => return None,
    };
    Some((env, args))
}

/// Every command that runs tillgate in a shell block (`sh`, `bash`, `bat`)
/// of README.md and docs/: where it is, and its arguments. `[--optional]`
/// brackets are dropped (the words inside are checked too). Inline code
/// spans are left out: they name a command in prose (`tillgate simulate`),
/// they are not lines to type.
fn documented_commands() -> Vec<(String, Invocation)> {
    let mut out = Vec::new();
    for rel in doc_files() {
        let md = read(&rel);
        let mut lines: Vec<(usize, String)> = Vec::new();
        for b in fenced_blocks(&md) {
            let lang = info_words(&b.info).first().copied().unwrap_or("");
            if !["sh", "bash", "bat", "shell"].contains(&lang) {
                continue;
            }
            let joined = b.text.replace("\\\n", " ");
            // Windows blocks write paths with backslashes: not escapes.
            let joined = if lang == "bat" {
                joined.replace('\\', "/")
            } else {
                joined
            };
            for (i, l) in joined.lines().enumerate() {
                lines.push((b.line + 1 + i, l.to_string()));
            }
        }
        for (line, text) in lines {
            let text = text.replace(['[', ']'], " ");
            for words in shell_words(&text) {
                if let Some(inv) = tillgate_args(&words) {
                    out.push((format!("{}:{line}", rel.display()), inv));
                }
            }
        }
    }
    out
}

#[test]
fn shell_words_split_as_sh_does() {
    assert_eq!(
        shell_words(r#"echo 'a b' | X=1 tillgate users add "anna k" --role admin < pw.txt # note"#),
        vec![
            vec!["echo".to_string(), "a b".into()],
            vec![
                "X=1".into(),
                "tillgate".into(),
                "users".into(),
                "add".into(),
                "anna k".into(),
                "--role".into(),
                "admin".into()
            ],
        ]
    );
    assert_eq!(
        tillgate_args(&[
            "cargo".into(),
            "run".into(),
            "--release".into(),
            "--".into(),
            "serve".into()
        ]),
        Some((vec![], vec!["serve".to_string()]))
    );
    assert_eq!(
        tillgate_args(&["TILLGATE_X=1".into(), "tillgate".into(), "users".into()]),
        Some((
            vec![("TILLGATE_X".to_string(), "1".to_string())],
            vec!["users".to_string()]
        ))
    );
    assert_eq!(
        tillgate_args(&["journalctl".into(), "-u".into(), "tillgate".into()]),
        None
    );
}

/// A command shown in the docs must not be refused by the binary (issue
/// 26: `simulate --serve ADDR --to URL` and `users add NAME --config FILE`
/// were). Only parsed (`TILLGATE_ARGS_CHECK`), never run.
#[test]
fn every_documented_tillgate_command_is_accepted() {
    let commands = documented_commands();
    assert!(
        commands.len() >= 25,
        "only {} commands found",
        commands.len()
    );
    let mut refused = Vec::new();
    for (at, (env, args)) in &commands {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tillgate"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("TILLGATE_ARGS_CHECK", "1")
            .output()
            .expect("run tillgate");
        if !out.status.success() {
            refused.push(format!(
                "{at}: tillgate {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
}
