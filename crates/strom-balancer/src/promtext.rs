//! A small parser for the Prometheus text exposition format (and the
//! OpenMetrics text that strom itself serves), enough to read load gauges
//! from a streaming server's `/metrics`.
//!
//! Pure and bounded: it never panics, skips comment and `# EOF` lines, and
//! reports the first malformed line with its number so a server answering
//! garbage is marked Down with a useful error.

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

/// Parses one sample line (not a comment, not blank).
fn parse_line(line: &str) -> Result<Sample, &'static str> {
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
    let mut labels = Vec::new();
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
            let mut value = String::new();
            let mut escaped = false;
            let mut end = None;
            for (i, c) in rest.char_indices() {
                if escaped {
                    value.push(match c {
                        'n' => '\n',
                        other => other,
                    });
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = Some(i);
                    break;
                } else {
                    value.push(c);
                }
            }
            let end = end.ok_or("unterminated label value")?;
            rest = &rest[end + 1..];
            labels.push((key.to_string(), value));
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
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
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
