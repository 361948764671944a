//! A small parser for the Prometheus text exposition format (and the
//! OpenMetrics text that strom itself serves), enough to read load gauges
//! from a streaming server's `/metrics`.
//!
//! Pure and bounded: it never panics, skips comment and `# EOF` lines, and
//! reports the first malformed line with its number so a server answering
//! garbage is marked Down with a useful error.
//!
//! The balancer reads a load with [`sum`], which adds up one metric's
//! series while it scans, borrowing the text: a 16 MiB `/metrics` of
//! hundreds of thousands of series costs no more than the text itself.
//! [`parse`], which builds every sample, is kept for tests and fuzzing.

/// One sample: metric name, labels in order, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Why a text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: &'static str,
}

/// Most samples read from one text; beyond this the text is refused.
pub const MAX_SAMPLES: usize = 1_000_000;

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Reads one sample line (not a comment, not blank) without allocating:
/// calls `label(name, key, raw)` for each label in order, `raw` being the
/// value as written (escapes kept; see [`unescape`]), and returns the metric
/// name and the value.
fn scan_line<'a>(
    line: &'a str,
    mut label: impl FnMut(&'a str, &'a str, &'a str),
) -> Result<(&'a str, f64), &'static str> {
    let mut chars = line.char_indices().peekable();
    let name_end = match chars.next() {
        Some((_, c)) if is_name_start(c) => {
            let mut end = line.len();
            for (i, c) in chars.by_ref() {
                if !is_name_char(c) {
                    end = i;
                    break;
                }
            }
            end
        }
        _ => return Err("a metric name must start the line"),
    };
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let key_end = rest.find(|c: char| !is_name_char(c)).ok_or("unterminated labels")?;
            if key_end == 0 {
                return Err("bad label name");
            }
            let key = &rest[..key_end];
            rest = rest[key_end..]
                .trim_start()
                .strip_prefix('=')
                .ok_or("expected `=` after label name")?;
            rest = rest
                .trim_start()
                .strip_prefix('"')
                .ok_or("label value must be quoted")?;
            let mut escaped = false;
            let mut end = None;
            for (i, b) in rest.bytes().enumerate() {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    end = Some(i);
                    break;
                }
            }
            let end = end.ok_or("unterminated label value")?;
            label(name, key, &rest[..end]);
            rest = &rest[end + 1..];
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("missing value")?;
    let value = parse_value(value).ok_or("bad value")?;
    // An optional timestamp may follow; anything after it is an error.
    if let Some(ts) = fields.next() {
        ts.parse::<f64>().map_err(|_| "bad timestamp")?;
    }
    if fields.next().is_some() {
        return Err("trailing data after the sample");
    }
    Ok((name, value))
}

/// A label value as written (between the quotes) with its escapes undone:
/// `\n` is a line feed, `\X` is `X`. Borrowed when there is none.
pub fn unescape(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains('\\') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut value = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            value.push(match c {
                'n' => '\n',
                other => other,
            });
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            value.push(c);
        }
    }
    std::borrow::Cow::Owned(value)
}

/// Parses one sample line (not a comment, not blank).
fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let mut labels = Vec::new();
    let (name, value) = scan_line(line, |_, key, raw| {
        labels.push((key.to_string(), unescape(raw).into_owned()))
    })?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The sum of one metric's series, read by [`sum`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Sum {
    /// The values of the matching samples added up, in text order (only
    /// those before the first that is not a count, when `bad`).
    pub total: f64,
    /// How many samples matched.
    pub matched: usize,
    /// A matching sample's value was negative, infinite or NaN.
    pub bad: bool,
}

/// Which series of the metric count: a label, and a test of its value
/// (unescaped). A series without the label does not count.
pub type LabelFilter<'a> = Option<(&'a str, &'a dyn Fn(&str) -> bool)>;

/// Adds up the samples called `metric` (those whose `filter` label passes
/// its test, when given) in one pass over `text`, borrowing the text: no
/// allocation per sample (one per matching label value that has escapes).
/// Every line is checked as [`parse`] checks it, with the same errors and
/// the same [`MAX_SAMPLES`] bound, so a text that [`parse`] refuses is
/// refused here too.
pub fn sum(text: &str, metric: &str, filter: LabelFilter<'_>) -> Result<Sum, ParseError> {
    let mut out = Sum::default();
    let mut samples = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The filter label's first occurrence decides, as `Sample::label`.
        let mut verdict: Option<bool> = None;
        let (name, value) = scan_line(line, |name, key, raw| {
            if let Some((want, test)) = filter {
                if verdict.is_none() && name == metric && key == want {
                    verdict = Some(test(&unescape(raw)));
                }
            }
        })
        .map_err(|what| ParseError { line: i + 1, what })?;
        if samples >= MAX_SAMPLES {
            return Err(ParseError {
                line: i + 1,
                what: "too many samples",
            });
        }
        samples += 1;
        if name != metric || (filter.is_some() && verdict != Some(true)) || out.bad {
            continue;
        }
        if !(value.is_finite() && value >= 0.0) {
            out.bad = true;
            continue;
        }
        out.total += value;
        out.matched += 1;
    }
    Ok(out)
}

/// Parses a whole exposition text.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = parse_line(line).map_err(|what| ParseError { line: i + 1, what })?;
        if out.len() >= MAX_SAMPLES {
            return Err(ParseError {
                line: i + 1,
                what: "too many samples",
            });
        }
        out.push(s);
    }
    Ok(out)
}

/// The value of the first sample called `name` (no labels needed), if any.
pub fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_strom_metrics() {
        let text = "# HELP strom_server_clients Current viewers\n# TYPE strom_server_clients gauge\n\
                    strom_server_clients 42\nstrom_stream_alive{stream=\"news\"} 1\n\
                    strom_stream_clients{stream=\"a \\\"b\\\"\",proto=\"hls\"} 3 1700000000000\n# EOF\n";
        let s = parse(text).expect("parses");
        assert_eq!(gauge(&s, "strom_server_clients"), Some(42.0));
        assert_eq!(s[1].label("stream"), Some("news"));
        assert_eq!(s[2].label("stream"), Some("a \"b\""));
        assert_eq!(s[2].value, 3.0);
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        assert_eq!(
            parse("ok 1\n<html>\n").expect_err("garbage"),
            ParseError {
                line: 2,
                what: "a metric name must start the line"
            }
        );
        assert_eq!(
            parse("x{a=\"1 2\n").expect_err("garbage").what,
            "unterminated label value"
        );
        assert_eq!(parse("x{a=\"1\" 2\n").expect_err("garbage").what, "unterminated labels");
        assert_eq!(parse("x abc\n").expect_err("garbage").what, "bad value");
        assert_eq!(
            parse("x 1 2 3\n").expect_err("garbage").what,
            "trailing data after the sample"
        );
        assert!(parse("x +Inf\ny NaN\n").is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
        }

        #[test]
        fn rendered_samples_round_trip(name in "[a-z_][a-z0-9_]{0,20}", v in -1e12f64..1e12, lv in "[ -~]{0,20}") {
            let esc = lv.replace('\\', "\\\\").replace('"', "\\\"");
            let text = format!("{name}{{k=\"{esc}\"}} {v}\n");
            let s = parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(s.len(), 1);
            prop_assert_eq!(&s[0].name, &name);
            prop_assert_eq!(s[0].label("k"), Some(lv.as_str()));
            prop_assert_eq!(s[0].value, v);
        }
    }
}
