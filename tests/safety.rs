//! Safety of what the daemon serves and spawns (issue 13 items 6, 7, 8): the data server opens only regular files
//! (a FIFO hangs nothing), `HEAD` is answered, error bodies show no server paths, the token stays secret, and no
//! process of a job outlives the daemon even after `kill -9`. Every wait has a deadline; all on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{data_server_pid, free_port, request, test_config, Daemon};

/// `HEAD url`: the status, the Content-Length header and how many body bytes came.
fn head(url: &str, token: Option<&str>) -> (u16, Option<String>, usize) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut req = agent.request("HEAD", url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HEAD {url}: {e}"),
    };
    let status = resp.status();
    let length = resp.header("content-length").map(str::to_string);
    let mut body = Vec::new();
    use std::io::Read;
    let _ = resp.into_reader().take(1 << 20).read_to_end(&mut body);
    (status, length, body.len())
}

fn mkfifo(path: &std::path::Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
}

#[test]
fn a_fifo_in_a_category_hangs_nothing_and_real_files_and_health_are_still_served() {
    let data_port = free_port();
    let daemon = Daemon::start(&test_config(free_port(), data_port, ""));
    data_server_pid(&daemon);
    let games = daemon.path().join("data/games");
    std::fs::create_dir_all(&games).unwrap();
    mkfifo(&games.join("fifo"));
    std::fs::write(games.join("real.db"), b"real game bytes").unwrap();
    let base = format!("http://127.0.0.1:{data_port}");

    // 1000 requests naming the FIFO, 100 at a time: each is refused at once, none holds a thread.
    let started = Instant::now();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for j in 0..10 {
                    let route = if (i + j) % 2 == 0 {
                        "files"
                    } else {
                        "checksum"
                    };
                    let url = format!("{base}/{route}/games/fifo");
                    codes.push(request("GET", &url, None).map(|(code, _)| code));
                }
                codes
            })
        })
        .collect();
    let mut refused = 0;
    for thread in threads {
        for code in thread.join().unwrap() {
            assert_eq!(code, Ok(404), "a FIFO is not a file");
            refused += 1;
        }
    }
    assert_eq!(refused, 1000);
    eprintln!("1000 FIFO requests refused in {:?}", started.elapsed());

    let (code, body) = request("GET", &format!("{base}/files/games/real.db"), None).unwrap();
    assert_eq!(code, 200);
    assert_eq!(body, "real game bytes");
    assert_eq!(
        request("GET", &format!("{base}/health"), None).unwrap().0,
        200
    );
    let (code, health) = daemon.get("/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["checks"]["data_server"]["status"], "ok", "{health}");
}

#[test]
fn head_is_answered_and_error_bodies_show_no_server_paths() {
    let data_port = free_port();
    let daemon = Daemon::start(&test_config(free_port(), data_port, ""));
    data_server_pid(&daemon);
    let games = daemon.path().join("data/games");
    std::fs::create_dir_all(&games).unwrap();
    std::fs::write(games.join("real.db"), vec![7u8; 100_000]).unwrap();
    let base = format!("http://127.0.0.1:{data_port}");

    let (code, length, body) = head(&format!("{base}/files/games/real.db"), None);
    assert_eq!((code, length.as_deref(), body), (200, Some("100000"), 0));
    assert_eq!(head(&format!("{base}/health"), None).0, 200);
    assert_eq!(head(&format!("{base}/inventory.json"), None).0, 200);
    assert_eq!(head(&format!("{base}/files/games/missing"), None).0, 404);
    let (code, _, body) = head(&format!("{}/status", daemon.api), None);
    assert_eq!((code, body), (200, 0), "control API answers HEAD");
    assert_eq!(head(&format!("{}/health", daemon.api), None).0, 200);

    let root = daemon.path().canonicalize().unwrap();
    let root = root.to_string_lossy();
    std::fs::create_dir_all(games.join("dir")).unwrap();
    for path in [
        "/files/games/missing",
        "/files/games/dir",
        "/checksum/games/dir",
        "/files/games/../x",
        "/files/nope/a.db",
        "/checksum/games/missing",
    ] {
        let (code, body) = request("GET", &format!("{base}{path}"), None).unwrap();
        assert!(code >= 400, "{path}: {code}");
        let text = body.to_string();
        assert!(
            !text.contains(root.as_ref()) && !text.contains("/tmp/"),
            "{path} shows a server path: {text}"
        );
    }
}

/// Every process whose process group is `pgid` (read from /proc; zombies excluded).
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest.to_string()) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(2).and_then(|g| g.parse().ok()) == Some(pgid)
        {
            out.push(pid);
        }
    }
    out
}

/// The pid of the process whose command line contains `marker`.
fn pid_with_marker(marker: &str, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no process with {marker} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn environ(pid: i32) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/environ")).expect("environ readable");
    String::from_utf8_lossy(&bytes).replace('\0', "\n")
}

#[test]
fn no_process_of_a_job_outlives_kill_9_of_the_daemon_and_none_inherits_the_token() {
    let marker = format!("job-marker-{}", std::process::id());
    let extra = format!(
        "scheduler:\n  jobs:\n    command: [\"/bin/sh\", \"-c\", \"sleep 300; echo {{games}} {marker}\"]\n"
    );
    let config = test_config(free_port(), free_port(), &extra);
    let mut daemon = Daemon::start_with_env(&config, &[("COORDINATOR_API__TOKEN", "s3cret-token")]);
    let job = pid_with_marker(&marker, Duration::from_secs(60));
    let pgid = job;
    let deadline = Instant::now() + Duration::from_secs(10);
    while group_members(pgid).len() < 2 {
        assert!(Instant::now() < deadline, "the job's sleep did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let members = group_members(pgid);
    eprintln!("job group {pgid}: {members:?}");

    for (what, pid) in [
        ("job", job),
        ("data server", data_server_pid_with_token(&daemon)),
    ] {
        let env = environ(pid);
        assert!(
            !env.contains("COORDINATOR_API__TOKEN") && !env.contains("s3cret-token"),
            "the {what} inherited the token:\n{env}"
        );
    }

    daemon.signal(libc::SIGKILL);
    daemon
        .wait_exit(Duration::from_secs(5))
        .expect("daemon killed");
    let killed = Instant::now();
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "job processes {left:?} outlived kill -9 of the daemon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("job group gone {:?} after kill -9", killed.elapsed());
}

fn data_server_pid_with_token(daemon: &Daemon) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, status) = request(
            "GET",
            &format!("{}/status", daemon.api),
            Some("s3cret-token"),
        )
        .unwrap();
        if status["data_server"]["state"] == "up" {
            return status["data_server"]["pid"].as_i64().unwrap() as i32;
        }
        assert!(Instant::now() < deadline, "data server not up: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_token_guards_every_route_but_health_and_metrics_and_is_never_printed() {
    let token = "s3cret-token";
    let daemon = Daemon::start_with_env(
        &test_config(free_port(), free_port(), ""),
        &[("COORDINATOR_API__TOKEN", token)],
    );
    let api = &daemon.api;
    for path in [
        "/status",
        "/dead-letters",
        "/dead-letters/1",
        "/jobs",
        "/plan",
    ] {
        let (code, _) = request("GET", &format!("{api}{path}"), None).unwrap();
        assert_eq!(code, 401, "GET {path} without the token");
        let (code, _) = request("GET", &format!("{api}{path}"), Some("wrong")).unwrap();
        assert_eq!(code, 401, "GET {path} with a wrong token");
    }
    assert_eq!(head(&format!("{api}/status"), None).0, 401);
    let (code, _) = request("GET", &format!("{api}/status"), Some(token)).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        request("GET", &format!("{api}/health"), None).unwrap().0,
        200
    );
    assert_eq!(
        request("GET", &format!("{api}/metrics"), None).unwrap().0,
        200
    );
    assert_eq!(
        request("POST", &format!("{api}/debug/fail/sync?mode=error"), None)
            .unwrap()
            .0,
        401
    );

    // The CLI finds the token in the environment, as the daemon did.
    let cli = |args: &[&str], with_token: bool| {
        let mut c = common::command(daemon.path());
        c.args(args).args(["--api", api]);
        if with_token {
            c.env("COORDINATOR_API__TOKEN", token);
        }
        common::run_with_timeout(c, Duration::from_secs(20))
    };
    let out = cli(&["status"], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dead_letters"));
    let out = cli(&["dead-letters", "list"], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["status"], false);
    assert!(!out.status.success(), "status without the token must fail");

    // check-config shows it redacted, from the environment or from the file.
    let mut c = common::command(daemon.path());
    c.args(["check-config", "--config", "config.yaml"])
        .env("COORDINATOR_API__TOKEN", token);
    let out = common::run_with_timeout(c, Duration::from_secs(20));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("token: <redacted>"), "{printed}");
    assert!(!printed.contains(token), "{printed}");
    assert!(!daemon.logs().contains(token), "the log shows the token");
}

#[test]
fn with_debug_endpoints_off_every_debug_request_is_404() {
    let config = test_config(free_port(), free_port(), "")
        .replace("debug_endpoints: true", "debug_endpoints: false");
    let daemon = Daemon::start(&config);
    for (method, path) in [
        ("POST", "/debug/fail/sync"),
        ("POST", "/debug/fail/sync?mode=panic"),
        ("POST", "/debug/fail/sync?bogus=1"),
        ("POST", "/debug/ping/sync"),
        ("POST", "/debug/ping/sync?count=x"),
        ("GET", "/debug/fail/sync"),
        ("GET", "/debug"),
        ("GET", "/debug/anything/else"),
    ] {
        let (code, body) = request(method, &format!("{}{path}", daemon.api), None).unwrap();
        assert_eq!(code, 404, "{method} {path}: {body}");
    }
}
