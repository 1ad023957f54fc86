//! A real ZooKeeper server for tests: Debian's `zookeeper` package run standalone on a free
//! loopback port with a temporary data directory; stoppable and restartable on the same port.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) ZooKeeper server.
pub struct ZkServer {
    child: Option<Child>,
    /// Client port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl ZkServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut zk = ZkServer {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        zk.restart();
        zk
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The znodes left under `/t2` for job `job`, read with the real client.
    pub fn znodes_of(&self, job: &str) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let s = t2_core::zk::Zk::connect(
                &self.address(),
                Duration::from_secs(10),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
            let mut out = s.children("/t2").await.unwrap_or_default();
            out.retain(|c| c == job);
            out
        })
    }

    /// Starts the server again (same port, same data) and waits until it serves.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let cfg = self.dir.path().join("zoo.cfg");
        // tickTime 500 ms: sessions between 1 s and 60 s are allowed.
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\nmaxSessionTimeout=60000\ndataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n",
                self.dir.path().join("data").display(),
                self.port
            ),
        )
        .unwrap();
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-cp",
                "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/*",
            ])
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java (ZooKeeper) must be installed: scripts/test installs Debian's zookeeper");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if ruok(self.port) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "ZooKeeper did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True when the server answers `ruok` with `imok`.
fn ruok(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"ruok").is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf == "imok"
}
