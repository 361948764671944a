//! One answer per server kind, shaped as each product documents it (field
//! names and layout from the public references named in
//! `strom_config::server_kind`; the numbers are the test's), read through
//! each kind's default load source; then the failure cases: every error has
//! a class and never quotes the answer.

use super::*;
use proptest::prelude::*;
use strom_config::ServerKind;

fn load_of(kind: ServerKind) -> LoadSource {
    kind.default_load().expect("the kind has a default load source")
}

const STROM_METRICS: &str = "# HELP strom_server_clients Current viewers\n# TYPE strom_server_clients gauge\n\
                             strom_server_clients 42\nstrom_server_online_streams 3\n# EOF\n";

/// `GET /streamer/api/v3/config/stats`: a ServerStats object.
const FLUSSONIC_STATS: &str = r#"{"cpu_usage": 12, "memory_usage": 40, "total_bandwidth": 352000,
    "total_clients": 37, "streamer_status": "running", "server_version": "24.04"}"#;

/// `GET /streamer/api/v3/streams`: one page of StreamConfig objects.
const FLUSSONIC_STREAMS: &str = r#"{"estimated_count": 5, "next": "c2tpcD0xMDA=", "server_id": "a1",
  "streams": [
    {"name": "news", "static": true, "stats": {"alive": true, "online_clients": 12, "status": "running"}},
    {"name": "movies", "static": false, "stats": {"alive": false, "online_clients": 0}},
    {"name": "archive", "static": true, "disabled": true, "stats": {"alive": true}},
    {"name": "broken", "static": true, "stats": {"alive": false, "status": "retrying"}},
    {"name": "api/x", "static": true, "stats": {"alive": true}},
    {"name": "plain"}
  ]}"#;

/// `GET /connectioncounts`: the server's counters first, then each VHost,
/// application and stream with its own.
const WOWZA_CONNECTION_COUNTS: &str = r#"<?xml version="1.0"?>
<WowzaStreamingEngine>
<ConnectionsCurrent>25</ConnectionsCurrent>
<ConnectionsTotal>140</ConnectionsTotal>
<ConnectionsTotalAccepted>139</ConnectionsTotalAccepted>
<ConnectionsTotalRejected>1</ConnectionsTotalRejected>
<MessagesInBytesRate>51200.0</MessagesInBytesRate>
<MessagesOutBytesRate>1280000.0</MessagesOutBytesRate>
<VHost>
<Name>_defaultVHost_</Name>
<TimeRunning>3600.5</TimeRunning>
<ConnectionsLimit>0</ConnectionsLimit>
<ConnectionsCurrent>25</ConnectionsCurrent>
<Application>
<Name>live</Name>
<Status>loaded</Status>
<ConnectionsCurrent>25</ConnectionsCurrent>
<ApplicationInstance>
<Name>_definst_</Name>
<Stream>
<Name>news</Name>
<SessionsFlash>2</SessionsFlash>
<SessionsCupertino>23</SessionsCupertino>
</Stream>
</ApplicationInstance>
</Application>
</VHost>
</WowzaStreamingEngine>
"#;

/// `GET /manage/server_status`.
const NIMBLE_SERVER_STATUS: &str = r#"{"Connections": 18, "OutRate": 9876543}"#;

#[test]
fn each_kind_reads_its_documented_answer() {
    assert_eq!(read_load(STROM_METRICS, &load_of(ServerKind::Strom), None), Ok(42));
    assert_eq!(
        read_load(FLUSSONIC_STATS, &load_of(ServerKind::Flussonic), None),
        Ok(37)
    );
    assert_eq!(
        read_load(WOWZA_CONNECTION_COUNTS, &load_of(ServerKind::Wowza), None),
        Ok(25)
    );
    assert_eq!(
        read_load(NIMBLE_SERVER_STATUS, &load_of(ServerKind::Nimble), None),
        Ok(18)
    );
    let generic = LoadSource {
        format: LoadFormat::Json,
        target: "/stats".into(),
        field: "edge.viewers.1".into(),
    };
    assert_eq!(read_load(r#"{"edge": {"viewers": [3, "7"]}}"#, &generic, None), Ok(7));
}

#[test]
fn wowza_takes_the_server_total_not_a_vhost_or_stream() {
    let at = |path: &str| xml_path(WOWZA_CONNECTION_COUNTS, path);
    assert_eq!(at("ConnectionsCurrent"), Ok(Some("25".into())));
    assert_eq!(at("VHost.Name"), Ok(Some("_defaultVHost_".into())));
    assert_eq!(
        at("VHost.Application.ApplicationInstance.Stream.SessionsCupertino"),
        Ok(Some("23".into()))
    );
    assert_eq!(at("Name"), Ok(None), "a Name exists only deeper");
    assert_eq!(at("Missing"), Ok(None));
    // Older servers name the root differently; the path starts below it.
    let old = WOWZA_CONNECTION_COUNTS.replace("WowzaStreamingEngine", "WowzaMediaServer");
    assert_eq!(xml_path(&old, "ConnectionsCurrent"), Ok(Some("25".into())));
}

#[test]
fn xml_details() {
    let doc = "<!-- c --><r a=\"1\"><x/><y>a &amp; b&#65;<![CDATA[<z>]]><n>no</n>!</y><k>  7 </k></r>";
    assert_eq!(xml_path(doc, "x"), Ok(Some(String::new())));
    assert_eq!(xml_path(doc, "y"), Ok(Some("a & bA<z>!".into())));
    let load = LoadSource {
        format: LoadFormat::Xml,
        target: "/".into(),
        field: "k".into(),
    };
    assert_eq!(read_load(doc, &load, None), Ok(7));
    assert_eq!(xml_path("<r/>", "x"), Ok(None));
    // Found before the breakage: good enough.
    assert_eq!(xml_path("<r><k>3</k><broken", "k"), Ok(Some("3".into())));
    for bad in [
        "",
        "just text",
        "<r><k>1",
        "<r><!-- x",
        "<r><",
        "<r></>",
        "<r><![CDATA[x",
    ] {
        let e = xml_path(bad, "k").expect_err(bad);
        assert_eq!(e.fault, Fault::Parse, "{bad}");
        assert!(e.message.starts_with("malformed XML at byte "), "{bad}: {e}");
    }
    let deep = "<a>".repeat(100);
    assert!(xml_path(&deep, "z")
        .expect_err("too deep")
        .message
        .contains("nested too deeply"));
}

#[test]
fn prometheus_series_and_labels() {
    let text = "clients{instance=\"a:80\",job=\"x\"} 3\nclients{instance=\"b:80\"} 5\nclients{instance=\"a:80\",job=\"y\"} 4\n";
    let load = LoadSource {
        format: LoadFormat::Prometheus,
        target: "/metrics".into(),
        field: "clients".into(),
    };
    assert_eq!(read_load(text, &load, None), Ok(12), "every series added up");
    let is_a = |v: &str| v == "a:80";
    assert_eq!(read_load(text, &load, Some(("instance", &is_a))), Ok(7));
    let nobody = |_: &str| false;
    let e = read_load(text, &load, Some(("instance", &nobody))).expect_err("no series");
    assert_eq!(
        (e.fault, e.message.as_str()),
        (
            Fault::Missing,
            "no `clients` series whose `instance` names this server in the metrics"
        )
    );
    assert_eq!(
        read_load("other 1\n", &load, None).expect_err("absent").message,
        "no `clients` in the metrics"
    );
    assert_eq!(
        read_load("clients -1\n", &load, None).expect_err("negative").fault,
        Fault::Missing
    );
    assert_eq!(
        read_load("clients NaN\n", &load, None).expect_err("nan").fault,
        Fault::Missing
    );
    assert_eq!(read_load("clients 1e300\n", &load, None), Ok(1_000_000_000_000));
    assert_eq!(read_load("clients 2.9\n", &load, None), Ok(2));
}

#[test]
fn stream_lists_of_strom_and_flussonic() {
    let page = flussonic_streams(FLUSSONIC_STREAMS).expect("page");
    // Alive, or on request (not static); not disabled, not dead, valid names.
    assert_eq!(page.names, ["news", "movies"]);
    assert_eq!(page.next.as_deref(), Some("c2tpcD0xMDA="));
    let last = flussonic_streams(r#"{"streams": [{"name": "a", "stats": {"alive": true}}], "next": null}"#);
    assert_eq!(last.map(|p| (p.names, p.next)), Ok((vec!["a".to_string()], None)));
    assert_eq!(
        flussonic_streams(r#"{"streams": null, "next": ""}"#),
        Ok(StreamPage::default())
    );
    let long = format!(r#"{{"streams": [], "next": "{}"}}"#, "x".repeat(MAX_CURSOR + 1));
    assert_eq!(flussonic_streams(&long).expect_err("long cursor").fault, Fault::Parse);

    let text = r#"{"streams":[{"name":"a","status":"running","ondemand":false},{"name":"b","status":"failed","ondemand":false},
        {"name":"c","status":"stopped","ondemand":true},{"name":"../x","status":"running","ondemand":false}]}"#;
    assert_eq!(
        strom_streams(text).map(|p| p.names),
        Ok(vec!["a".to_string(), "c".to_string()])
    );
}

#[test]
fn lists_are_bounded() {
    let many: Vec<String> = (0..MAX_LISTED + 5)
        .map(|i| format!(r#"{{"name":"s{i}","stats":{{"alive":true}}}}"#))
        .collect();
    let body = format!(r#"{{"streams":[{}]}}"#, many.join(","));
    assert_eq!(flussonic_streams(&body).map(|p| p.names.len()), Ok(MAX_LISTED));
}

/// Garbage made to look like an attack: none of it may reach a message.
const MARKER: &str = "EVIL<script>\u{1b}[31m";

#[test]
fn errors_never_quote_the_answer() {
    let json_like = [
        format!("{{\"total_clients\": \"{MARKER}\"}}"),
        format!("{{\"total_clients\": [\"{MARKER}\"]}}"),
        MARKER.to_string(),
        format!("{{\"{MARKER}\": 1"),
        format!("{{\"streams\": \"{MARKER}\"}}"),
        format!("{{\"streams\": [{{\"name\": 5, \"x\": \"{MARKER}\"}}]}}"),
        format!("{{\"streams\":[{{\"name\":\"a\",\"status\":\"{MARKER}\"}}]}}"),
    ];
    for body in &json_like {
        for result in [
            read_load(body, &load_of(ServerKind::Flussonic), None).map(|_| ()),
            flussonic_streams(body).map(|_| ()),
            strom_streams(body).map(|_| ()),
        ] {
            if let Err(e) = result {
                assert!(!e.message.contains("EVIL") && !e.message.contains('<'), "{body}: {e}");
                assert!(matches!(e.fault, Fault::Parse | Fault::Missing), "{body}: {e:?}");
            }
        }
    }
    for load in [load_of(ServerKind::Strom), load_of(ServerKind::Wowza)] {
        for body in [
            format!("{MARKER} 1\n"),
            format!("<r><ConnectionsCurrent>{MARKER}</ConnectionsCurrent></r>"),
        ] {
            if let Err(e) = read_load(&body, &load, None) {
                assert!(!e.message.contains("EVIL"), "{body}: {e}");
            }
        }
    }
    let e = read_load("{\"total_clients\": \"many\"}", &load_of(ServerKind::Flussonic), None).expect_err("no count");
    assert_eq!(e.message, "`total_clients` is not a count");
    let e = read_load("{\"total_clients\": 1", &load_of(ServerKind::Flussonic), None).expect_err("cut");
    assert_eq!(
        (e.fault, e.message.as_str()),
        (Fault::Parse, "JSON cut short at line 1 column 19")
    );
    assert_eq!(
        e.context("load /s").message,
        "load /s: JSON cut short at line 1 column 19"
    );
}

proptest! {
    #[test]
    fn readers_never_panic(body in "\\PC{0,300}", path in "[A-Za-z.0-9]{1,12}") {
        for format in LoadFormat::ALL {
            let load = LoadSource { format, target: "/".into(), field: path.clone() };
            let _ = read_load(&body, &load, None);
        }
        let _ = xml_path(&body, &path);
        let _ = flussonic_streams(&body);
        let _ = strom_streams(&body);
    }

    #[test]
    fn xml_like_input_never_panics(parts in prop::collection::vec(
        prop_oneof![Just("<a>"), Just("</a>"), Just("<b/>"), Just("<!--"), Just("-->"), Just("<![CDATA["),
                    Just("]]>"), Just("&amp;"), Just("&#x1F600;"), Just("&#99999999;"), Just("<?x?>"), Just("7"),
                    Just("é"), Just(">"), Just("<")], 0..40)) {
        let doc: String = parts.concat();
        let _ = xml_path(&doc, "a.b");
        let _ = xml_path(&doc, "a");
    }

    #[test]
    fn a_written_count_reads_back(n in 0u64..1_000_000_000_000, kind in prop::sample::select(vec![
        ServerKind::Strom, ServerKind::Flussonic, ServerKind::Wowza, ServerKind::Nimble])) {
        let body = match kind {
            ServerKind::Strom => format!("strom_server_clients {n}\n"),
            ServerKind::Flussonic => format!("{{\"total_clients\": {n}}}"),
            ServerKind::Wowza => format!("<W><ConnectionsCurrent>{n}</ConnectionsCurrent></W>"),
            _ => format!("{{\"Connections\": {n}}}"),
        };
        prop_assert_eq!(read_load(&body, &load_of(kind), None), Ok(n));
    }
}

#[test]
fn prometheus_query_answers() {
    let body = r#"{"status":"success","data":{"resultType":"vector","result":[
        {"metric":{"instance":"10.0.0.1:8080"},"value":[1700000000.1,"12"]},
        {"metric":{"instance":"f1","job":"flussonic"},"value":[1700000000.1,"7.9"]},
        {"metric":{"job":"no-instance"},"value":[1700000000.1,"3"]},
        {"metric":{"instance":"bad"},"value":[1700000000.1,"NaN"]},
        {"metric":{"instance":"neg"},"value":[1700000000.1,"-1"]}]}}"#;
    assert_eq!(
        prometheus_vector(body),
        Ok(vec![("10.0.0.1:8080".to_string(), 12), ("f1".to_string(), 7)])
    );
    assert_eq!(
        prometheus_vector(r#"{"status":"error","errorType":"bad_data","error":"EVIL"}"#)
            .expect_err("no data")
            .message,
        "no result vector in the answer"
    );
    let e = prometheus_vector("<html>EVIL</html>").expect_err("garbage");
    assert_eq!(e.fault, Fault::Parse);
    assert!(!e.message.contains("EVIL"));
}

#[test]
fn a_number_out_of_range_is_no_count_not_malformed_json() {
    let nimble = load_of(ServerKind::Nimble);
    let e = read_load(r#"{"Connections":1e400}"#, &nimble, None).expect_err("out of range");
    assert_eq!(e.fault, Fault::Missing, "{e}");
    assert!(
        e.message.contains("out of range") && e.message.contains("line 1"),
        "{e}"
    );
    // Broken JSON is still malformed.
    let e = read_load(r#"{"Connections":}"#, &nimble, None).expect_err("malformed");
    assert_eq!(e.fault, Fault::Parse, "{e}");
}

#[test]
fn the_streaming_sum_reads_escaped_labels_and_stops_at_the_bound() {
    let load = LoadSource {
        format: LoadFormat::Prometheus,
        target: "/metrics".into(),
        field: "c".into(),
    };
    let named = |v: &str| v == "a\"b";
    let text = "c{instance=\"a\\\"b\"} 2\nc{instance=\"x\",instance=\"a\\\"b\"} 5\nc{instance=\"a\\\"b\"} 3\n";
    assert_eq!(
        read_load(text, &load, Some(("instance", &named))),
        Ok(5),
        "the first label decides"
    );
    let many = "x 1\n".repeat(promtext::MAX_SAMPLES + 1);
    let e = read_load(&many, &load, None).expect_err("too many samples");
    assert_eq!(
        (e.fault, e.message.as_str()),
        (Fault::Parse, "metrics line 1000001: too many samples")
    );
}

/// A line of Prometheus text from a small grammar: the metric read or
/// others, labels (escaped values, the filter's label or not), values
/// that are counts or not, timestamps, comments, blanks and garbage.
fn prom_line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["c", "c_total", "cc", "other"]);
    let label = (
        prop::sample::select(vec!["instance", "job", "i"]),
        prop::sample::select(vec!["s1", "s2", "s\\\"1", "s\\n1", "s\\\\1", "", "é"]),
    )
        .prop_map(|(k, v)| format!("{k}=\"{v}\""));
    let labels = prop::collection::vec(label, 0..3).prop_map(|l| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", l.join(","))
        }
    });
    let value = prop::sample::select(vec![
        "0", "1", "2.5", "17", "-1", "NaN", "+Inf", "-Inf", "1e3", "0.1", "1e400", "x",
    ]);
    let ts = prop::sample::select(vec!["", " 1700000000000", " t", " 1 2"]);
    let sample = (name, labels, value, ts).prop_map(|(n, l, v, t)| format!("{n}{l} {v}{t}"));
    prop_oneof![
        8 => sample,
        1 => Just("# HELP c viewers".to_string()),
        1 => Just(String::new()),
        1 => "\\PC{0,12}",
    ]
}

proptest! {
    /// The load read in one pass equals the load read by parsing every
    /// sample first and adding up after, error class and message included.
    #[test]
    fn the_streaming_sum_equals_parse_then_sum(
        lines in prop::collection::vec(prom_line(), 0..30),
        crlf in any::<bool>(),
        by_label in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let named = |v: &str| v == "s1" || v == "s\"1" || v == "s\n1";
        let filter: SeriesFilter<'_> = if by_label { Some(("instance", &named)) } else { None };
        let load = LoadSource { format: LoadFormat::Prometheus, target: "/metrics".into(), field: "c".into() };
        prop_assert_eq!(
            read_load(&text, &load, filter),
            prometheus_count_by_parsing(&text, "c", filter),
            "text {:?}", text
        );
    }
}
