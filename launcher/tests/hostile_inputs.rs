//! The hostile-input suite: a table of cases, each an input that an attacker or a careless user
//! sends to one of t2's doors — `job.yaml` and `-D`, packages (tar tricks and size bombs), the
//! uploader's HTTP API, a worker agent's Unix socket, the job master's gRPC service and the
//! dashboard's API. Every case is sent while a bystander job runs, and its own job master and
//! agents are the ones attacked. Each case must get a clear error (one line naming what is
//! wrong); afterwards nothing was written outside the job folders, every server still answers,
//! and the bystander job passes a barrier and completes.

mod common;
mod uploader_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dash::{request, Dash};
use common::*;
use futures::StreamExt;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::package_source_client::PackageSourceClient;
use t2_proto::{
    worker_to_master::Body as W, FetchPackageParams, Heartbeat, KillParams, RegisterParams,
    ScaleParams, WorkerInfo, WorkerToMaster, PROTOCOL_VERSION,
};
use uploader_support::{auth, noise, sha256, Uploader};

const T: Duration = Duration::from_secs(60);

/// What one hostile input is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    JobYaml,
    Package,
    Uploader,
    AgentSocket,
    Grpc,
    Dashboard,
}

/// How a case is sent: its answer, or why the answer is not one.
type Sender = dyn Fn(&Doors) -> Result<String, String>;

/// One case: where it goes, what it is, what the answer must say, and how it is sent. `send`
/// returns the answer as the sender sees it (an error line, an HTTP body, a gRPC status).
struct Case {
    door: Door,
    what: &'static str,
    says: &'static str,
    send: Box<Sender>,
}

/// Everything under attack.
struct Doors {
    /// A folder for the cases' own files (packages, job folders to submit).
    scratch: PathBuf,
    /// The `$T2_HOME` of every submit, the bystander's included.
    home: PathBuf,
    uploader: Uploader,
    dash: Dash,
    /// `http://` address of the bystander's job master.
    jm: String,
    job_id: String,
    token: String,
    /// Worker 0's agent socket.
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

fn case(
    door: Door,
    what: &'static str,
    says: &'static str,
    send: impl Fn(&Doors) -> Result<String, String> + 'static,
) -> Case {
    Case {
        door,
        what,
        says,
        send: Box::new(send),
    }
}

/// Submits `pkg` with `extra` under the suite's home; a rejection's one stderr line, or why it
/// is not one.
fn submit_refused(d: &Doors, pkg: &Path, extra: &[&str]) -> Result<String, String> {
    let out = run(submit(&d.home, pkg, extra), T);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.success() {
        return Err(format!("accepted:\n{}", text(&out)));
    }
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        [one] if one.starts_with("error: ") => Ok(one.to_string()),
        _ => Err(format!("not one 'error: ' line:\n{err}")),
    }
}

/// A job folder in the scratch area with `job.yaml` = `yaml`.
fn job_folder(d: &Doors, name: &str, yaml: &str) -> PathBuf {
    shell_job(&d.scratch.join(name), yaml, "#!/bin/sh\necho hi\n")
}

/// A tar.gz of a tiny valid job plus `extra` entries, each written with raw header bytes so
/// that any name, link or type can be had: (name, type, link target, data).
fn tarball(
    d: &Doors,
    file: &str,
    extra: &[(&str, tar::EntryType, Option<&str>, &[u8])],
) -> PathBuf {
    let path = d.scratch.join(file);
    let f = std::fs::File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    let base: [(&str, tar::EntryType, Option<&str>, &[u8]); 2] = [
        (
            "job.yaml",
            tar::EntryType::Regular,
            None,
            b"name: evil\ncommand: [./run.sh]\n",
        ),
        (
            "run.sh",
            tar::EntryType::Regular,
            None,
            b"#!/bin/sh\necho hi\n",
        ),
    ];
    for (name, kind, link, data) in base.iter().chain(extra) {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
    path
}

/// A tar.gz whose `big.bin` is `bytes` zeros: a few hundred KiB packed, `bytes` unpacked.
fn zero_bomb(d: &Doors, bytes: u64) -> PathBuf {
    let path = d.scratch.join("bomb.tar.gz");
    let f = std::fs::File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::best(),
    ));
    for (name, data) in [
        ("job.yaml", &b"name: bomb\ncommand: [./run.sh]\n"[..]),
        ("run.sh", &b"#!/bin/sh\necho hi\n"[..]),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_path("big.bin").unwrap();
    h.set_size(bytes);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, std::io::repeat(0).take(bytes)).unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

/// One request line to the agent socket; the answer's `error`.
fn agent_says(d: &Doors, line: &[u8]) -> Result<String, String> {
    let s = UnixStream::connect(&d.socket).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The agent may answer and close before it has read all of an overlong line: write on
    // the side and read the answer whatever became of the write.
    let mut w = s.try_clone().unwrap();
    let data = line.to_vec();
    let writer = std::thread::spawn(move || w.write_all(&data));
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .map_err(|e| format!("read: {e}"))?;
    let _ = writer.join();
    let v: serde_json::Value =
        serde_json::from_str(&answer).map_err(|e| format!("answer {answer:?}: {e}"))?;
    if v["ok"] == true {
        return Err(format!("accepted: {answer}"));
    }
    // Plain answers carry `error`; an exec's frames carry `message`.
    match v["error"].as_str().or(v["message"].as_str()) {
        Some(e) => Ok(e.to_string()),
        None => Err(format!("no error in the answer {answer:?}")),
    }
}

fn register(job: &str, token: &str, version: u32, id: u32, restart: u32) -> WorkerToMaster {
    WorkerToMaster {
        body: Some(W::Register(RegisterParams {
            job_id: job.into(),
            token: token.into(),
            protocol_version: version,
            info: Some(WorkerInfo {
                worker_id: id,
                host: "127.0.0.1".into(),
                port: 40_000 + id,
                restart_count: restart,
                ..Default::default()
            }),
            reconnect: false,
        })),
    }
}

/// Opens a worker stream to the bystander's job master with `first` as its first message
/// (the stream stays open); the refusal's message, or what came instead.
fn attach_refused(d: &Doors, first: WorkerToMaster) -> Result<String, String> {
    let jm = d.jm.clone();
    d.runtime.block_on(async move {
        let mut client = JobMasterClient::connect(jm)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let outbound = futures::stream::iter([first]).chain(futures::stream::pending());
        let call = client.attach(outbound);
        match tokio::time::timeout(Duration::from_secs(20), call).await {
            Err(_) => Err("no answer within 20 s".into()),
            Ok(Err(status)) => Ok(status.message().to_string()),
            Ok(Ok(resp)) => {
                let mut inbound = resp.into_inner();
                match tokio::time::timeout(Duration::from_secs(20), inbound.next()).await {
                    Ok(Some(Err(status))) => Ok(status.message().to_string()),
                    other => Err(format!("the stream was accepted: {other:?}")),
                }
            }
        }
    })
}

/// The request-line part of a raw HTTP answer is dropped: the body, as one line.
fn http_error(status_wanted: u16, (status, body): (u16, String)) -> Result<String, String> {
    if status != status_wanted {
        return Err(format!("status {status}, wanted {status_wanted}: {body}"));
    }
    Ok(body.trim().to_string())
}

/// Every case of the suite.
fn cases() -> Vec<Case> {
    use Door::*;
    let nested = format!(
        "name: x\ncommand: [./run.sh]\nenv: {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let laughs = {
        let mut y =
            String::from("name: x\ncommand: [./run.sh]\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            y.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        y
    };
    vec![
        // ---- job.yaml and -D
        case(
            JobYaml,
            "a duration that overflows a clock",
            "must be from 1ms to 7days",
            |d| {
                let pkg = job_folder(d, "dur", "name: x\ncommand: [./run.sh]\n");
                submit_refused(d, &pkg, &["-D", "join_timeout=18000000000000000000s"])
            },
        ),
        case(
            JobYaml,
            "a worker count past the maximum",
            "'workers' must be at most",
            |d| {
                let pkg = job_folder(d, "many", "name: x\ncommand: [./run.sh]\n");
                submit_refused(d, &pkg, &["-D", "workers=100000000"])
            },
        ),
        case(JobYaml, "a job.yaml of 2 MiB", "job.yaml", |d| {
            let yaml = format!("name: x\ncommand: [./run.sh]\n# {}\n", "x".repeat(2 << 20));
            let pkg = job_folder(d, "huge", &yaml);
            submit_refused(d, &pkg, &[])
        }),
        case(
            JobYaml,
            "a job.yaml nested 20 000 deep",
            "job.yaml",
            move |d| {
                let pkg = job_folder(d, "nested", &nested);
                submit_refused(d, &pkg, &[])
            },
        ),
        case(
            JobYaml,
            "a billion-laughs job.yaml (aliases of aliases)",
            "job.yaml",
            move |d| {
                let pkg = job_folder(d, "laughs", &laughs);
                submit_refused(d, &pkg, &[])
            },
        ),
        case(JobYaml, "a job.yaml that is not UTF-8", "UTF-8", |d| {
            let pkg = job_folder(d, "latin1", "name: x\ncommand: [./run.sh]\n");
            std::fs::write(
                pkg.join("job.yaml"),
                b"name: caf\xe9\ncommand: [./run.sh]\n",
            )
            .unwrap();
            submit_refused(d, &pkg, &[])
        }),
        case(
            JobYaml,
            "a command that climbs out of the package",
            "is not in the package",
            |d| {
                let pkg = job_folder(d, "climb", "name: x\ncommand: [../../../bin/sh]\n");
                submit_refused(d, &pkg, &[])
            },
        ),
        case(JobYaml, "-D with no key", "-D", |d| {
            let pkg = job_folder(d, "nokey", "name: x\ncommand: [./run.sh]\n");
            submit_refused(d, &pkg, &["-D", "=3"])
        }),
        case(
            JobYaml,
            "-D of a map key with a flow-YAML value that does not parse",
            "topology.racks",
            |d| {
                let pkg = job_folder(d, "flow", "name: x\ncommand: [./run.sh]\n");
                submit_refused(d, &pkg, &["-D", "topology.racks={a: [127.0.0.2"])
            },
        ),
        // ---- packages
        case(
            Package,
            "an entry climbing out with '..'",
            "escapes the package with '..'",
            |d| {
                let pkg = tarball(
                    d,
                    "dotdot.tar.gz",
                    &[("../../escaped-dotdot", tar::EntryType::Regular, None, b"x")],
                );
                submit_refused(d, &pkg, &[])
            },
        ),
        case(Package, "an absolute entry", "is an absolute path", |d| {
            let pkg = tarball(
                d,
                "abs.tar.gz",
                &[(
                    "/tmp/t2-hostile-escaped-abs",
                    tar::EntryType::Regular,
                    None,
                    b"x",
                )],
            );
            submit_refused(d, &pkg, &[])
        }),
        case(
            Package,
            "a symlink out, then a file written through it",
            "symlink pointing outside the package",
            |d| {
                let pkg = tarball(
                    d,
                    "through.tar.gz",
                    &[
                        ("out", tar::EntryType::Symlink, Some("/tmp"), b""),
                        (
                            "out/t2-hostile-escaped-through",
                            tar::EntryType::Regular,
                            None,
                            b"x",
                        ),
                    ],
                );
                submit_refused(d, &pkg, &[])
            },
        ),
        case(Package, "a hardlink to a file outside", "hardlink", |d| {
            let pkg = tarball(
                d,
                "hard.tar.gz",
                &[("h", tar::EntryType::Link, Some("/etc/passwd"), b"")],
            );
            submit_refused(d, &pkg, &[])
        }),
        case(Package, "a device file", "is a device file", |d| {
            let pkg = tarball(d, "dev.tar.gz", &[("dev", tar::EntryType::Char, None, b"")]);
            submit_refused(d, &pkg, &[])
        }),
        case(
            Package,
            "a gzip bomb (64 MiB of zeros in a few KiB)",
            "unpack",
            |d| {
                let pkg = zero_bomb(d, 64 << 20);
                submit_refused(d, &pkg, &["-D", "max_package_bytes=1048576"])
            },
        ),
        case(Package, "a package cut in half", "is corrupt", |d| {
            let good = tarball(
                d,
                "whole.tar.gz",
                &[("data.txt", tar::EntryType::Regular, None, &noise(20_000, 9))],
            );
            let bytes = std::fs::read(&good).unwrap();
            let cut = d.scratch.join("cut.tar.gz");
            std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
            submit_refused(d, &cut, &[])
        }),
        case(Package, "random bytes named .tar.gz", "is corrupt", |d| {
            let junk = d.scratch.join("junk.tar.gz");
            std::fs::write(&junk, noise(10_000, 7)).unwrap();
            submit_refused(d, &junk, &[])
        }),
        // ---- the uploader's HTTP API
        case(Uploader, "a PUT without a token", "token", |d| {
            let data = noise(1000, 1);
            let r = d
                .uploader
                .req("PUT", &format!("/packages/{}", sha256(&data)), &[], &data);
            http_error(401, (r.status, r.text()))
        }),
        case(
            Uploader,
            "a PUT whose body is not its sha256",
            "sha256",
            |d| {
                let r = d.uploader.put(&sha256(b"something else"), &noise(1000, 2));
                http_error(400, (r.status, r.text()))
            },
        ),
        case(
            Uploader,
            "an encoded path traversal",
            "not a package ID",
            |d| {
                let r = d
                    .uploader
                    .req("PUT", "/packages/..%2F..%2Fetc%2Fpasswd", &[auth()], b"x");
                http_error(400, (r.status, r.text()))
            },
        ),
        case(
            Uploader,
            "a job reference with a hostile job ID",
            "job",
            |d| {
                let r = d.uploader.req(
                    "PUT",
                    &format!("/packages/{}/refs/..%2F..%2Fx", "a".repeat(64)),
                    &[auth()],
                    b"",
                );
                http_error(400, (r.status, r.text()))
            },
        ),
        case(
            Uploader,
            "a DELETE with a wrong token",
            "wrong uploader token",
            |d| {
                let r = d.uploader.req(
                    "DELETE",
                    &format!("/packages/{}", "a".repeat(64)),
                    &[("Authorization", "Bearer nope")],
                    b"",
                );
                http_error(403, (r.status, r.text()))
            },
        ),
        case(
            Uploader,
            "a Range past the end of a package",
            "range",
            |d| {
                let data = noise(1000, 3);
                let id = sha256(&data);
                let put = d.uploader.put(&id, &data);
                if put.status != 201 {
                    return Err(format!("setup PUT: {} {}", put.status, put.text()));
                }
                let r = d.uploader.req(
                    "GET",
                    &format!("/packages/{id}"),
                    &[("Range", "bytes=99999999999-")],
                    b"",
                );
                let _ = d
                    .uploader
                    .req("DELETE", &format!("/packages/{id}"), &[auth()], b"");
                http_error(416, (r.status, r.text().to_lowercase()))
            },
        ),
        // ---- a worker agent's Unix socket (the bystander's worker 0)
        case(
            AgentSocket,
            "a request line of 2 MiB",
            "request longer than",
            |d| {
                let mut line = vec![b'x'; 2 << 20];
                line.push(b'\n');
                agent_says(d, &line)
            },
        ),
        case(AgentSocket, "malformed JSON", "bad request", |d| {
            agent_says(d, b"{\"op\": \n")
        }),
        case(
            AgentSocket,
            "an unknown operation",
            "unknown variant",
            |d| agent_says(d, b"{\"op\":\"format_disk\"}\n"),
        ),
        case(
            AgentSocket,
            "a message of 1 MiB to the other workers",
            "message",
            |d| {
                let msg = serde_json::json!({"op": "send", "message": "m".repeat(1_000_000)});
                agent_says(d, format!("{msg}\n").as_bytes())
            },
        ),
        case(
            AgentSocket,
            "a command for a host no worker has",
            "no worker",
            |d| {
                agent_says(
                    d,
                    b"{\"op\":\"exec\",\"host\":\"10.255.255.1\",\"command\":\"id\"}\n",
                )
            },
        ),
        // ---- the job master's gRPC service (the bystander's)
        case(Grpc, "a registration without a token", "token", |d| {
            attach_refused(d, register(&d.job_id, "", PROTOCOL_VERSION, 0, 0))
        }),
        case(Grpc, "a registration with a wrong token", "token", |d| {
            attach_refused(
                d,
                register(&d.job_id, "not-the-token", PROTOCOL_VERSION, 0, 0),
            )
        }),
        case(Grpc, "a registration for another job", "job", |d| {
            attach_refused(
                d,
                register("other-job-12345678", &d.token, PROTOCOL_VERSION, 0, 0),
            )
        }),
        case(
            Grpc,
            "a forged worker ID past the job's size",
            "worker ID 7 is out of range",
            |d| attach_refused(d, register(&d.job_id, &d.token, PROTOCOL_VERSION, 7, 0)),
        ),
        case(
            Grpc,
            "a duplicate of a live worker",
            "already registered",
            |d| attach_refused(d, register(&d.job_id, &d.token, PROTOCOL_VERSION, 0, 0)),
        ),
        case(Grpc, "another protocol version", "protocol version", |d| {
            attach_refused(
                d,
                register(&d.job_id, &d.token, PROTOCOL_VERSION + 100, 1, 0),
            )
        }),
        case(
            Grpc,
            "a heartbeat before any registration",
            "must be a registration",
            |d| {
                attach_refused(
                    d,
                    WorkerToMaster {
                        body: Some(W::Heartbeat(Heartbeat { seq: 1 })),
                    },
                )
            },
        ),
        case(Grpc, "a registration of 1 MiB", "message", |d| {
            let huge = "t".repeat(1 << 20);
            attach_refused(d, register(&d.job_id, &huge, PROTOCOL_VERSION, 0, 0))
        }),
        case(Grpc, "a kill with a wrong token", "token", |d| {
            let jm = d.jm.clone();
            let job_id = d.job_id.clone();
            d.runtime.block_on(async move {
                let mut c = JobMasterClient::connect(jm)
                    .await
                    .map_err(|e| e.to_string())?;
                match c
                    .kill(KillParams {
                        token: "nope".into(),
                        reason: "hostile".into(),
                    })
                    .await
                {
                    Ok(_) => Err(format!("job {job_id} accepted a kill with a wrong token")),
                    Err(s) => Ok(s.message().to_string()),
                }
            })
        }),
        case(Grpc, "a scale with a wrong token", "token", |d| {
            let jm = d.jm.clone();
            d.runtime.block_on(async move {
                let mut c = JobMasterClient::connect(jm)
                    .await
                    .map_err(|e| e.to_string())?;
                match c
                    .scale(ScaleParams {
                        token: "nope".into(),
                        num_workers: 64,
                    })
                    .await
                {
                    Ok(_) => Err("a scale with a wrong token was accepted".to_string()),
                    Err(s) => Ok(s.message().to_string()),
                }
            })
        }),
        case(Grpc, "a package fetch with a wrong token", "token", |d| {
            let jm = d.jm.clone();
            d.runtime.block_on(async move {
                let mut c = PackageSourceClient::connect(jm)
                    .await
                    .map_err(|e| e.to_string())?;
                match c
                    .fetch(FetchPackageParams {
                        token: "nope".into(),
                        sha256: String::new(),
                    })
                    .await
                {
                    Ok(mut s) => match s.get_mut().next().await {
                        Some(Err(st)) => Ok(st.message().to_string()),
                        other => Err(format!(
                            "the package was served: {:?}",
                            other.map(|r| r.is_ok())
                        )),
                    },
                    Err(s) => Ok(s.message().to_string()),
                }
            })
        }),
        case(
            Grpc,
            "a flood of 300 streams that never register",
            "no registration within",
            |d| {
                let jm = d.jm.clone();
                d.runtime.block_on(async move {
                    let c = JobMasterClient::connect(jm)
                        .await
                        .map_err(|e| e.to_string())?;
                    let calls = (0..300).map(|_| {
                        let mut c = c.clone();
                        async move {
                            let quiet = futures::stream::pending::<WorkerToMaster>();
                            tokio::time::timeout(Duration::from_secs(40), c.attach(quiet)).await
                        }
                    });
                    let answers = futures::future::join_all(calls).await;
                    let mut last = String::new();
                    for a in answers {
                        match a {
                            Ok(Err(s)) => last = s.message().to_string(),
                            Ok(Ok(_)) => return Err("an unregistered stream was accepted".into()),
                            Err(_) => {
                                return Err(
                                    "an unregistered stream got no answer within 40 s".into()
                                )
                            }
                        }
                    }
                    Ok(last)
                })
            },
        ),
        // ---- the dashboard's API
        case(
            Dashboard,
            "a report without a token",
            "dashboard token",
            |d| {
                http_error(
                    401,
                    request("POST", &format!("{}/api/report", d.dash.url), &[], b"{}"),
                )
            },
        ),
        case(Dashboard, "a report of 5 MiB", "larger than", |d| {
            let bearer = format!("Bearer {}", common::dash::TOKEN);
            let body = "x".repeat(5 << 20);
            http_error(
                413,
                request(
                    "POST",
                    &format!("{}/api/report", d.dash.url),
                    &[
                        ("Authorization", &bearer),
                        ("Content-Type", "application/json"),
                    ],
                    body.as_bytes(),
                ),
            )
        }),
        case(
            Dashboard,
            "a kill of the bystander without a token",
            "dashboard token",
            |d| {
                http_error(
                    401,
                    request(
                        "POST",
                        &format!("{}/api/jobs/{}/kill", d.dash.url, d.job_id),
                        &[],
                        b"",
                    ),
                )
            },
        ),
        case(Dashboard, "a job ID that climbs out", "job", |d| {
            let (status, body) = request(
                "GET",
                &format!("{}/api/jobs/..%2F..%2Fetc%2Fpasswd", d.dash.url),
                &[],
                b"",
            );
            if status == 400 || status == 404 {
                Ok(body)
            } else {
                Err(format!("status {status}: {body}"))
            }
        }),
    ]
}

/// Every file under `dir` (relative paths), for before/after comparisons.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_hostile_input_gets_a_clear_error_and_the_bystander_job_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let release = tmp.path().join("release");

    // The bystander: two workers that say where their agent socket is, wait to be released,
    // then pass a barrier through their agents and the job master.
    let script = format!(
        "#!/bin/sh\necho \"socket=$T2_AGENT_SOCKET\"\ni=0\nwhile [ ! -e '{r}' ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done\n[ -e '{r}' ] || exit 3\necho \"barrier: $(t2 worker barrier --timeout 60s)\"\n",
        r = release.display()
    );
    let pkg = shell_job(
        &tmp.path().join("bystander"),
        "name: bystander\ncommand: [./run.sh]\nworkers: 2\n",
        &script,
    );
    let bystander = RunningJob::submit_detached(&home, &pkg, NO_ARGS, T);
    let socket = {
        let mut found = None;
        wait_until(
            T,
            || {
                found = files_under(&bystander.dir())
                    .into_iter()
                    .find(|f| f.ends_with("agent.sock"));
                found.is_some()
            },
            || format!("no agent socket in {}", bystander.dir().display()),
        );
        bystander.dir().join(found.unwrap())
    };
    let token = std::fs::read_to_string(bystander.dir().join("token"))
        .unwrap()
        .trim()
        .to_string();
    let jm = bystander.rec["jobmaster_addr"]
        .as_str()
        .expect("the job master's address in the record")
        .to_string();
    let up_dir = tmp.path().join("uploads");
    let doors = Doors {
        scratch: scratch.clone(),
        home: home.clone(),
        uploader: Uploader::start(&up_dir, &[]),
        dash: Dash::start(tmp.path(), &tmp.path().join("dash.db"), "127.0.0.1:0"),
        jm,
        job_id: bystander.id.clone(),
        token,
        socket,
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    };
    let jobs_before = std::fs::read_dir(home.join("jobs")).unwrap().count();
    let escapes = [
        tmp.path().join("escaped-dotdot"),
        scratch.join("escaped-dotdot"),
        PathBuf::from("/tmp/t2-hostile-escaped-abs"),
        PathBuf::from("/tmp/t2-hostile-escaped-through"),
    ];

    let cases = cases();
    let mut failures = Vec::new();
    let mut table = String::new();
    for (i, c) in cases.iter().enumerate() {
        let answer = (c.send)(&doors);
        let verdict = match &answer {
            Ok(text) if text.contains(c.says) && text.lines().count() == 1 => "ok",
            _ => "FAILED",
        };
        table.push_str(&format!(
            "{:>2} {:<12} {:<58} {verdict}: {}\n",
            i + 1,
            format!("{:?}", c.door),
            c.what,
            match &answer {
                Ok(t) => t.chars().take(160).collect::<String>(),
                Err(e) => e.chars().take(400).collect::<String>(),
            }
        ));
        if verdict != "ok" {
            failures.push(format!("{} (want '{}'): {answer:?}", c.what, c.says));
        }
        // No case may take a server down.
        if !bystander.record().is_some_and(|r| r["state"] == "RUNNING") {
            failures.push(format!(
                "after '{}' the bystander job is no longer RUNNING",
                c.what
            ));
            break;
        }
    }
    eprintln!("hostile inputs:\n{table}");
    assert!(cases.len() >= 30, "the suite has {} cases", cases.len());
    for door in [
        Door::JobYaml,
        Door::Package,
        Door::Uploader,
        Door::AgentSocket,
        Door::Grpc,
        Door::Dashboard,
    ] {
        assert!(cases.iter().any(|c| c.door == door), "no case for {door:?}");
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}\n{table}",
        failures.len(),
        failures.join("\n")
    );

    // Every server still answers; nothing was stored, created or written outside.
    assert_eq!(doors.uploader.req("GET", "/healthz", &[], b"").status, 200);
    assert_eq!(
        request("GET", &format!("{}/api/jobs", doors.dash.url), &[], b"").0,
        200
    );
    let stored = files_under(&up_dir.join("packages"));
    assert!(stored.is_empty(), "the uploader stored {stored:?}");
    assert_eq!(
        std::fs::read_dir(home.join("jobs")).unwrap().count(),
        jobs_before,
        "a refused submit left a job folder"
    );
    for p in &escapes {
        assert!(
            !p.exists(),
            "{} was written outside the package",
            p.display()
        );
    }

    // The bystander carries on: released, its workers pass a barrier and the job completes.
    std::fs::write(&release, b"").unwrap();
    let rec = wait_for_record(&home, T, |r| r["state"] != "RUNNING");
    assert_eq!(rec["state"], "COMPLETED", "{rec}");
    for w in 0..2 {
        let log = job_log(&home, &bystander.id, &format!("worker-{w}"));
        assert!(log.contains("barrier: SUCCESS"), "worker {w}: {log}");
    }
}
