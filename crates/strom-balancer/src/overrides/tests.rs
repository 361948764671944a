//! State entries over a config file: each kind of change, validation with
//! `strom check`'s messages, setting sources and the skipping merge.

use super::*;

const BASE: &str = "\
server s1 { url http://10.0.0.1:8080; max_clients 100; monitoring on; }
server s2 { url http://10.0.0.2:8080; max_clients 50; networks 10.1.0.0/16; }
server s3 { url http://10.0.0.3:8080; max_clients 10; }
channel news { servers s1 s2; }
";

fn base() -> BalancerConfig {
    strom_config::parse_balancer("b.conf", BASE).expect("valid base")
}

fn new_server(name: &str, url: &str, max: u64) -> NewServer {
    NewServer {
        name: name.into(),
        url: url.into(),
        max_clients: max,
        kind: None,
        public: None,
        monitoring: None,
        networks: None,
        countries: None,
        enabled: None,
        draining: None,
    }
}

fn patch(json: &str) -> Patch {
    serde_json::from_str(json).expect("valid patch")
}

/// Applies `ch` as the admin API does: the new state, merged, accepted.
fn apply(base: &BalancerConfig, before: &Merged, ch: Change) -> Result<Merged, ChangeError> {
    let doc = change(base, &before.applied, &before.config, &ch)?;
    let after = merge(base, &doc);
    accepted(&after, &ch)?;
    Ok(after)
}

/// The message `strom check` gives for a balancer file.
fn check_message(text: &str) -> String {
    let errs = strom_config::parse_balancer("x.conf", text).expect_err("invalid");
    errs[0].message.clone()
}

#[test]
fn an_empty_state_is_the_config_file() {
    let b = base();
    let m = merge(&b, &StateDoc::default());
    assert_eq!(m.config, b);
    assert!(m.skipped.is_empty());
    let o = &m.origins["s2"];
    assert_eq!((o.origin, o.enabled, o.draining), ("config", true, false));
    assert_eq!(o.sources["max_clients"], Source::Config);
    assert_eq!(o.sources["draining"], Source::Default);
}

#[test]
fn modify_overrides_a_setting_and_null_gives_it_back() {
    let b = base();
    let m0 = merge(&b, &StateDoc::default());
    let m1 = apply(
        &b,
        &m0,
        Change::Modify("s2".into(), patch(r#"{"max_clients": 70, "countries": null}"#)),
    )
    .expect("valid change");
    let s2 = m1.config.server("s2").expect("s2");
    assert_eq!((s2.max_clients, s2.networks.len()), (70, 1));
    assert_eq!(m1.origins["s2"].sources["max_clients"], Source::State);
    assert_eq!(m1.origins["s2"].sources["networks"], Source::Config);
    assert_eq!(
        m1.applied.servers,
        vec![Entry {
            name: "s2".into(),
            max_clients: Some(70),
            ..Entry::default()
        }]
    );
    let m2 = apply(&b, &m1, Change::Modify("s2".into(), patch(r#"{"max_clients": null}"#))).expect("valid");
    assert_eq!(m2.config.server("s2").map(|s| s.max_clients), Some(50));
    assert!(
        m2.applied.servers.is_empty(),
        "an entry that changes nothing is dropped"
    );
}

#[test]
fn drain_and_disable_close_a_server() {
    let b = base();
    let m0 = merge(&b, &StateDoc::default());
    let m1 = apply(&b, &m0, Change::Modify("s1".into(), patch(r#"{"draining": true}"#))).expect("valid");
    assert!(m1.origins["s1"].closed() && m1.origins["s1"].draining);
    assert_eq!(m1.origins["s1"].sources["draining"], Source::State);
    let m2 = apply(&b, &m1, Change::Modify("s3".into(), patch(r#"{"enabled": false}"#))).expect("valid");
    assert!(m2.origins["s3"].closed() && !m2.origins["s3"].enabled);
    assert!(!m2.origins["s2"].closed());
    assert_eq!(m2.config, b, "flags are not config settings");
}

#[test]
fn add_and_remove_servers() {
    let b = base();
    let m0 = merge(&b, &StateDoc::default());
    let mut s4 = new_server("s4", "http://10.0.0.4:8080/", 20);
    s4.networks = Some(vec!["10.2.3.4/16".into()]);
    let m1 = apply(&b, &m0, Change::Add(s4)).expect("valid");
    let got = m1.config.server("s4").expect("added");
    assert_eq!(got.url, "http://10.0.0.4:8080", "normalised as the config file's");
    assert_eq!(got.kind, strom_config::ServerKind::Strom, "the default kind");
    assert_eq!(got.networks[0].to_string(), "10.2.0.0/16");
    assert_eq!(m1.origins["s4"].origin, "api");
    assert_eq!(m1.origins["s4"].sources["max_clients"], Source::State);
    assert_eq!(m1.origins["s4"].sources["enabled"], Source::Default);
    assert_eq!(
        apply(&b, &m1, Change::Add(new_server("s4", "http://x", 1))).err(),
        Some(ChangeError::Exists("s4".into()))
    );
    // Removing an added server forgets it; removing a config server leaves
    // a mark so that it stays away after a reload.
    let m2 = apply(&b, &m1, Change::Remove("s4".into())).expect("valid");
    assert!(m2.config.server("s4").is_none() && m2.applied.servers.is_empty());
    let m3 = apply(&b, &m2, Change::Remove("s3".into())).expect("valid");
    assert!(m3.config.server("s3").is_none());
    assert_eq!(
        m3.applied.servers,
        vec![Entry {
            name: "s3".into(),
            removed: true,
            ..Entry::default()
        }]
    );
    assert_eq!(
        apply(&b, &m3, Change::Remove("s3".into())).err(),
        Some(ChangeError::UnknownServer("s3".into()))
    );
    assert_eq!(
        apply(&b, &m3, Change::Modify("s3".into(), patch(r#"{"enabled": false}"#))).err(),
        Some(ChangeError::UnknownServer("s3".into()))
    );
    // A Flussonic server: read as its kind says.
    let mut f1 = new_server("f1", "http://10.0.0.7", 50);
    f1.kind = Some("flussonic".into());
    let mf = apply(&b, &m3, Change::Add(f1)).expect("valid");
    assert_eq!(
        mf.config.server("f1").map(|s| s.kind),
        Some(strom_config::ServerKind::Flussonic)
    );
    assert_eq!(mf.origins["f1"].sources["kind"], Source::State);
    // Added back: the new definition only, nothing of the file's block.
    let m4 = apply(&b, &m3, Change::Add(new_server("s3", "http://10.9.9.9", 5))).expect("valid");
    let s3 = m4.config.server("s3").expect("back");
    assert_eq!((s3.url.as_str(), s3.max_clients), ("http://10.9.9.9", 5));
    assert_eq!(m4.origins["s3"].origin, "config");
    assert_eq!(m4.origins["s3"].sources["url"], Source::State);
}

#[test]
fn validation_is_strom_checks() {
    let b = base();
    let m0 = merge(&b, &StateDoc::default());
    let invalid = |ch: Change| match apply(&b, &m0, ch) {
        Err(ChangeError::Invalid(p)) => p,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let p = invalid(Change::Add(new_server("s4", "ftp://x", 5)));
    assert_eq!(p, [check_message("server s4 { url ftp://x; max_clients 5; }")]);
    let p = invalid(Change::Add(new_server("bad name", "http://x", 5)));
    assert_eq!(
        p,
        [check_message("server \"bad name\" { url http://x; max_clients 5; }")]
    );
    let p = invalid(Change::Modify("s1".into(), patch(r#"{"max_clients": 0}"#)));
    assert_eq!(p, [check_message("server s1 { url http://a; max_clients 0; }")]);
    let p = invalid(Change::Modify("s1".into(), patch(r#"{"networks": ["10.0.0.0/33"]}"#)));
    assert_eq!(
        p,
        [check_message(
            "server s1 { url http://a; max_clients 1; networks 10.0.0.0/33; }"
        )]
    );
    let p = invalid(Change::Modify("s1".into(), patch(r#"{"countries": ["DE"]}"#)));
    assert_eq!(
        p,
        [check_message(
            "server s1 { url http://a; max_clients 1; countries DE; }"
        )],
        "countries need geoip"
    );
    let mut flu = new_server("f1", "http://x", 5);
    flu.kind = Some("flusonic".into());
    let p = invalid(Change::Add(flu));
    assert_eq!(
        p,
        [check_message(
            "server f1 { kind flusonic; url http://x; max_clients 5; }"
        )]
    );
    let p = invalid(Change::Modify(
        "s1".into(),
        patch(r#"{"networks": ["10.0.0.1", "10.0.0.1/32"]}"#),
    ));
    assert!(p[0].contains("duplicate `10.0.0.1/32`"), "{p:?}");
    assert_eq!(
        apply(&b, &m0, Change::Modify("s1".into(), patch("{}"))).err(),
        Some(ChangeError::Empty)
    );
}

#[test]
fn a_server_a_channel_names_cannot_be_removed() {
    let b = base();
    let m0 = merge(&b, &StateDoc::default());
    match apply(&b, &m0, Change::Remove("s2".into())) {
        Err(ChangeError::Conflict(p)) => assert_eq!(
            p,
            ["server `s2` is named by channel `news`; remove it from the channel block first"]
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Named by several channels: all of them are named.
    let two =
        strom_config::parse_balancer("b.conf", &format!("{BASE}channel sport {{ servers s2; }}\n")).expect("valid");
    let m = merge(&two, &StateDoc::default());
    match apply(&two, &m, Change::Remove("s2".into())) {
        Err(ChangeError::Conflict(p)) => assert_eq!(
            p,
            ["server `s2` is named by channels `news`, `sport`; remove it from those channel blocks first"]
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn entries_that_no_longer_fit_are_skipped_and_the_rest_applies() {
    let b = base();
    let doc = StateDoc {
        version: STATE_VERSION,
        servers: vec![
            Entry {
                name: "s3".into(),
                removed: true,
                ..Entry::default()
            },
            Entry {
                name: "s1".into(),
                max_clients: Some(7),
                ..Entry::default()
            },
            Entry {
                name: "gone".into(),
                draining: Some(true),
                ..Entry::default()
            },
        ],
    };
    assert!(merge(&b, &doc).skipped.len() == 1, "only the orphan entry");
    // The config file changed: a channel now names s3.
    let edited =
        strom_config::parse_balancer("b.conf", &format!("{BASE}channel sport {{ servers s3; }}\n")).expect("valid");
    let m = merge(&edited, &doc);
    assert!(m.config.server("s3").is_some(), "the removal no longer applies");
    assert_eq!(m.config.server("s1").map(|s| s.max_clients), Some(7));
    let skipped: Vec<&str> = m.skipped.iter().map(|s| s.server.as_str()).collect();
    assert_eq!(skipped, ["s3", "gone"]);
    assert_eq!(
        m.skipped[0].problems,
        ["server `s3` is named by channel `sport`; remove it from the channel block first"]
    );
    assert!(m.skipped[1].problems[0].contains("needs `url` and `max_clients`"));
    assert_eq!(m.applied.servers.len(), 1);
}

#[test]
fn state_file_json_round_trips_and_refuses_unknown_fields() {
    let doc = StateDoc {
        version: STATE_VERSION,
        servers: vec![Entry {
            name: "s1".into(),
            max_clients: Some(5),
            draining: Some(true),
            ..Entry::default()
        }],
    };
    let text = serde_json::to_string(&doc).expect("serialisable");
    assert_eq!(
        text,
        r#"{"version":1,"servers":[{"name":"s1","max_clients":5,"draining":true}]}"#
    );
    assert_eq!(serde_json::from_str::<StateDoc>(&text).ok(), Some(doc));
    assert!(serde_json::from_str::<StateDoc>(r#"{"version":1,"servers":[{"name":"a","maxclients":5}]}"#).is_err());
    assert!(
        serde_json::from_str::<Patch>(r#"{"url":"http://x"}"#).is_err(),
        "url is not modifiable"
    );
    let p = patch(r#"{"draining": null}"#);
    assert_eq!((p.draining, p.enabled), (Some(None), None));
}
