//! The stock `kafka-features.sh` (Kafka 4.0) against a broker on 127.0.0.1:0: describe shows
//! what Fjord advertises, downgrade and upgrade change it, a refusal prints Kafka's reason. The
//! tools are found at $KAFKA_TOOLS_HOME or ../shared/kafka-4.0.0 beside the repository (where CI
//! has them); without them, or without java, the test says so and checks nothing.

mod common;

use std::path::PathBuf;

use common::TestBroker;

fn kafka_home() -> Option<PathBuf> {
    let home = std::env::var_os("KAFKA_TOOLS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/kafka-4.0.0"));
    let java = std::process::Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success());
    (home.join("bin/kafka-features.sh").exists() && java).then_some(home)
}

/// Runs kafka-features.sh with `args` against `bootstrap`: (exit success, stdout + stderr).
async fn features_tool(home: &std::path::Path, log_dir: &std::path::Path, bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(home.join("bin/kafka-features.sh"))
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .args(args)
        .env("LOG_DIR", log_dir)
        .env("KAFKA_HEAP_OPTS", "-Xmx256m")
        .output()
        .await
        .expect("kafka-features.sh runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn feature_lines(text: &str) -> Vec<String> {
    text.lines().filter(|l| l.starts_with("Feature: ")).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_features_describe_upgrade_and_downgrade_work_against_fjord() {
    let Some(home) = kafka_home() else {
        eprintln!("kafka-features.sh or java not found (set KAFKA_TOOLS_HOME): nothing checked");
        return;
    };
    let b = TestBroker::start(&[]).await;
    let logs = tempfile::tempdir().unwrap();
    let bootstrap = b.addr.to_string();
    let run = |args: &'static [&'static str]| features_tool(&home, logs.path(), &bootstrap, args);

    let (ok, text) = run(&["describe"]).await;
    assert!(ok, "{text}");
    assert_eq!(
        feature_lines(&text),
        vec![
            "Feature: group.version SupportedMinVersion: 0 SupportedMaxVersion: 1 FinalizedVersionLevel: 1 Epoch: 0",
            "Feature: kraft.version SupportedMinVersion: 0 SupportedMaxVersion: 1 FinalizedVersionLevel: 0 Epoch: 0",
            "Feature: metadata.version SupportedMinVersion: 4.0-IV3 SupportedMaxVersion: 4.0-IV3 FinalizedVersionLevel: 4.0-IV3 Epoch: 0",
            "Feature: transaction.version SupportedMinVersion: 0 SupportedMaxVersion: 2 FinalizedVersionLevel: 2 Epoch: 0",
        ],
        "{text}"
    );

    let (ok, text) = run(&["downgrade", "--feature", "group.version=0"]).await;
    assert!(ok && text.contains("group.version was downgraded to 0."), "{text}");
    let (_, text) = run(&["describe"]).await;
    assert!(
        feature_lines(&text).contains(&"Feature: group.version SupportedMinVersion: 0 SupportedMaxVersion: 1 FinalizedVersionLevel: 0 Epoch: 1".to_string()),
        "{text}"
    );

    let (ok, text) = run(&["upgrade", "--feature", "transaction.version=3"]).await;
    assert!(!ok && text.contains("Invalid update version 3 for feature transaction.version. Local controller 1 only supports versions 0-2"), "{text}");
    let (ok, text) = run(&["upgrade", "--feature", "group.version=1"]).await;
    assert!(ok && text.contains("group.version was upgraded to 1."), "{text}");
    let (_, text) = run(&["describe"]).await;
    assert!(feature_lines(&text).iter().all(|l| l.ends_with("Epoch: 2")), "{text}");
    b.stop().await;
}
