//! The uploader over HTTPS (`t2 uploader --tls-cert FILE --tls-key FILE`), a real process on
//! loopback: t2's upload client and the agent's download, trusting the certificate's CA,
//! put and fetch a package; a client trusting another CA is refused naming the certificate
//! problem, and plain HTTP gets no package.

#[path = "uploader_support/mod.rs"]
mod support;

use std::time::Duration;

use support::*;
use t2_core::tls::{local_names, mint};
use t2_uploader::client::UploaderClient;
use t2_worker::agent::fetch::{fetch, FetchSpec};
use t2_worker::agent::http::HttpTls;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn the_uploader_serves_a_package_over_tls_to_a_client_trusting_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = mint("uploader", &local_names()).unwrap();
    let (cert, key) = (dir.path().join("up.crt"), dir.path().join("up.key"));
    std::fs::write(&cert, &certs.cert_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    let up = Uploader::start(
        &dir.path().join("store"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(up.url.starts_with("https://127.0.0.1:"), "{}", up.url);
    let tls = HttpTls::from_ca_pem(&certs.ca_pem, "up-ca.crt").unwrap();

    let data = noise(3 << 20, 5);
    let id = sha256(&data);
    let package = dir.path().join("package.tar.gz");
    std::fs::write(&package, &data).unwrap();
    let client = UploaderClient::new(&up.url, Some(TOKEN.into()))
        .unwrap()
        .with_tls(Some(tls.clone()));
    block_on(client.upload(&package, &id, data.len() as u64, None, false))
        .expect("upload over TLS");

    let spec = |dest: &str, tls: Option<HttpTls>| FetchSpec {
        url: client.package_url(&id),
        dest: dir.path().join(dest),
        sha256: id.clone(),
        deadline: Duration::from_secs(20),
        max_bytes: 1 << 30,
        tls,
    };
    let got = spec("got.tar.gz", Some(tls));
    block_on(fetch(&got)).expect("download over TLS");
    assert_eq!(std::fs::read(&got.dest).unwrap(), data);

    // Trusting another CA: refused, naming why (one request, not the download's retries,
    // whose last attempt a loaded machine may cut at the deadline instead).
    let other = mint("elsewhere", &local_names()).unwrap();
    let wrong = HttpTls::from_ca_pem(&other.ca_pem, "other-ca.crt").unwrap();
    let url = client.package_url(&id);
    let req = hyper::Request::get(url.as_str())
        .body(t2_worker::agent::http::empty())
        .unwrap();
    let e = block_on(t2_worker::agent::http::send_with(
        Some(&wrong),
        &url,
        req,
        Duration::from_secs(30),
    ))
    .expect_err("a client trusting another CA must not get the package");
    assert!(
        e.cause.contains("not signed by the CA of other-ca.crt"),
        "{}",
        e.cause
    );
    // No CA at all for an https URL: one clear line before any connection.
    let none = block_on(fetch(&FetchSpec {
        deadline: Duration::from_secs(2),
        ..spec("none.tar.gz", None)
    }))
    .expect_err("https without a CA");
    assert!(
        none.cause.contains("needs the CA certificate"),
        "{}",
        none.cause
    );
    // Plain HTTP to the HTTPS port: the connection is dropped, no package.
    use std::io::{Read, Write};
    let addr = up.url.trim_start_matches("https://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = write!(
        s,
        "GET /packages/{id} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "plain HTTP got the package"
    );
}
