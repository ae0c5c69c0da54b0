//! A strict reader of the two text expositions `/metrics` serves, OpenMetrics 1.0 and the
//! Prometheus text format 0.0.4, written for the tests (no outside parser): it rejects what
//! Prometheus would reject or misread, and returns the samples.
//!
//! Checked: every sample follows its family's `# HELP` and `# TYPE`, and a family's lines are
//! contiguous; metric and label names are well-formed, label values correctly escaped, no
//! series repeats; counters' samples end in `_total` (in 0.0.4 their family is named so too,
//! in OpenMetrics it is not); a histogram series has `_bucket`s with `le` ascending to `+Inf`
//! and counts that never fall, a `_sum`, and a `_count` equal to the `+Inf` bucket; OpenMetrics
//! ends with `# EOF`, 0.0.4 has neither `# EOF` nor `# UNIT`.

use std::collections::{BTreeMap, HashMap};

/// Which exposition a text is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Text,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// Every sample: `name{k="v",...}` (labels sorted by name, values unescaped) → value.
pub type Samples = HashMap<String, f64>;

#[derive(Default)]
struct Family {
    kind: Option<String>,
    help: bool,
    sampled: bool,
}

/// One histogram series (its labels but `le`): buckets in order, `_sum`, `_count`.
#[derive(Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Reads `text` as `format`; the error names the line and what is wrong.
pub fn parse(text: &str, format: Format) -> Result<Samples, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the exposition must end with a line feed")?;
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut current: Option<String> = None;
    let mut samples = Samples::new();
    let mut histograms: BTreeMap<String, Histogram> = BTreeMap::new();
    let mut eof = false;
    for (i, line) in body.split('\n').enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        if eof {
            return Err(at("content after # EOF".into()));
        }
        if line.is_empty() && format == Format::Text {
            continue;
        }
        if line == "# EOF" {
            if format == Format::Text {
                return Err(at("# EOF is OpenMetrics, not the 0.0.4 text format".into()));
            }
            eof = true;
        } else if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            if !matches!(keyword, "HELP" | "TYPE" | "UNIT") {
                if format == Format::Text {
                    continue; // a comment
                }
                return Err(at("OpenMetrics has no comments".into()));
            }
            check_metric_name(name).map_err(at)?;
            if current.as_deref() != Some(name) {
                if families.contains_key(name) {
                    return Err(at(format!("family {name} is split")));
                }
                current = Some(name.to_owned());
            }
            let family = families.entry(name.to_owned()).or_default();
            if family.sampled {
                return Err(at(format!("{keyword} after the family's samples")));
            }
            match keyword {
                "HELP" if family.help => return Err(at("a second HELP".into())),
                "HELP" => {
                    check_escapes(value, format == Format::OpenMetrics).map_err(at)?;
                    family.help = true;
                }
                "TYPE" if family.kind.is_some() => return Err(at("a second TYPE".into())),
                "TYPE" => {
                    check_type(name, value, format).map_err(at)?;
                    family.kind = Some(value.to_owned());
                }
                _ if format == Format::Text => {
                    return Err(at("# UNIT is OpenMetrics, not 0.0.4".into()))
                }
                _ => {}
            }
        } else {
            let (name, labels, value) = sample(line).map_err(at)?;
            let missing = || at(format!("{name} follows no HELP and TYPE of its family"));
            let fam = current.as_deref().ok_or_else(missing)?;
            let family = families.get_mut(fam).expect("the current family is known");
            if !family.help {
                return Err(missing());
            }
            let Some(kind) = family.kind.as_deref() else {
                return Err(missing());
            };
            family.sampled = true;
            let suffix = name
                .strip_prefix(fam)
                .ok_or_else(|| at(format!("{name} is not a sample of family {fam}")))?;
            check_suffix(kind, suffix, format).map_err(|e| at(format!("{fam} ({kind}): {e}")))?;
            if kind == "counter" && (value.is_nan() || value < 0.0) {
                return Err(at("a counter's value must be a number >= 0".into()));
            }
            if kind == "histogram" {
                let mut series = labels.clone();
                let le = series.remove("le");
                let key = format!("{fam}{}", render(&series));
                let h = histograms.entry(key).or_default();
                match (suffix, le) {
                    ("_bucket", Some(le)) => {
                        let le = parse_value(&le).map_err(at)?;
                        h.buckets.push((le, value));
                    }
                    ("_bucket", None) => return Err(at("a bucket without le".into())),
                    ("_sum", _) => h.sum = Some(value),
                    _ => h.count = Some(value),
                }
            }
            let key = format!("{name}{}", render(&labels));
            if samples.insert(key, value).is_some() {
                return Err(at("this series appears twice".into()));
            }
        }
    }
    if format == Format::OpenMetrics && !eof {
        return Err("OpenMetrics must end with # EOF".into());
    }
    if let Some((name, _)) = families.iter().find(|(_, f)| !f.help || f.kind.is_none()) {
        return Err(format!("family {name} lacks its HELP or TYPE"));
    }
    for (series, h) in &histograms {
        check_histogram(h).map_err(|e| format!("histogram {series}: {e}"))?;
    }
    Ok(samples)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_:".contains(c));
    if first && chars.all(|c| c.is_ascii_alphanumeric() || "_:".contains(c)) {
        Ok(())
    } else {
        Err(format!("malformed metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first && !name.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(format!("malformed label name {name:?}"))
    }
}

/// Backslash escapes are `\\` and `\n` (and `\"`, which OpenMetrics also requires of a bare
/// `"` in HELP: `quotes`).
fn check_escapes(s: &str, quotes: bool) -> Result<(), String> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\' | 'n') => {}
                Some('"') if quotes => {}
                other => return Err(format!("invalid escape \\{other:?}")),
            },
            '"' if quotes => return Err("an unescaped \" in HELP".into()),
            _ => {}
        }
    }
    Ok(())
}

fn check_type(name: &str, kind: &str, format: Format) -> Result<(), String> {
    let kinds: &[&str] = match format {
        Format::Text => &["counter", "gauge", "histogram", "summary", "untyped"],
        Format::OpenMetrics => &[
            "counter",
            "gauge",
            "histogram",
            "gaugehistogram",
            "summary",
            "info",
            "stateset",
            "unknown",
        ],
    };
    if !kinds.contains(&kind) {
        return Err(format!("unknown type {kind:?}"));
    }
    match (format, kind, name.ends_with("_total")) {
        (Format::Text, "counter", false) => Err("a 0.0.4 counter's name ends in _total".into()),
        (Format::OpenMetrics, "counter", true) => {
            Err("an OpenMetrics counter family is named without _total".into())
        }
        _ => Ok(()),
    }
}

/// Whether a sample named family + `suffix` may belong to a family of `kind`.
fn check_suffix(kind: &str, suffix: &str, format: Format) -> Result<(), String> {
    let allowed: &[&str] = match (format, kind) {
        (_, "histogram") => &["_bucket", "_sum", "_count"],
        (_, "summary") => &["", "_sum", "_count"],
        (Format::OpenMetrics, "counter") => &["_total"],
        (Format::OpenMetrics, "info") => &["_info"],
        _ => &[""],
    };
    if allowed.contains(&suffix) {
        Ok(())
    } else {
        Err(format!("no sample suffix {suffix:?} (only {allowed:?})"))
    }
}

fn check_histogram(h: &Histogram) -> Result<(), String> {
    if !h.buckets.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err("le is not ascending".into());
    }
    if !h.buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
        return Err("bucket counts fall".into());
    }
    let Some(&(last, inf)) = h.buckets.last() else {
        return Err("no _bucket".into());
    };
    if last != f64::INFINITY {
        return Err("the last bucket is not le=\"+Inf\"".into());
    }
    h.sum.ok_or("no _sum")?;
    match h.count {
        Some(count) if count == inf => Ok(()),
        Some(count) => Err(format!("_count {count} is not the +Inf bucket's {inf}")),
        None => Err("no _count".into()),
    }
}

/// Splits a sample line into its name, labels (unescaped) and value; refuses exemplars.
fn sample(line: &str) -> Result<(String, BTreeMap<String, String>, f64), String> {
    let end = line.find(['{', ' ']).ok_or("a sample needs a value")?;
    let (name, mut rest) = line.split_at(end);
    check_metric_name(name)?;
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest.split_once("=\"").ok_or("malformed label set")?;
            check_label_name(label)?;
            let (value, after) = quoted(after)?;
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            rest = match after.strip_prefix(',') {
                Some(next) => next,
                None if after.starts_with('}') => after,
                None => return Err("malformed label set".into()),
            };
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("one space before the value")?;
    if rest.contains('#') {
        return Err("an exemplar (bascule writes none)".into());
    }
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or(""))?;
    match (fields.next(), fields.next()) {
        (None, _) => {}
        (Some(ts), None) if ts.parse::<f64>().is_ok() => {}
        _ => return Err("garbage after the value".into()),
    }
    Ok((name.to_owned(), labels, value))
}

/// A label value up to its closing quote, unescaped; and what follows.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, 'n')) => out.push('\n'),
                other => return Err(format!("invalid escape in a label value: {other:?}")),
            },
            '\n' => return Err("a raw line feed in a label value".into()),
            c => out.push(c),
        }
    }
    Err("an unterminated label value".into())
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
        {
            s.parse().map_err(|_| format!("malformed number {s:?}"))
        }
        _ => Err(format!("malformed number {s:?}")),
    }
}

/// `{k="v",...}` in label-name order.
fn render(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}
