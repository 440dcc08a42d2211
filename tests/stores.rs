//! What real stores do that the local servers don't: folder markers,
//! buckets that demand encryption, stores without conditional writes,
//! checksum headers or DeleteObjects (the test kit's fault proxy plays each store's
//! part in front of s3s-fs and moto), and the errors users meet there.
//! `s3_case!` (from `s3`) runs a case on both servers.

use crate::support::{data, TestEnv};
use testkit::fault::{FaultProxy, Quirks, Seen};
use testkit::s3::Moto;

const JOB: &str = "artifacts/jobs/job-1";
const MIB: usize = 1024 * 1024;

/// A tree of small files, one multipart file (parts of 5 MiB) and a page.
fn write_tree(env: &mut TestEnv) -> Vec<(String, Vec<u8>)> {
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    let files = vec![
        ("tree/index.html".to_string(), b"<html></html>".to_vec()),
        ("tree/a/notes.txt".to_string(), b"notes".to_vec()),
        ("tree/a/b/blob".to_string(), data(1000, 1)),
        ("tree/big.bin".to_string(), data(11 * MIB + 5, 2)),
    ];
    for (path, bytes) in &files {
        env.write(path, bytes);
    }
    files
}

#[track_caller]
fn assert_stored(env: &TestEnv, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let stored = env.object(&format!("{JOB}/{path}"));
        assert!(stored.as_ref() == Some(bytes), "{path} not stored as sent");
    }
}

/// Only moto lists keys that end in `/` (s3s-fs keeps them as directories).
#[test]
fn folder_markers_are_not_files() {
    let env = TestEnv::moto();
    let bucket = env.moto_bucket();
    bucket.put_object(&format!("{JOB}/tree/"), b"");
    bucket.put_object(&format!("{JOB}/tree/a.txt"), b"a");
    bucket.put_object(&format!("{JOB}/tree/sub/"), b"");
    bucket.put_object(&format!("{JOB}/tree/sub/b.txt"), b"b");
    bucket.put_object(&format!("{JOB}/tree/empty/"), b"");
    env.run(&["pull", "job", "tree", "-d", "back"])
        .success()
        .stderr_has("Pulled 2 files.");
    assert_eq!(env.read("back/a.txt"), b"a");
    assert_eq!(env.read("back/sub/b.txt"), b"b");
    assert!(!env.path("back/empty").exists());
    let listed = env.run(&["list", "job", "tree"]);
    let names: Vec<&str> = listed
        .success()
        .stdout
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["tree/a.txt", "tree/sub/b.txt"]);
    // A path that holds only markers holds no artifact.
    bucket.put_object(&format!("{JOB}/hollow/"), b"");
    bucket.put_object(&format!("{JOB}/hollow/x/"), b"");
    env.run(&["pull", "job", "hollow"]).failure(4);
    env.run(&["list", "job", "hollow"]).failure(4);
    assert!(!env.path("hollow").exists());
    // Yank deletes the markers with the rest.
    env.run(&["yank", "job", "tree"]).success();
    env.run(&["yank", "job", "hollow"]).success();
    assert_eq!(env.keys(), Vec::<String>::new());
}

// RGW refuses SSE over http (400 InvalidRequest, with no message; the
// error then says so, see below) and this test's fault proxy speaks http
// to it: on RGW the case needs the gateway behind TLS in the test kit.
s3_case!(
    a_bucket_that_requires_encryption,
    except rgw: "RGW refuses SSE over http (400 InvalidRequest); needs RGW behind TLS",
    |env| {
    let files = write_tree(&mut env);
    let proxy = env.fault_proxy(Quirks {
        require_encryption: true,
        ..Quirks::default()
    });
    env.run(&["push", "job", "tree"])
        .failure(6)
        .stderr_has("a bucket policy may require encryption: set ARTIFACT_S3_SSE");
    env.set_env("ARTIFACT_S3_SSE", "AES256");
    env.run(&["push", "job", "tree"]).success();
    assert_stored(&env, &files);
    let writes: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.fault.is_none() && (r.is_put_object() || r.is_create_multipart()))
        .collect();
    // Three PUTs, the placeholder holding big.bin's key, its upload.
    assert_eq!(writes.len(), 5, "{writes:?}");
    for write in &writes {
        assert_eq!(write.header("x-amz-server-side-encryption"), Some("AES256"));
        let signed = write.header("authorization").unwrap_or_default();
        let signed = signed.split("SignedHeaders=").nth(1).unwrap_or_default();
        let signed = signed.split(',').next().unwrap_or_default();
        assert!(
            signed
                .split(';')
                .any(|h| h == "x-amz-server-side-encryption"),
            "{signed}"
        );
        assert!(signed.split(';').any(|h| h == "content-type"), "{signed}");
        let content_type = write.header("content-type").unwrap_or_default();
        if write.target.contains("index.html") {
            assert_eq!(content_type, "text/html; charset=utf-8");
        } else if write.target.contains("notes.txt") {
            assert_eq!(content_type, "text/plain; charset=utf-8");
        } else {
            assert_eq!(content_type, "application/octet-stream");
        }
    }
    env.run(&["pull", "job", "tree", "-d", "back"]).success();
    assert_eq!(env.read("back/big.bin"), files[3].1);
    }
);

/// moto keeps what PutObject and CreateMultipartUpload were given.
#[test]
fn encryption_storage_class_and_content_type_are_stored() {
    let mut env = TestEnv::moto();
    let files = write_tree(&mut env);
    env.set_env("ARTIFACT_S3_SSE", "aws:kms");
    env.set_env("ARTIFACT_S3_SSE_KMS_KEY_ID", "alias/artifacts");
    env.set_env("ARTIFACT_S3_STORAGE_CLASS", "STANDARD_IA");
    env.run(&["push", "job", "tree"]).success();
    assert_stored(&env, &files);
    for (path, content_type) in [
        ("tree/index.html", "text/html; charset=utf-8"),
        ("tree/big.bin", "application/octet-stream"),
    ] {
        let head = moto_head(env.moto_bucket(), &format!("{JOB}/{path}"));
        assert_eq!(head("x-amz-server-side-encryption"), Some("aws:kms".into()));
        assert_eq!(
            head("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/artifacts".into())
        );
        assert_eq!(head("x-amz-storage-class"), Some("STANDARD_IA".into()));
        assert_eq!(head("content-type"), Some(content_type.into()));
    }
    // With SSE-KMS the ETag is no MD5: nothing relies on it.
    env.run(&["pull", "job", "tree", "-d", "back"]).success();
    for (path, bytes) in &files {
        assert_eq!(&env.read(&path.replacen("tree", "back", 1)), bytes);
    }
}

#[test]
fn invalid_encryption_or_storage_class_is_a_configuration_error() {
    let mut env = TestEnv::s3();
    env.write("f.txt", b"x");
    for (name, value) in [
        ("ARTIFACT_S3_SSE", "KMS"),
        ("ARTIFACT_S3_STORAGE_CLASS", "COLDEST"),
        ("ARTIFACT_S3_SSE_KMS_KEY_ID", "alias/k"),
    ] {
        env.set_env(name, value);
        env.run(&["push", "job", "f.txt"])
            .failure(3)
            .stderr_has(name);
        env.set_env(name, "");
    }
    assert!(env.keys().is_empty());
}

/// Pushes the tree through `quirks` and checks what was sent: each refused
/// header warned about once and absent from every write after its refusal.
fn push_through(env: &mut TestEnv, quirks: Quirks, warnings: &[&str]) -> FaultProxy {
    let files = write_tree(env);
    let proxy = env.fault_proxy(quirks);
    let run = env.run(&["push", "job", "tree"]);
    run.success();
    for warning in warnings {
        assert_eq!(run.stderr.matches(warning).count(), 1, "{run}");
    }
    assert_stored(env, &files);
    env.run(&["pull", "job", "tree", "-d", "back"]).success();
    assert_eq!(env.read("back/big.bin"), files[3].1);
    proxy
}

/// Writes in flight when the store first refused a header are refused
/// too, but no write is refused twice for one header.
#[track_caller]
fn assert_refused_at_most_once(proxy: &FaultProxy) {
    let refused: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|r| r.fault.is_some())
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert!(!refused.is_empty());
    let mut unique = refused.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), refused.len(), "{refused:?}");
}

const NO_CONDITION: &str = "two pushes racing to one name can then both succeed";
const NO_CHECKSUMS: &str = "the checksum headers (x-amz-checksum-sha256)";

s3_case!(a_store_without_conditional_writes, |env| {
    let quirks = Quirks {
        no_conditional_writes: true,
        ..Quirks::default()
    };
    let proxy = push_through(&mut env, quirks, &[NO_CONDITION]);
    // Each write refused at most once; the rest of the run wrote without
    // the condition, and kept the checksums.
    assert_refused_at_most_once(&proxy);
    let sent = |r: &Seen| r.fault.is_none() && r.method == "PUT";
    assert!(proxy.count(|r| sent(r) && r.header("x-amz-checksum-sha256").is_some()) >= 5);
    assert_eq!(
        proxy.count(|r| sent(r) && r.header("if-none-match").is_some()),
        0
    );
    // The listing still finds what is there.
    env.run(&["push", "job", "tree"]).failure(5);
});

s3_case!(a_store_without_checksum_headers, |env| {
    // As a 400 naming the header, and as a 501 NotImplemented.
    for status in [400, 501] {
        let quirks = Quirks {
            no_checksums: Some(status),
            ..Quirks::default()
        };
        let proxy = push_through(&mut env, quirks, &[NO_CHECKSUMS]);
        assert_refused_at_most_once(&proxy);
        // The conditional writes went on.
        assert!(proxy.count(|r| r.fault.is_none() && r.header("if-none-match").is_some()) >= 3);
        env.run(&["yank", "job", "tree"]).success();
        std::fs::remove_dir_all(env.path("back")).unwrap();
    }
});

s3_case!(a_store_without_either, |env| {
    let quirks = Quirks {
        no_conditional_writes: true,
        no_checksums: Some(501),
        ..Quirks::default()
    };
    let proxy = push_through(&mut env, quirks, &[NO_CONDITION, NO_CHECKSUMS]);
    let plain = |r: &Seen| {
        r.fault.is_none()
            && r.header("if-none-match").is_none()
            && !r
                .headers
                .iter()
                .any(|(n, _)| n.starts_with("x-amz-checksum-"))
    };
    assert!(proxy.count(|r| plain(r) && r.method == "PUT") >= 5);
    env.run(&["push", "job", "tree"]).failure(5);
});

s3_case!(yank_deletes_in_batches, |env| {
    for i in 0..25 {
        env.write(&format!("many/f{i}.txt"), b"x");
    }
    env.write("many/odd & <name>.txt", b"y");
    env.run(&["push", "job", "many"]).success();
    let proxy = env.fault_proxy(Quirks::default());
    env.run(&["yank", "job", "many"]).success();
    assert_eq!(proxy.count(|r| r.is_delete_objects()), 1);
    assert_eq!(proxy.count(|r| r.method == "DELETE"), 0);
    let batch = &proxy
        .seen()
        .into_iter()
        .find(|r| r.is_delete_objects())
        .unwrap();
    assert!(batch.header("content-md5").is_some());
    assert!(env.keys().is_empty());
});

s3_case!(yank_without_delete_objects, |env| {
    for i in 0..5 {
        env.write(&format!("many/f{i}.txt"), b"x");
    }
    env.run(&["push", "job", "many"]).success();
    let proxy = env.fault_proxy(Quirks {
        no_delete_objects: true,
        ..Quirks::default()
    });
    env.run(&["yank", "job", "many", "-v"])
        .success()
        .stderr_has("the store has no DeleteObjects");
    assert_eq!(proxy.count(|r| r.is_delete_objects()), 1);
    assert_eq!(proxy.count(|r| r.method == "DELETE"), 5);
    assert!(env.keys().is_empty());
});

/// moto applies a bucket policy to each key of a DeleteObjects, as S3 does.
#[test]
fn keys_a_batch_delete_refuses_are_failures() {
    let env = TestEnv::moto();
    for i in 0..4 {
        env.write(&format!("many/f{i}.txt"), b"x");
    }
    env.run(&["push", "job", "many"]).success();
    let bucket = env.moto_bucket();
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{}/{JOB}/many/f2.txt"}}]}}"#,
        bucket.bucket
    );
    let url = format!("{}/{}?policy", bucket.endpoint, bucket.bucket);
    let response = ureq::put(&url)
        .header("authorization", MOTO_AUTH)
        .send(policy.as_bytes())
        .expect("put the bucket policy");
    assert!(response.status().is_success());
    env.run(&["yank", "job", "many"])
        .failure(6)
        .stderr_has("S3 refused DeleteObjects of 'artifacts/jobs/job-1/many/f2.txt'")
        .stderr_has("3 of 4 files transferred");
    assert_eq!(env.keys(), vec![format!("{JOB}/many/f2.txt")]);
}

#[test]
fn verbose_push_from_stdin_says_so() {
    let env = TestEnv::s3();
    for source in ["-", "/dev/stdin"] {
        env.run_with_stdin(
            &["push", "job", source, "-d", "piped.txt", "-f", "-v"],
            b"in",
        )
        .success()
        .stderr_has("reading standard input, to push to 'artifacts/jobs/job-1/piped.txt'");
    }
}

/// moto answers only requests with an Authorization header, which it does
/// not check.
const MOTO_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAMOTO/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";

/// The headers moto answers a HEAD of `key` (plain ASCII) with.
fn moto_head(bucket: &Moto, key: &str) -> impl Fn(&str) -> Option<String> {
    let url = format!("{}/{}/{key}", bucket.endpoint, bucket.bucket);
    let response = ureq::head(&url)
        .header("authorization", MOTO_AUTH)
        .call()
        .expect("HEAD the object");
    let headers = response.headers().clone();
    move |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// RGW refuses SSE over http, and a storage class its placement lacks,
/// naming neither (400 InvalidRequest, 400 InvalidArgument, no message):
/// the error names the setting and what to do, for a PUT and a multipart
/// upload alike, and nothing is stored.
#[test]
fn rgw_refusing_encryption_or_a_storage_class_names_the_setting() {
    let mut env = TestEnv::rgw();
    env.set_env("ARTIFACT_S3_PART_SIZE", "5MiB");
    env.write("f.txt", b"x");
    env.write("big.bin", &data(11 * MIB, 3));
    let sse = [
        "the store refused the server-side encryption ARTIFACT_S3_SSE=AES256 asks for (400 InvalidRequest)",
        "Ceph RGW takes it only over https: set an https:// ARTIFACT_S3_ENDPOINT, or unset ARTIFACT_S3_SSE",
        "on Ceph RGW, AES256 is encryption at rest only where the gateway is configured for it",
    ];
    let class = [
        "the store does not offer the storage class ARTIFACT_S3_STORAGE_CLASS=STANDARD_IA (400 InvalidArgument)",
        "unset ARTIFACT_S3_STORAGE_CLASS for the store's default, or set a class it offers",
    ];
    for (name, value, says) in [
        ("ARTIFACT_S3_SSE", "AES256", &sse[..]),
        ("ARTIFACT_S3_STORAGE_CLASS", "STANDARD_IA", &class[..]),
    ] {
        env.set_env(name, value);
        for file in ["f.txt", "big.bin"] {
            let run = env.run(&["push", "job", file]);
            run.failure(3).stderr_has("error: ");
            for text in says {
                run.stderr_has(text);
            }
        }
        env.set_env(name, "");
    }
    assert_eq!(env.keys(), Vec::<String>::new());
}
