use std::collections::BTreeSet;

use super::*;

/// The `(section, key)` pairs of an INI text, as Pushpin reads it: `[section]` headers, `key=value` lines,
/// `#` comments.
fn ini_keys(text: &str) -> BTreeSet<(String, String)> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, _) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        assert!(!section.is_empty(), "{key} outside any section");
        assert!(
            keys.insert((section.clone(), key.trim().to_owned())),
            "{key} twice in [{section}]"
        );
    }
    keys
}

fn shipped(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/pushpin")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_shipped_config_has_the_keys_the_launcher_writes() {
    let written = PushpinConfig::new().render_conf(Path::new("/tmp/x"), 7999, 5561);
    assert_eq!(ini_keys(&shipped("pushpin.conf")), ini_keys(&written));
}

#[test]
fn the_shipped_routes_use_over_http_for_every_target() {
    let routes = shipped("routes");
    let line = routes
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap();
    let config = PushpinConfig::new()
        .target("127.0.0.1:4010".parse().unwrap())
        .target("127.0.0.1:4011".parse().unwrap());
    assert_eq!(line, config.routes_line());
}

#[test]
fn the_config_carries_its_settings() {
    let conf = PushpinConfig::new()
        .sig_key("k3y")
        .message_rate(1234)
        .connection_subscription_max(7)
        .render_conf(Path::new("/tmp/inst"), 1000, 2000);
    for line in [
        "sig_key=k3y",
        "message_rate=1234",
        "message_hwm=1234",
        "connection_subscription_max=7",
        "http_port=127.0.0.1:1000",
        "push_in_http_port=2000",
        "rundir=/tmp/inst/run",
    ] {
        assert!(
            conf.lines().any(|l| l == line),
            "{line} missing from:\n{conf}"
        );
    }
}

#[test]
fn every_instance_gets_its_own_key_and_directory() {
    assert_ne!(PushpinConfig::new().sig_key, PushpinConfig::new().sig_key);
    let (a, b) = (fresh_dir().unwrap(), fresh_dir().unwrap());
    assert_ne!(a, b);
    for dir in [a, b] {
        fs::remove_dir(dir).unwrap();
    }
}
