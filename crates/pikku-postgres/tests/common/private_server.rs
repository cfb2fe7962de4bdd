//! A PostgreSQL server of one test's own, on a free port, that the test may stop and start again.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root its tools run as the `postgres` user
//! through `runuser`. The data directory lives under the system temp directory and is removed, with the server
//! stopped, when the value is dropped.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) struct PrivateServer {
    bin: PathBuf,
    base: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivateServer {
    /// Makes a new cluster (trust authentication, user `postgres`) and starts it.
    pub(crate) fn start_new() -> Self {
        let server = Self::init();
        server.start();
        server
    }

    /// Makes a new cluster without starting it.
    pub(crate) fn init() -> Self {
        let as_postgres = running_as_root();
        let base = std::env::temp_dir().join(format!("pikku-pg-{}", uuid::Uuid::new_v4().simple()));
        fs::create_dir_all(&base).expect("create the server's directory");
        if as_postgres {
            checked(
                Command::new("chown").arg("postgres:postgres").arg(&base),
                "chown the server's directory to postgres",
            );
        }
        let server = Self {
            bin: postgres_bin_dir(),
            base,
            port: free_port(),
            as_postgres,
        };
        checked(
            server.tool("initdb").arg("-D").arg(server.data()).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]),
            "initdb",
        );
        server
    }

    /// The URL of the server's `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on its port and waits until it accepts connections.
    pub(crate) fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.base.display()
        );
        checked(
            self.tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.base.join("server.log"))
                .args(["-o", &options, "-w", "start"]),
            "pg_ctl start",
        );
    }

    /// Stops the server with `mode` (`smart`, `fast` or `immediate`) and waits until it is gone.
    pub(crate) fn stop(&self, mode: &str) {
        checked(&mut self.stop_command(mode), "pg_ctl stop");
    }

    fn stop_command(&self, mode: &str) -> Command {
        let mut command = self.tool("pg_ctl");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-m", mode, "-w", "stop"]);
        command
    }

    fn data(&self) -> PathBuf {
        self.base.join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = self.stop_command("immediate").output();
        }
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has the server's tools.
fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir(root)
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL server tools are needed under {}: {e}",
                root.display()
            )
        })
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("no initdb and pg_ctl under {}/*/bin", root.display()))
}

fn running_as_root() -> bool {
    let out = checked(Command::new("id").arg("-u"), "id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn checked(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
