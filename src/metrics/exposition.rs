//! The two text formats `/metrics` speaks, chosen by the scraper's `Accept`: OpenMetrics 1.0
//! (what the client crate's encoder writes, and what Prometheus asks for first) and the
//! Prometheus text format 0.0.4 (everything else: curl, older scrapers, `promtool`). There is
//! one encoder: the 0.0.4 text is the OpenMetrics text converted ([`to_text_004`]).

/// A text exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0: counter families named without `_total`, `# EOF` at the end.
    OpenMetrics,
    /// Prometheus text format 0.0.4: families named as their samples, no `# EOF`.
    Text,
}

impl Format {
    /// The format to answer a request whose `Accept` is `accept`: OpenMetrics when it names
    /// `application/openmetrics-text` with a quality at least that of the text format (as
    /// Prometheus does by default), else the 0.0.4 text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut openmetrics, mut plain, mut text_any, mut any) = (0.0, None, None, None);
        for range in accept.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                .next_back()
                .unwrap_or(1.0);
            let best = |seen: Option<f32>| Some(seen.map_or(q, |s| s.max(q)));
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = f32::max(openmetrics, q),
                "text/plain" => plain = best(plain),
                "text/*" => text_any = best(text_any),
                "*/*" => any = best(any),
                _ => {}
            }
        }
        // The most specific range that matches text/plain gives its quality.
        let text = plain.or(text_any).or(any).unwrap_or(0.0);
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Converts an OpenMetrics exposition to the 0.0.4 text format: a counter family's `# HELP`
/// and `# TYPE` take its samples' `_total` name, `unknown` becomes `untyped`, and what 0.0.4
/// lacks is dropped (`# UNIT`, `# EOF`, exemplars).
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A family's HELP comes before its TYPE, which decides the name HELP must carry.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                push_help(&mut out, name, text);
            }
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, kind) = match kind {
                "counter" => (format!("{family}_total"), kind),
                "unknown" => (family.to_owned(), "untyped"),
                _ => (family.to_owned(), kind),
            };
            match help.take() {
                Some((of, text)) if of == family => push_help(&mut out, &name, text),
                Some((of, text)) => push_help(&mut out, of, text),
                None => {}
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
        } else if !(line.starts_with("# UNIT ") || line == "# EOF") {
            out.push_str(without_exemplar(line));
            out.push('\n');
        }
    }
    if let Some((name, text)) = help {
        push_help(&mut out, name, text);
    }
    out
}

fn push_help(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("# HELP {name} {text}\n"));
}

/// A sample line without its exemplar (` # {labels} value`), which follows the value: the
/// first ` # ` outside the label set's quoted values.
fn without_exemplar(line: &str) -> &str {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted && line[..i].ends_with(' ') => return line[..i].trim_end(),
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_the_text_format() {
        assert_eq!(Format::negotiate(Some(PROMETHEUS)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(Some("application/json")), Format::Text);
    }

    #[test]
    fn the_higher_quality_wins_and_q_zero_refuses() {
        let text_first = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5";
        assert_eq!(Format::negotiate(Some(text_first)), Format::Text);
        let refused = "application/openmetrics-text;q=0, text/plain;q=0.2";
        assert_eq!(Format::negotiate(Some(refused)), Format::Text);
        let only_wildcard = "Application/OpenMetrics-Text; q=0.2, */*; q=0.1";
        assert_eq!(Format::negotiate(Some(only_wildcard)), Format::OpenMetrics);
    }

    #[test]
    fn counters_are_named_with_total_and_openmetrics_syntax_is_dropped() {
        let om = "# HELP req Requests.\n# TYPE req counter\n# UNIT req requests\n\
                  req_total{a=\"x # y\"} 3 # {trace=\"1\"} 1.0\n\
                  # HELP up Up.\n# TYPE up gauge\nup 1\n\
                  # HELP odd Odd.\n# TYPE odd unknown\nodd 2\n# EOF\n";
        assert_eq!(
            to_text_004(om),
            "# HELP req_total Requests.\n# TYPE req_total counter\n\
             req_total{a=\"x # y\"} 3\n\
             # HELP up Up.\n# TYPE up gauge\nup 1\n\
             # HELP odd Odd.\n# TYPE odd untyped\nodd 2\n"
        );
    }

    #[test]
    fn histograms_pass_through_unchanged() {
        let om = "# HELP d D.\n# TYPE d histogram\nd_sum 0.5\nd_count 1\n\
                  d_bucket{le=\"0.1\"} 0\nd_bucket{le=\"+Inf\"} 1\n# EOF\n";
        assert_eq!(to_text_004(om), om.trim_end_matches("# EOF\n"));
    }
}
