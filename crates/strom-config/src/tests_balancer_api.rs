//! The balancer's admin API and multi-balancer directives: `view_auth`,
//! `edit_auth` (checked exactly as a node's), `state_file` and `peers`,
//! with their errors pinned and their round trip through `to_text`.

use crate::*;

fn ok(text: &str) -> BalancerConfig {
    match parse_balancer("b.conf", text) {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

fn errs(text: &str) -> Vec<String> {
    match parse_balancer("b.conf", text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

const SERVER: &str = "server s1 { url http://a; max_clients 1; }\n";

#[test]
fn admin_directives_parse_and_round_trip() {
    let c = ok(&format!(
        "{SERVER}view_auth viewer \"pa ss\";\nedit_auth admin s3cret;\nstate_file /var/lib/strom/balancer.json;\n\
         peers http://10.0.0.2:8000 https://b3.example/;\n"
    ));
    let view = c.view_auth.as_ref().map(|c| (c.user.as_str(), c.password.as_str()));
    assert_eq!(view, Some(("viewer", "pa ss")));
    assert_eq!(c.edit_auth.as_ref().map(|c| c.user.as_str()), Some("admin"));
    assert_eq!(
        c.state_file.as_deref(),
        Some(std::path::Path::new("/var/lib/strom/balancer.json"))
    );
    // Normalised as a server `url` is: no trailing `/`.
    assert_eq!(c.peers, ["http://10.0.0.2:8000", "https://b3.example"]);
    assert!(!format!("{c:?}").contains("s3cret"), "passwords never printed");
    assert_eq!(parse_balancer("b.conf", &c.to_text()), Ok(c.clone()));
    assert_eq!(parse_any("b.conf", &c.to_text()), Ok(AnyConfig::Balancer(c)));
}

#[test]
fn defaults_have_no_admin_and_no_peers() {
    let c = ok(SERVER);
    assert_eq!((c.view_auth, c.edit_auth, c.state_file), (None, None, None));
    assert!(c.peers.is_empty());
}

#[test]
fn credentials_are_checked_as_a_nodes() {
    // The same message as the node checker's (`credentials_errors` in tests.rs).
    assert_eq!(
        errs(&format!("{SERVER}view_auth a:b pw;")),
        ["b.conf:2:11: `view_auth` user name must not contain `:`"]
    );
    let node = crate::parse("n.conf", "edit_auth a:b pw;").expect_err("node refuses it too");
    assert_eq!(node[0].message, "`edit_auth` user name must not contain `:`");
    assert_eq!(
        errs(&format!("{SERVER}edit_auth a:b pw;")),
        ["b.conf:2:11: `edit_auth` user name must not contain `:`"]
    );
    assert_eq!(
        errs(&format!("{SERVER}edit_auth admin;")),
        ["b.conf:2:1: `edit_auth` takes 2 arguments, got 1"]
    );
    assert_eq!(
        errs(&format!("{SERVER}edit_auth admin \"\";")),
        ["b.conf:2:17: `edit_auth` must not be empty"]
    );
    assert_eq!(
        errs(&format!("{SERVER}view_auth a b;\nview_auth c d;")),
        ["b.conf:3:1: duplicate `view_auth` at top level; first set at line 2"]
    );
}

#[test]
fn state_file_and_peers_errors() {
    assert_eq!(
        errs(&format!("{SERVER}state_file a b;")),
        ["b.conf:2:14: `state_file` takes 1 argument, got 2"]
    );
    assert_eq!(
        errs(&format!("{SERVER}state_file \"\";")),
        ["b.conf:2:12: `state_file` must not be empty"]
    );
    assert_eq!(
        errs(&format!("{SERVER}peers ftp://b2;")),
        ["b.conf:2:7: bad URL `ftp://b2`: expected http:// or https://"]
    );
    assert_eq!(
        errs(&format!("{SERVER}peers http://b2:8000 http://b2:8000/;")),
        ["b.conf:2:22: duplicate `http://b2:8000` in `peers`; first at line 2"]
    );
    assert_eq!(
        errs(&format!("{SERVER}peers;")),
        ["b.conf:2:1: `peers` takes at least 1 argument, got 0"]
    );
    assert_eq!(
        errs(&format!("{SERVER}peer http://b2;")),
        ["b.conf:2:1: `peer` is not allowed in a balancer config; it belongs in a node config; did you mean `peers`?"]
    );
}

fn warnings(text: &str) -> Vec<String> {
    ok(text).warnings.iter().map(ToString::to_string).collect()
}

#[test]
fn admin_changes_off_is_a_warning() {
    let w = warnings(&format!("{SERVER}edit_auth admin s3cret;\n"));
    assert_eq!(
        w,
        [
            "b.conf:2:1: warning: `edit_auth` without `state_file`: the admin API refuses every change (403 \
          admin_disabled); add `state_file PATH;` to keep changes in"
        ]
    );
    let c = ok(&format!("{SERVER}view_auth v pw;\nstate_file /tmp/s.json;\n"));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].kind, WarningKind::AdminChangesOff);
    assert_eq!(
        c.warnings[0].to_string(),
        "b.conf:3:1: warning: `state_file` without `edit_auth`: the admin API refuses every change (403 \
         admin_disabled), so the file is only read; add `edit_auth USER PASSWORD;` to make changes"
    );
    // Both, or neither (reads only): nothing to say.
    assert!(warnings(&format!("{SERVER}edit_auth a b;\nstate_file /tmp/s.json;\n")).is_empty());
    assert!(warnings(&format!("{SERVER}view_auth a b;\n")).is_empty());
    assert!(warnings(SERVER).is_empty());
}

#[test]
fn a_missing_geoip_file_is_a_warning_with_its_position() {
    let dir = std::env::temp_dir().join(format!("strom-config-geoip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("country.mmdb");
    std::fs::write(&db, b"not checked beyond existing").expect("write");
    let countries = "server s2 { url http://b; max_clients 1; countries DE; }\n";
    assert!(warnings(&format!("{SERVER}{countries}geoip {};\n", db.display())).is_empty());

    let missing = dir.join("no-such.mmdb");
    let c = ok(&format!("{SERVER}{countries}geoip {};\n", missing.display()));
    let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [format!(
            "b.conf:3:7: warning: GeoIP database `{}` does not exist on this machine; `strom balancer` refuses to \
             start without it",
            missing.display()
        )]
    );
    assert_eq!(c.warnings[0].kind, WarningKind::GeoipMissing);
    assert_eq!(
        c.geoip.as_deref(),
        Some(missing.as_path()),
        "still valid: it may exist where it runs"
    );
    let w = warnings(&format!("{SERVER}geoip {};\n", dir.display()));
    assert!(w.len() == 1 && w[0].contains("is not a file"), "{w:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
