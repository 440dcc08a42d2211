//! README's S3 lifecycle configuration ("Retention on your own store"),
//! read from between its markers so README and test cannot drift, applied
//! to a moto bucket with boto3 and read back: as README gives it, and with
//! `ARTIFACT_S3_PREFIX` put in front by README's own `sed`.

use std::process::Command;

use serde_json::Value;

use crate::support::TestEnv;

const BEGIN: &str = "<!-- lifecycle-begin -->";
const END: &str = "<!-- lifecycle-end -->";

/// The JSON between README's lifecycle markers, without its code fence.
fn readme_lifecycle() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find(BEGIN)
        .expect("README has the lifecycle-begin marker")
        + BEGIN.len();
    let end = readme[start..]
        .find(END)
        .expect("README has the lifecycle-end marker")
        + start;
    let block = readme[start..end].trim();
    block
        .strip_prefix("```json")
        .and_then(|b| b.strip_suffix("```"))
        .expect("a ```json block between the markers")
        .to_string()
}

/// boto3 (which checks every field name and type against S3's API model
/// before sending) puts `config` on the bucket, then gets it back.
const PUT_AND_GET: &str = r#"
import json, sys, boto3
endpoint, bucket, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="AKIAMOTO", aws_secret_access_key="MOTOSECRETKEY")
s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=config)
got = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
print(json.dumps({"Rules": got["Rules"]}))
"#;

fn put_and_get(env: &TestEnv, config: &str) -> Value {
    let moto = env.moto_bucket();
    let out = Command::new("python3")
        .args(["-c", PUT_AND_GET, &moto.endpoint, &moto.bucket, config])
        .output()
        .expect("run python3 (boto3 comes with moto: make install)");
    assert!(
        out.status.success(),
        "boto3 refused README's lifecycle configuration:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("boto3's answer is JSON")
}

/// README's `sed 's|"artifacts/|"ci/artifacts/|'`, for ARTIFACT_S3_PREFIX=ci.
fn with_prefix(config: &str, prefix: &str) -> String {
    config.replace("\"artifacts/", &format!("\"{prefix}/artifacts/"))
}

#[test]
fn readme_lifecycle_configuration_is_accepted() {
    let readme = readme_lifecycle();
    let sent: Value = serde_json::from_str(&readme).expect("README's lifecycle JSON parses");
    let prefixes: Vec<&str> = sent["Rules"]
        .as_array()
        .expect("Rules")
        .iter()
        .filter_map(|r| r["Filter"]["Prefix"].as_str())
        .collect();
    assert_eq!(
        prefixes,
        [
            "artifacts/jobs/",
            "artifacts/workflows/",
            "artifacts/projects/",
            "artifacts/"
        ]
    );
    for config in [readme.clone(), with_prefix(&readme, "ci")] {
        let sent: Value = serde_json::from_str(&config).unwrap();
        let env = TestEnv::moto();
        assert_eq!(put_and_get(&env, &config), sent);
    }
    let prefixed: Value = serde_json::from_str(&with_prefix(&readme, "ci")).unwrap();
    assert_eq!(
        prefixed["Rules"][0]["Filter"]["Prefix"],
        "ci/artifacts/jobs/"
    );
    assert_eq!(
        prefixed["Rules"][3]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
        1
    );
}

/// The check is not empty: a misspelt field is refused.
#[test]
fn a_misspelt_lifecycle_field_is_refused() {
    let env = TestEnv::moto();
    let moto = env.moto_bucket();
    let bad = readme_lifecycle().replace("\"Expiration\"", "\"Expiry\"");
    let out = Command::new("python3")
        .args(["-c", PUT_AND_GET, &moto.endpoint, &moto.bucket, &bad])
        .output()
        .expect("run python3");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Expiry"), "{stderr}");
}
