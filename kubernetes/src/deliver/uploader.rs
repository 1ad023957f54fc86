//! Uploader delivery: the uploader is the Service in the namespace matching
//! `kubernetes.uploader_selector` (deploy/uploader.yaml). The launcher uploads the package
//! once through the API server's service proxy — HEAD first, so a package already there is
//! not sent again — and pods download it from the Service's cluster address.
//!
//! The uploader's HTTP interface (launcher/src/uploader): `HEAD`/`GET /packages/{sha256}`
//! without a token; `PUT /packages/{sha256}?job=ID`, `PUT /packages/{sha256}/refs/{job}` and
//! `DELETE /packages/{sha256}?job=ID` with the token. The API server removes the
//! `Authorization` header from proxied requests (it authenticates the caller with it), so
//! through the proxy the token travels in [`TOKEN_HEADER`]; the uploader must accept it
//! there as well as in `Authorization: Bearer`.

use std::path::Path;

use http::{Method, Request, StatusCode};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::ListParams;

use crate::client::Kube;
use crate::error::{is_status, KubeError, Op};

/// The header carrying the uploader token through the API server's proxy.
pub const TOKEN_HEADER: &str = "x-t2-uploader-token";
/// The Service annotation naming the Secret that holds the uploader token (key `token`).
pub const TOKEN_SECRET_ANNOTATION: &str = "t2.io/token-secret";

/// An uploader found in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploader {
    /// Its Service.
    pub service: String,
    /// The Service's port.
    pub port: u16,
    /// The Secret holding its token, if the Service names one.
    pub token_secret: Option<String>,
}

impl Uploader {
    /// The package's URL as pods see it.
    pub fn package_url(&self, namespace: &str, sha256: &str) -> String {
        format!(
            "http://{}.{namespace}.svc:{}/packages/{sha256}",
            self.service, self.port
        )
    }

    /// The package's path through the API server's service proxy.
    pub fn proxy_path(&self, namespace: &str, rest: &str) -> String {
        format!(
            "/api/v1/namespaces/{namespace}/services/{}:{}/proxy{rest}",
            self.service, self.port
        )
    }
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The uploader had the package; only the job's reference was added.
    AlreadyThere,
    /// The package was sent.
    Sent,
}

/// The uploader Service matching `selector`, if there is one.
pub async fn find_uploader(kube: &Kube, selector: &str) -> Result<Option<Uploader>, KubeError> {
    let list = kube
        .api::<Service>()
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| Op::collection("list", "services", &kube.namespace).error(&kube.server, e))?;
    Ok(list.items.into_iter().find_map(|svc| {
        let name = svc.metadata.name.clone()?;
        let port = svc.spec.as_ref()?.ports.as_ref()?.first().map(|p| p.port)?;
        let token_secret = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TOKEN_SECRET_ANNOTATION).cloned());
        Some(Uploader {
            service: name,
            port: u16::try_from(port).ok()?,
            token_secret,
        })
    }))
}

/// The uploader token: `given`, else the `token` key of the Secret the Service names.
pub async fn uploader_token(
    kube: &Kube,
    up: &Uploader,
    given: Option<&str>,
) -> Result<String, KubeError> {
    if let Some(t) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(t.to_string());
    }
    let Some(secret) = &up.token_secret else {
        return Err(KubeError::Config(format!(
            "the uploader Service '{}' names no token Secret (annotation {TOKEN_SECRET_ANNOTATION}); pass --uploader-token or set T2_UPLOADER_TOKEN",
            up.service
        )));
    };
    let s = kube.api::<Secret>().get(secret).await.map_err(|e| {
        if is_status(&e, 404) {
            KubeError::Config(format!(
                "the uploader's token Secret '{secret}' does not exist in namespace '{}'; create it (README, Kubernetes setup) or pass --uploader-token",
                kube.namespace
            ))
        } else {
            Op::named("get", "secrets", &kube.namespace, secret).error(&kube.server, e)
        }
    })?;
    s.data
        .as_ref()
        .and_then(|d| d.get("token"))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            KubeError::Config(format!(
                "the uploader's token Secret '{secret}' has no 'token' key"
            ))
        })
}

/// Sends one request through the proxy; returns the status and the body as text.
async fn call(
    kube: &Kube,
    up: &Uploader,
    method: Method,
    rest: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> Result<(StatusCode, String), KubeError> {
    let path = up.proxy_path(&kube.namespace, rest);
    let verb = match method {
        Method::PUT => "update",
        Method::POST => "create",
        Method::DELETE => "delete",
        _ => "get",
    };
    let mut req = Request::builder()
        .method(method)
        .uri(&path)
        .header(http::header::CONTENT_LENGTH, body.len());
    if let Some(t) = token {
        req = req.header(TOKEN_HEADER, t);
    }
    let req = req
        .body(kube::client::Body::from(body))
        .map_err(|e| KubeError::Config(format!("cannot build the request {path}: {e}")))?;
    let op = Op::named(verb, "services/proxy", &kube.namespace, &up.service);
    let resp = kube
        .client
        .send(req)
        .await
        .map_err(|e| op.error(&kube.server, e))?;
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).to_string();
    // The API server's own refusals are Status objects; the uploader answers in text.
    if let Ok(st) = serde_json::from_str::<kube::core::Status>(&text) {
        if status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED {
            return Err(op.error(&kube.server, kube::Error::Api(Box::new(st))));
        }
    }
    Ok((status, crate::error::one_line(&text)))
}

/// Uploads `package` (hash `sha256`) for job `job`, unless the uploader has it.
pub async fn upload(
    kube: &Kube,
    up: &Uploader,
    token: &str,
    package: &Path,
    sha256: &str,
    job: &str,
) -> Result<Uploaded, KubeError> {
    let target = format!("the uploader '{}'", up.service);
    let fail = |why: String| KubeError::Distribution {
        target: target.clone(),
        why,
    };
    let (st, text) = call(
        kube,
        up,
        Method::HEAD,
        &format!("/packages/{sha256}"),
        None,
        Vec::new(),
    )
    .await?;
    if st == StatusCode::OK {
        let (st, text) = call(
            kube,
            up,
            Method::PUT,
            &format!("/packages/{sha256}/refs/{job}"),
            Some(token),
            Vec::new(),
        )
        .await?;
        if !st.is_success() {
            return Err(fail(format!(
                "adding job {job} to package {sha256} failed: HTTP {st}: {text}"
            )));
        }
        return Ok(Uploaded::AlreadyThere);
    }
    if st != StatusCode::NOT_FOUND {
        return Err(fail(format!("HEAD /packages/{sha256}: HTTP {st}: {text}")));
    }
    let data = tokio::fs::read(package)
        .await
        .map_err(KubeError::io(format!("cannot read {}", package.display())))?;
    let (st, text) = call(
        kube,
        up,
        Method::PUT,
        &format!("/packages/{sha256}?job={job}"),
        Some(token),
        data,
    )
    .await?;
    if st.is_success() {
        Ok(Uploaded::Sent)
    } else {
        let hint = match st.as_u16() {
            401 | 403 => "; check the uploader token (--uploader-token, or the Secret the uploader Service names)",
            413 => "; the uploader's --max-package-size is smaller than the package",
            507 => "; the uploader's disk is full",
            _ => "",
        };
        Err(fail(format!(
            "PUT /packages/{sha256}: HTTP {st}: {text}{hint}"
        )))
    }
}
