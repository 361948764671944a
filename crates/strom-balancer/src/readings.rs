//! Reading what a server answered, without I/O: the client count (from
//! Prometheus text, a JSON field or an XML element) and the stream list
//! (strom's or Flussonic's), for every server kind.
//!
//! Invariants:
//! - Nothing here panics on any input, and every failure is a [`ReadError`]
//!   with a [`Fault`] for metrics.
//! - An error message never contains bytes of the answer: it is made of
//!   this module's words, numbers (line, column, offset, status) and the
//!   operator's own config (field names, URLs), so a hostile server cannot
//!   write into logs or `/api/v1/servers`.
//! - A count is a finite, non-negative number, rounded down and capped at
//!   10^12; series and stream lists are bounded ([`MAX_LISTED`]).

use serde::Deserialize;
use serde_json::Value;
use strom_config::{LoadFormat, LoadSource};

use crate::promtext;

/// Most streams taken from one server's list; the rest are ignored.
pub const MAX_LISTED: usize = 10_000;
/// Longest Flussonic cursor followed to the next page.
pub const MAX_CURSOR: usize = 1024;
/// Deepest XML nesting read.
const MAX_XML_DEPTH: usize = 64;
/// Counts above this are taken as this.
const MAX_COUNT: f64 = 1e12;

/// What kind of failure, for `strom_balancer_poll_errors_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No connection, or the request failed before an answer.
    Connect,
    /// No whole answer within the deadline.
    Timeout,
    /// An answer with an unexpected HTTP status.
    Status,
    /// A body larger than the cap.
    TooLarge,
    /// A body that is not the format it should be.
    Parse,
    /// A well-formed body without the value, or with one that is no count.
    Missing,
}

impl Fault {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Connect => "connect",
            Fault::Timeout => "timeout",
            Fault::Status => "status",
            Fault::TooLarge => "too_large",
            Fault::Parse => "parse",
            Fault::Missing => "missing",
        }
    }
}

/// Why an answer could not be used. `Display` is the message shown in
/// `/api/v1/servers`; it never quotes the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReadError {
    /// The failure's class.
    pub fault: Fault,
    /// What happened, in the balancer's words.
    pub message: String,
}

impl ReadError {
    /// An error of class `fault`.
    pub fn new(fault: Fault, message: impl Into<String>) -> Self {
        ReadError {
            fault,
            message: message.into(),
        }
    }

    /// The same error with `what` (`load /metrics`) in front.
    pub fn context(self, what: &str) -> Self {
        ReadError {
            fault: self.fault,
            message: format!("{what}: {}", self.message),
        }
    }
}

/// Which series of a Prometheus metric belong to the server
/// (`match_label`): the label, and whether a value names the server.
pub type SeriesFilter<'a> = Option<(&'a str, &'a dyn Fn(&str) -> bool)>;

/// The client count in `body`, read as `load` says. For Prometheus text the
/// series of the metric (those `series` accepts, when given) are added up.
pub fn read_load(body: &str, load: &LoadSource, series: SeriesFilter<'_>) -> Result<u64, ReadError> {
    match load.format {
        LoadFormat::Prometheus => prometheus_count(body, &load.field, series),
        LoadFormat::Json => {
            let v: Value = serde_json::from_str(body).map_err(|e| json_error(&e))?;
            let found = json_path(&v, &load.field)
                .ok_or_else(|| ReadError::new(Fault::Missing, format!("no `{}` in the JSON", load.field)))?;
            json_count(found).ok_or_else(|| ReadError::new(Fault::Missing, format!("`{}` is not a count", load.field)))
        }
        LoadFormat::Xml => {
            let text = xml_path(body, &load.field)?
                .ok_or_else(|| ReadError::new(Fault::Missing, format!("no `{}` element in the XML", load.field)))?;
            text.trim()
                .parse::<f64>()
                .ok()
                .and_then(count)
                .ok_or_else(|| ReadError::new(Fault::Missing, format!("`{}` is not a count", load.field)))
        }
    }
}

/// The series of `metric` added up in one pass over the text
/// ([`promtext::sum`]), without building the samples.
fn prometheus_count(body: &str, metric: &str, series: SeriesFilter<'_>) -> Result<u64, ReadError> {
    let sum = promtext::sum(body, metric, series).map_err(|e| ReadError::new(Fault::Parse, e.to_string()))?;
    if sum.bad {
        return Err(ReadError::new(Fault::Missing, format!("`{metric}` is not a count")));
    }
    if sum.matched == 0 {
        let message = match series {
            Some((label, _)) => format!("no `{metric}` series whose `{label}` names this server in the metrics"),
            None => format!("no `{metric}` in the metrics"),
        };
        return Err(ReadError::new(Fault::Missing, message));
    }
    count(sum.total).ok_or_else(|| ReadError::new(Fault::Missing, format!("`{metric}` is not a count")))
}

/// [`prometheus_count`] as it was first written: every sample parsed
/// ([`promtext::parse`]), then the matching ones added up. The reference
/// the streaming sum is tested against.
#[cfg(test)]
pub(crate) fn prometheus_count_by_parsing(
    body: &str,
    metric: &str,
    series: SeriesFilter<'_>,
) -> Result<u64, ReadError> {
    let samples = promtext::parse(body).map_err(|e| ReadError::new(Fault::Parse, e.to_string()))?;
    let mut total = 0.0;
    let mut found = false;
    for s in samples.iter().filter(|s| s.name == metric) {
        if let Some((label, names)) = series {
            if !s.label(label).is_some_and(names) {
                continue;
            }
        }
        if !(s.value.is_finite() && s.value >= 0.0) {
            return Err(ReadError::new(Fault::Missing, format!("`{metric}` is not a count")));
        }
        total += s.value;
        found = true;
    }
    if !found {
        let message = match series {
            Some((label, _)) => format!("no `{metric}` series whose `{label}` names this server in the metrics"),
            None => format!("no `{metric}` in the metrics"),
        };
        return Err(ReadError::new(Fault::Missing, message));
    }
    count(total).ok_or_else(|| ReadError::new(Fault::Missing, format!("`{metric}` is not a count")))
}

/// A count from a float: finite, not negative, rounded down, capped.
pub fn count(v: f64) -> Option<u64> {
    (v.is_finite() && v >= 0.0).then(|| v.min(MAX_COUNT) as u64)
}

/// A JSON count: a number, or a string holding one (some APIs quote them).
fn json_count(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_f64().and_then(count),
        Value::String(s) => s.trim().parse::<f64>().ok().and_then(count),
        _ => None,
    }
}

/// The value at a dotted path: object keys, and digits as array indices.
pub fn json_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A JSON parse error in the balancer's words: the class and the position,
/// never serde's message (which may quote the input). A number beyond what
/// a 64-bit float holds (`1e400`) is valid JSON that serde refuses: it is
/// reported as such, with [`Fault::Missing`] (there is no count to read),
/// not as malformed JSON.
fn json_error(e: &serde_json::Error) -> ReadError {
    use serde_json::error::Category;
    // serde_json has no public code for it; its message is fixed text.
    if e.to_string().starts_with("number out of range") {
        return ReadError::new(
            Fault::Missing,
            format!(
                "a number out of range (beyond a 64-bit float) at line {} column {}",
                e.line(),
                e.column()
            ),
        );
    }
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Data => "JSON of an unexpected shape",
        Category::Eof => "JSON cut short",
        Category::Io => "unreadable JSON",
    };
    ReadError::new(
        Fault::Parse,
        format!("{what} at line {} column {}", e.line(), e.column()),
    )
}

/// The text of the first element at `path` below the root (`a.b`: a child
/// `b` of a child `a` of the root element), entities decoded; `None` when
/// the document has no such element. Reads only as far as needed, so a
/// document broken after the element still gives it.
pub fn xml_path(body: &str, path: &str) -> Result<Option<String>, ReadError> {
    let want: Vec<&str> = path.split('.').collect();
    let bytes = body.as_bytes();
    let malformed = |at: usize, what: &str| ReadError::new(Fault::Parse, format!("malformed XML at byte {at}: {what}"));
    // Open elements below the root, and whether they all matched `want` so far.
    let mut stack: Vec<bool> = Vec::new();
    let mut root_seen = false;
    let mut capture: Option<(usize, String)> = None; // depth, text
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let end = body[i..].find('<').map_or(body.len(), |n| i + n);
            if let Some((depth, text)) = capture.as_mut() {
                if *depth == stack.len() {
                    text.push_str(&decode_entities(&body[i..end]));
                }
            }
            i = end;
            continue;
        }
        let rest = &body[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").ok_or_else(|| malformed(i, "unterminated comment"))? + 3;
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            let end = rest.find("]]>").ok_or_else(|| malformed(i, "unterminated CDATA"))?;
            if let Some((depth, text)) = capture.as_mut() {
                if *depth == stack.len() {
                    text.push_str(&rest[9..end]);
                }
            }
            i += end + 3;
            continue;
        }
        if rest.starts_with("<?") {
            i += rest
                .find("?>")
                .ok_or_else(|| malformed(i, "unterminated declaration"))?
                + 2;
            continue;
        }
        if rest.starts_with("<!") {
            i += rest.find('>').ok_or_else(|| malformed(i, "unterminated declaration"))? + 1;
            continue;
        }
        let close = rest.find('>').ok_or_else(|| malformed(i, "unterminated tag"))?;
        let tag = &rest[1..close];
        i += close + 1;
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim();
            if name.is_empty() {
                return Err(malformed(i, "empty closing tag"));
            }
            if stack.is_empty() {
                // The root closes: nothing more to find.
                return Ok(None);
            }
            if let Some((depth, text)) = capture.take() {
                if depth == stack.len() {
                    return Ok(Some(text));
                }
                capture = Some((depth, text));
            }
            stack.pop();
            continue;
        }
        let self_closing = tag.ends_with('/');
        let name = tag
            .trim_end_matches('/')
            .split(|c: char| c.is_ascii_whitespace())
            .next()
            .unwrap_or("");
        if name.is_empty() {
            return Err(malformed(i, "tag without a name"));
        }
        if !root_seen {
            root_seen = true;
            if self_closing {
                return Ok(None);
            }
            continue;
        }
        let depth = stack.len();
        let parents_match = stack.last().copied().unwrap_or(true);
        let matches = parents_match && want.get(depth).is_some_and(|w| *w == name);
        if matches && depth + 1 == want.len() {
            if self_closing {
                return Ok(Some(String::new()));
            }
            capture = Some((depth + 1, String::new()));
        }
        if !self_closing {
            if stack.len() >= MAX_XML_DEPTH {
                return Err(malformed(i, "nested too deeply"));
            }
            stack.push(matches);
        }
    }
    if root_seen {
        Err(malformed(body.len(), "the document ends inside an element"))
    } else {
        Err(malformed(0, "no root element"))
    }
}

/// The five predefined entities and numeric character references; anything
/// else is kept as written.
fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One page of a stream list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamPage {
    /// Names of the streams that can be played now, valid stream names only.
    pub names: Vec<String>,
    /// Flussonic's cursor of the next page, if the list goes on.
    pub next: Option<String>,
}

/// strom's `GET /api/v1/streams`: the streams a node can play now (running,
/// on backup, or on-demand).
pub fn strom_streams(body: &str) -> Result<StreamPage, ReadError> {
    let list: strom_api::StreamsResponse = serde_json::from_str(body).map_err(|e| json_error(&e))?;
    Ok(StreamPage {
        names: list
            .streams
            .into_iter()
            .filter(|s| s.playable())
            .map(|s| s.name)
            .filter(|n| strom_config::check_stream_name(n).is_ok())
            .take(MAX_LISTED)
            .collect(),
        next: None,
    })
}

// Every field may be absent or null: only a wrong type is refused.
#[derive(Deserialize)]
struct FlussonicList {
    #[serde(default)]
    streams: Option<Vec<FlussonicStream>>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct FlussonicStream {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(rename = "static", default)]
    is_static: Option<bool>,
    #[serde(default)]
    stats: Option<FlussonicStats>,
}

#[derive(Deserialize)]
struct FlussonicStats {
    #[serde(default)]
    alive: Option<bool>,
}

/// One page of Flussonic's `GET /streamer/api/v3/streams`: the streams
/// that are alive, or that start on request (not `static`), unless
/// `disabled`; and the cursor of the next page.
pub fn flussonic_streams(body: &str) -> Result<StreamPage, ReadError> {
    let list: FlussonicList = serde_json::from_str(body).map_err(|e| json_error(&e))?;
    let next = match list.next {
        Some(c) if c.len() > MAX_CURSOR => {
            return Err(ReadError::new(
                Fault::Parse,
                format!("a `next` cursor longer than {MAX_CURSOR} bytes"),
            ))
        }
        Some(c) if !c.is_empty() => Some(c),
        _ => None,
    };
    // A stream is static unless it says otherwise (Flussonic's default).
    let playable = |s: &FlussonicStream| {
        let alive = s.stats.as_ref().and_then(|st| st.alive).unwrap_or(false);
        s.disabled != Some(true) && (alive || s.is_static == Some(false))
    };
    Ok(StreamPage {
        names: list
            .streams
            .unwrap_or_default()
            .into_iter()
            .filter(|s| playable(s))
            .filter_map(|s| s.name)
            .filter(|n| strom_config::check_stream_name(n).is_ok())
            .take(MAX_LISTED)
            .collect(),
        next,
    })
}

/// The samples of a Prometheus instant query answer
/// (`{"status":"success","data":{"resultType":"vector","result":[{"metric":
/// {"instance":..},"value":[TIME,"VALUE"]}]}}`, per
/// <https://prometheus.io/docs/prometheus/latest/querying/api/>): each
/// sample's `instance` label and value. Samples without an `instance`, or
/// whose value is no count, are left out.
pub fn prometheus_vector(body: &str) -> Result<Vec<(String, u64)>, ReadError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        data: Option<Data>,
    }
    #[derive(Deserialize)]
    struct Data {
        #[serde(default)]
        result: Option<Vec<Sample>>,
    }
    #[derive(Deserialize)]
    struct Sample {
        #[serde(default)]
        metric: Option<std::collections::HashMap<String, String>>,
        #[serde(default)]
        value: Option<(Value, Value)>,
    }
    let answer: Answer = serde_json::from_str(body).map_err(|e| json_error(&e))?;
    let result = answer
        .data
        .and_then(|d| d.result)
        .ok_or_else(|| ReadError::new(Fault::Missing, "no result vector in the answer"))?;
    Ok(result
        .into_iter()
        .filter_map(|s| {
            let instance = s.metric?.remove("instance")?;
            let value = match s.value?.1 {
                Value::String(v) => v.parse::<f64>().ok().and_then(count),
                _ => None,
            }?;
            Some((instance, value))
        })
        .collect())
}

#[cfg(test)]
mod tests;
