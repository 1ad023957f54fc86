//! The real `t2 uploader` on loopback: uploads, dedupe by HEAD, reads with ranges, deletes
//! with job references, the TTL sweep, metrics, and every bad input answered with a clear
//! HTTP error and nothing stored.

#[path = "uploader_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::*;

fn stored(dir: &std::path::Path) -> Vec<String> {
    files_in(&dir.join("packages"))
}

#[test]
fn upload_then_head_finds_it_and_get_returns_it_with_a_strong_etag() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &[]);
    let data = noise(3 << 20, 1);
    let id = sha256(&data);
    assert_eq!(up.head_status(&id), 404, "not there before the upload");
    let r = up.put(&id, &data);
    assert_eq!(r.status, 201, "{}", r.text());
    // A re-submit asks first: HEAD says it is there, so nothing needs to be sent again.
    let head = up.req("HEAD", &format!("/packages/{id}"), &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), Some(format!("\"{id}\"").as_str()));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    let get = up.req("GET", &format!("/packages/{id}"), &[], b"");
    assert_eq!(get.status, 200);
    assert_eq!(sha256(&get.body), id);
    // Uploading it again is harmless and says so.
    let again = up.put(&id, &data);
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.text().contains("already stored"), "{}", again.text());
    assert_eq!(stored(dir.path()), vec![id.clone()]);
    assert!(files_in(&dir.path().join("tmp")).is_empty());
}

#[test]
fn ranges_resume_reads_and_conditional_requests_work() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &[]);
    let data = noise(100_000, 2);
    let id = sha256(&data);
    assert_eq!(up.put(&id, &data).status, 201);
    let path = format!("/packages/{id}");
    let etag = format!("\"{id}\"");
    let r = up.req("GET", &path, &[("Range", "bytes=1000-")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 1000-99999/100000"));
    assert_eq!(r.body, &data[1000..]);
    let r = up.req(
        "GET",
        &path,
        &[("Range", "bytes=10-19"), ("If-Range", &etag)],
        b"",
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[10..20]));
    // A resume against another version of the file gets the whole (current) file.
    let r = up.req(
        "GET",
        &path,
        &[("Range", "bytes=10-19"), ("If-Range", "\"other\"")],
        b"",
    );
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    let r = up.req("GET", &path, &[("Range", "bytes=100000-")], b"");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));
    let r = up.req("GET", &path, &[("If-None-Match", &etag)], b"");
    assert_eq!((r.status, r.body.len()), (304, 0));
}

#[test]
fn bad_inputs_get_clear_errors_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &["--max-package-size", "1M"]);
    let data = noise(200_000, 3);
    let id = sha256(&data);
    let other = sha256(b"something else");
    let cases: Vec<(&str, Resp, u16, &str)> = vec![
        (
            "body whose sha256 differs from the URL",
            up.put(&other, &data),
            400,
            "sha256",
        ),
        (
            "non-hex id",
            up.put(&"z".repeat(64), &data),
            400,
            "not a package ID",
        ),
        (
            "wrong-length id",
            up.put("abc123", &data),
            400,
            "64 hex digits",
        ),
        (
            "encoded path traversal",
            up.req("PUT", "/packages/..%2F..%2Fetc%2Fpasswd", &[auth()], &data),
            400,
            "not a package ID",
        ),
        (
            "raw path traversal",
            up.req(
                "PUT",
                &format!("/packages/../../tmp/{id}"),
                &[auth()],
                &data,
            ),
            404,
            "no such endpoint",
        ),
        (
            "missing token",
            up.req("PUT", &format!("/packages/{id}"), &[], &data),
            401,
            "token",
        ),
        (
            "wrong token",
            up.req(
                "PUT",
                &format!("/packages/{id}"),
                &[("Authorization", "Bearer nope")],
                &data,
            ),
            403,
            "wrong uploader token",
        ),
        (
            "over the size limit",
            up.put(&sha256(&noise(2 << 20, 4)), &noise(2 << 20, 4)),
            413,
            "over the limit",
        ),
        (
            "over the size limit, no Content-Length",
            up.req(
                "PUT",
                &format!("/packages/{}", sha256(&noise(2 << 20, 4))),
                &[auth(), ("Transfer-Encoding", "chunked")],
                &chunked(&noise(2 << 20, 4)),
            ),
            413,
            "over the limit",
        ),
        (
            "delete without token",
            up.req("DELETE", &format!("/packages/{id}"), &[], b""),
            401,
            "token",
        ),
    ];
    for (what, r, status, says) in cases {
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let text = r.text();
        assert!(
            text.starts_with("error: ") && text.lines().count() == 1,
            "{what}: {text:?}"
        );
        assert!(text.contains(says), "{what}: {text}");
    }
    let r = up.req("PUT", &format!("/packages/{id}"), &[], &data);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"t2-uploader\"")
    );
    assert!(stored(dir.path()).is_empty(), "{:?}", stored(dir.path()));
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    assert!(!std::path::Path::new(&format!("/tmp/{id}")).exists());
    // The same upload done right is accepted: the errors left nothing in the way.
    assert_eq!(up.put(&id, &data).status, 201);
}

fn chunked(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(64 << 10) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn a_full_disk_is_507_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny quota plays the full disk; so does demanding more free space than any disk has.
    for flags in [&["--max-store", "100K"][..], &["--min-free", "1000T"][..]] {
        let up = Uploader::start(dir.path(), flags);
        let data = noise(300_000, 5);
        let r = up.put(&sha256(&data), &data);
        assert_eq!(r.status, 507, "{flags:?}: {}", r.text());
        assert!(r.text().contains("nothing stored"), "{}", r.text());
        assert!(stored(dir.path()).is_empty());
        assert!(files_in(&dir.path().join("tmp")).is_empty());
    }
}

#[test]
fn concurrent_uploads_of_the_same_package_store_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &[]);
    let data = noise(4 << 20, 6);
    let id = sha256(&data);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| up.put(&id, &data).status))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    assert_eq!(stored(dir.path()), vec![id.clone()]);
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    let got = up.req("GET", &format!("/packages/{id}"), &[], b"");
    assert_eq!(sha256(&got.body), id);
    let metrics = up.req("GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("t2_uploader_packages_stored 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("t2_uploader_bytes_stored {}\n", data.len())),
        "{metrics}"
    );
}

#[test]
fn a_package_is_deleted_when_the_last_job_using_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &[]);
    let data = noise(50_000, 7);
    let id = sha256(&data);
    let r = up.req(
        "PUT",
        &format!("/packages/{id}?job=job-a"),
        &[auth()],
        &data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = up.req("PUT", &format!("/packages/{id}/refs/job-b"), &[auth()], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = up.req(
        "DELETE",
        &format!("/packages/{id}?job=job-a"),
        &[auth()],
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("kept"), "{}", r.text());
    assert_eq!(up.head_status(&id), 200);
    let r = up.req(
        "DELETE",
        &format!("/packages/{id}?job=job-b"),
        &[auth()],
        b"",
    );
    assert!(r.text().starts_with("deleted"), "{}", r.text());
    assert_eq!(up.head_status(&id), 404);
    assert_eq!(
        up.req("DELETE", &format!("/packages/{id}"), &[auth()], b"")
            .status,
        404
    );
    assert!(stored(dir.path()).is_empty());
    let r = up.req(
        "DELETE",
        &format!("/packages/{id}?job=../../x"),
        &[auth()],
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn the_ttl_sweep_removes_abandoned_packages() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &["--ttl", "1s", "--sweep-interval", "100ms"]);
    let data = noise(10_000, 8);
    let id = sha256(&data);
    assert_eq!(up.put(&id, &data).status, 201);
    let start = Instant::now();
    while up.head_status(&id) != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not swept within 20s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stored(dir.path()).is_empty());
    let metrics = up.req("GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("t2_uploader_packages_swept_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn health_and_metrics_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &[]);
    let r = up.req("GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let data = noise(1000, 9);
    let id = sha256(&data);
    up.put(&id, &data);
    up.req("GET", &format!("/packages/{id}"), &[], b"");
    up.req("GET", &format!("/packages/{}", "0".repeat(64)), &[], b"");
    let r = up.req("GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/plain"));
    let m = r.text();
    for line in [
        "t2_uploader_bytes_served_total 1000",
        "t2_uploader_requests_total{method=\"PUT\"} 1",
        "t2_uploader_errors_total 1",
        "t2_uploader_errors_by_status_total{status=\"404\"} 1",
        "t2_uploader_packages_stored 1",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing:\n{m}");
    }
}
