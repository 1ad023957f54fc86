//! Service stand-ins, as DNS and kube-proxy give them in a cluster: `NAME.NS.svc` in a
//! container's environment becomes a loopback address of its own for the Service (stable for
//! the Service's life, like its cluster IP), where a forwarder listens on each of the
//! Service's ports and sends every connection to a pod behind it: one that matches the
//! Service's selector, is Running with an IP and is ready (or the Service publishes
//! not-ready addresses), at the Service's targetPort (a number, or a container port's name).
//! A Service without such a pod refuses connections, as kube-proxy's REJECT rule does.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::Client;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// The stand-in address of Service `name` in `ns`: in 127.32.0.0/12, from a hash of both.
pub fn standin_ip(ns: &str, name: &str) -> Ipv4Addr {
    let mut h: u32 = 2166136261;
    for b in ns.bytes().chain([b'/']).chain(name.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    Ipv4Addr::new(
        127,
        32 + (h % 16) as u8,
        ((h >> 4) % 256) as u8,
        1 + ((h >> 12) % 254) as u8,
    )
}

/// The forwarders of one namespace.
pub struct Proxies {
    client: Client,
    ns: String,
    /// Service → its forwarders, one per port.
    running: Mutex<BTreeMap<String, Vec<JoinHandle<()>>>>,
}

impl Drop for Proxies {
    fn drop(&mut self) {
        if let Ok(m) = self.running.try_lock() {
            for h in m.values().flatten() {
                h.abort();
            }
        }
    }
}

impl Proxies {
    /// Forwarders for Services in `ns`.
    pub fn new(client: Client, ns: &str) -> Arc<Self> {
        Arc::new(Self {
            client,
            ns: ns.into(),
            running: Mutex::new(BTreeMap::new()),
        })
    }

    /// `value` with every `NAME.NS.svc[.cluster.local]` of this namespace replaced by the
    /// Service's stand-in (its forwarders started).
    pub async fn rewrite(&self, value: &str) -> Result<String, String> {
        let mut out = value.to_string();
        for suffix in [
            format!(".{}.svc.cluster.local", self.ns),
            format!(".{}.svc", self.ns),
        ] {
            while let Some(end) = out.find(&suffix) {
                let start = out[..end]
                    .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '-' || ch == '.'))
                    .map_or(0, |i| i + 1);
                let host = &out[start..end];
                // `pod.service` names a pod of a headless Service: not used by t2.
                let name = host.rsplit('.').next().unwrap_or(host).to_string();
                let ip = self.ensure(&name).await?;
                out.replace_range(start..end + suffix.len(), &ip.to_string());
            }
        }
        Ok(out)
    }

    /// Starts Service `name`'s forwarders (once); returns its stand-in address.
    pub async fn ensure(&self, name: &str) -> Result<Ipv4Addr, String> {
        let ip = standin_ip(&self.ns, name);
        let mut running = self.running.lock().await;
        if running.contains_key(name) {
            return Ok(ip);
        }
        let svcs: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        let svc = svcs
            .get(name)
            .await
            .map_err(|e| format!("Service {}/{name} (named in the pod's env): {e}", self.ns))?;
        let mut handles = Vec::new();
        for p in svc
            .spec
            .clone()
            .unwrap_or_default()
            .ports
            .unwrap_or_default()
        {
            let port = u16::try_from(p.port).map_err(|_| format!("port {}", p.port))?;
            let listener = TcpListener::bind((ip, port))
                .await
                .map_err(|e| format!("stand-in {ip}:{port} for Service {name}: {e}"))?;
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            let (client, ns, svc_name) = (self.client.clone(), self.ns.clone(), name.to_string());
            handles.push(tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        continue;
                    };
                    let (client, ns, svc_name, target) =
                        (client.clone(), ns.clone(), svc_name.clone(), target.clone());
                    tokio::spawn(async move {
                        if let Some(addr) = backend(&client, &ns, &svc_name, &target).await {
                            if let Ok(mut up) = TcpStream::connect(&addr).await {
                                let mut conn = conn;
                                let _ = tokio::io::copy_bidirectional(&mut conn, &mut up).await;
                            }
                        }
                    });
                }
            }));
        }
        running.insert(name.to_string(), handles);
        Ok(ip)
    }
}

/// A pod behind Service `name` (as kube-proxy would pick from its endpoints), `ip:port`.
async fn backend(client: &Client, ns: &str, name: &str, target: &IntOrString) -> Option<String> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .ok()?;
    let spec = svc.spec?;
    let selector = spec.selector?;
    let not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let labels = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&labels))
        .await
        .ok()?;
    let mut candidates: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let st = p.status.as_ref();
            let running = st.and_then(|s| s.phase.as_deref()) == Some("Running");
            let ready = st
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            running && (ready || not_ready) && st.and_then(|s| s.pod_ip.as_ref()).is_some()
        })
        .collect();
    candidates.sort_by_key(|p| p.metadata.name.clone());
    let pod = candidates.first()?;
    let ip = pod.status.as_ref()?.pod_ip.clone()?;
    let port = match target {
        IntOrString::Int(n) => *n,
        IntOrString::String(port_name) => {
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.clone().unwrap_or_default())
                .find(|p| p.name.as_deref() == Some(port_name))?
                .container_port
        }
    };
    Some(format!("{ip}:{port}"))
}
