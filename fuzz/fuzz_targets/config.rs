//! The config loader, `config::validate::parse`, on arbitrary text: it never panics, and a
//! refusal is a list of diagnostics each positioned inside the text (line and column 1-based,
//! the column at most one past the line's last character).
//!
//! The file is taken to live in an empty temporary directory, so the certificate and CA
//! files it names (relative to it) do not exist and are errors; the environment is fixed.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bascule::config::validate::parse;
use bascule::config::ConfigError;
use libfuzzer_sys::fuzz_target;

/// `bascule.toml` in a fresh, empty directory of this process.
fn config_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bascule-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the empty config directory");
        dir.join("bascule.toml")
    })
}

/// The fixed environment for `${VAR}`: a few set (one empty), everything else unset.
fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN" | "BASCULE_ADMIN_TOKEN" => Some("s3cret".into()),
        "ORIGIN" => Some("http://127.0.0.1:9000".into()),
        "EMPTY" => Some(String::new()),
        "DOLLAR" => Some("${TOKEN}".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    // The loader reads the file with read_to_string: text that is not UTF-8 never gets here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = config_path();
    match parse(path, text, &env) {
        Ok(_) => {}
        Err(ConfigError::Read { .. }) => panic!("parse never reads the config file itself"),
        Err(ConfigError::Invalid(diagnostics)) => {
            assert!(!diagnostics.is_empty(), "refused without a diagnostic");
            let lines: Vec<&str> = text.split('\n').collect();
            for d in &diagnostics {
                assert_eq!(d.file, path.display().to_string(), "{d}");
                assert!(
                    d.line >= 1 && d.line <= lines.len(),
                    "line outside the text: {d}"
                );
                let width = lines[d.line - 1].chars().count();
                assert!(d.col >= 1 && d.col <= width + 1, "column outside line: {d}");
            }
        }
    }
});
