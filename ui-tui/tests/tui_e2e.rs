//! End to end: the real `periscope top` binary in a tmux pane, against the real node agent
//! (`periscope-agent`) serving a replay of the synthetic Star Wars fixture on loopback. Keys are
//! typed with `tmux send-keys` and the screen is read with `tmux capture-pane`.
//!
//! Skips (with a printed reason) only when tmux is not installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for any one screen state.
const WAIT: Duration = Duration::from_secs(20);

fn tmux_available() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `target/debug` (or the profile dir this test was built in): the test binary lives in `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary is in <target>/<profile>/deps")
        .to_path_buf()
}

/// Builds the agent (a no-op when it is up to date) and returns its path.
fn agent_binary() -> PathBuf {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let status = Command::new(cargo)
        .args([
            "build",
            "-p",
            "periscope-flow-server",
            "--bin",
            "periscope-agent",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .status()
        .expect("run cargo build for periscope-agent");
    assert!(status.success(), "building periscope-agent failed");
    let path = profile_dir().join("periscope-agent");
    assert!(path.exists(), "{} not found after build", path.display());
    path
}

/// Kills the agent when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A tmux server of our own (its own socket), killed with everything in it when dropped.
struct Tmux {
    socket: String,
    session: String,
    /// The server's socket file, removed on drop (`kill-server` leaves it behind).
    socket_path: Option<PathBuf>,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let id = format!("periscope-top-e2e-{}-{nanos}", std::process::id());
        let mut t = Self {
            socket: id.clone(),
            session: id,
            socket_path: None,
        };
        let ok = t
            .cmd()
            .args(["new-session", "-d", "-s", &t.session])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            // A plain shell with a fixed prompt, whatever the user's setup.
            .args(["env", "PS1=$ ", "TERM=xterm-256color", "sh"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux new-session failed");
        t.socket_path = t
            .cmd()
            .args(["display-message", "-p", "#{socket_path}"])
            .output()
            .ok()
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| p.file_name().is_some_and(|n| *n == *t.socket.as_str()));
        t
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).stdin(Stdio::null());
        c
    }

    fn send_line(&self, text: &str) {
        self.send_literal(text);
        self.send_key("Enter");
    }

    fn send_literal(&self, text: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.session, "-l", "--", text])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys -l {text:?} failed");
    }

    fn send_key(&self, key: &str) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", &self.session, key])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux send-keys {key} failed");
        // Lone keys (Escape in particular) must not merge with the next one into a sequence.
        std::thread::sleep(Duration::from_millis(250));
    }

    fn capture(&self) -> String {
        self.cmd()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn alternate_screen_on(&self) -> bool {
        self.cmd()
            .args([
                "display-message",
                "-p",
                "-t",
                &self.session,
                "#{alternate_on}",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
            .unwrap_or(false)
    }

    /// Polls the pane until `ok` holds; panics with the last screen after [`WAIT`].
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.capture();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_listening(addr: SocketAddr, agent: &mut ChildGuard) {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = agent.0.try_wait() {
            panic!("periscope-agent exited early: {status}");
        }
        assert!(Instant::now() < deadline, "agent never listened on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Table rows: lines that start with a `15:04:05.000` time and name the node.
fn flow_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 13 && b[2] == b':' && b[5] == b':' && b[8] == b'.' && l.contains(" node-1 ")
        })
        .collect()
}

#[test]
fn top_against_a_replaying_agent() {
    if !tmux_available() {
        println!("skipping: tmux is not installed (`.ci/run` installs it)");
        return;
    }
    let agent_bin = agent_binary();
    let dir = std::env::temp_dir().join(format!("periscope-top-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let fixture = dir.join("starwars.replay");
    let status = Command::new(&agent_bin)
        .arg("--write-fixture")
        .arg(&fixture)
        .args(["--fixture-rounds", "200"])
        .status()
        .expect("run periscope-agent --write-fixture");
    assert!(status.success(), "writing the fixture failed");

    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut agent = ChildGuard(
        Command::new(&agent_bin)
            .arg("--replay")
            .arg(&fixture)
            .arg("--replay-restamp")
            .args(["--listen-address", &addr.to_string()])
            .args(["--node-name", "node-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start periscope-agent"),
    );
    wait_listening(addr, &mut agent);

    let tmux = Tmux::start(200, 50);
    tmux.wait_for("the shell prompt", |s| s.contains('$'));
    let top = env!("CARGO_BIN_EXE_periscope");
    tmux.send_line(&format!("{top} top --server {addr}; echo TOP-EXIT=$?"));

    // Flows appear, from every pod of the demo.
    let screen = tmux.wait_for("flows from xwing and tiefighter", |s| {
        let rows = flow_rows(s);
        rows.iter().any(|r| r.contains("default/xwing"))
            && rows.iter().any(|r| r.contains("default/tiefighter"))
    });
    assert!(screen.contains("● connected"), "{screen}");
    assert!(
        screen.contains("TIME") && screen.contains("VERDICT"),
        "{screen}"
    );

    // `/` + `--pod xwing` + Enter narrows the table to xwing's flows.
    tmux.send_key("/");
    tmux.send_literal("--pod xwing");
    tmux.wait_for("the typed filter", |s| s.contains("/ --pod xwing"));
    tmux.send_key("Enter");
    let screen = tmux.wait_for("only xwing rows", |s| {
        let rows = flow_rows(s);
        s.contains("filter: --pod xwing")
            && rows.len() >= 5
            && rows.iter().all(|r| r.contains("xwing"))
    });
    assert!(
        !flow_rows(&screen)
            .iter()
            .any(|r| r.contains("default/tiefighter")),
        "{screen}"
    );

    // Enter opens the selected flow's details, as `-o dict` shows them plus every field.
    tmux.send_key("Enter");
    let screen = tmux.wait_for("the detail pane", |s| {
        s.contains("Flow details") && s.contains("All fields")
    });
    for field in [
        "TIMESTAMP:",
        "NODE: node-1",
        "SOURCE:",
        "DESTINATION:",
        "TYPE:",
        "VERDICT:",
        "SUMMARY:",
        "source.pod_name:",
    ] {
        assert!(screen.contains(field), "{field:?} missing:\n{screen}");
    }
    assert!(screen.contains("xwing"), "{screen}");
    tmux.send_key("Escape");
    tmux.wait_for("the table again", |s| {
        !s.contains("Flow details") && !flow_rows(s).is_empty()
    });

    // `q` quits: the shell is back, the alternate screen left.
    tmux.send_key("q");
    let screen = tmux.wait_for("the shell after quitting", |s| s.contains("TOP-EXIT=0"));
    assert!(!screen.contains("periscope top  "), "{screen}");
    assert!(flow_rows(&screen).is_empty(), "{screen}");
    assert!(!tmux.alternate_screen_on(), "alternate screen still on");
    let _ = std::fs::remove_dir_all(&dir);
}
