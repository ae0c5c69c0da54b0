//! What the harnesses' command lines share: numbers, and staying out of `cargo test`.

/// `text` as a number, or an error naming `arg`.
pub fn number<T: std::str::FromStr>(arg: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{arg}: not a number: {text:?}"))
}

/// Whether cargo started this harness as a benchmark: `cargo test --benches` runs bench targets
/// without `--bench`, and these take minutes, so they then say so and do nothing.
pub fn benchmarking(name: &str, args: &[String]) -> bool {
    let yes = args.iter().any(|a| a == "--bench");
    if !yes {
        println!("{name}: skipped (run it with cargo bench --bench {name})");
    }
    yes
}
