//! Black-box tests of the data server (issue 3) over loopback: the server runs in-process on 127.0.0.1:0 and a raw
//! `TcpStream` client sends requests byte for byte, so hostile paths reach the server exactly as written.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use actors::data_server::{BackgroundServer, DataServerError, ServerOptions};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &[u8] = b"TOP-SECRET-CONTENT-never-served";

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&address, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    send(address, "GET", path, headers).unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..line_end]).expect("utf8").trim(),
            16,
        )
        .expect("hex");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    server: BackgroundServer,
}

impl Fixture {
    fn start() -> Self {
        Self::start_with(|_| {})
    }

    fn start_with(adjust: impl FnOnce(&mut ServerOptions)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        let games = root.join("games");
        std::fs::create_dir_all(games.join("sub")).expect("mkdir");
        std::fs::create_dir_all(root.join("models")).expect("mkdir");
        std::fs::write(games.join("a.db"), b"abc").expect("write");
        std::fs::write(games.join("sub/b.db"), pattern(1 << 20)).expect("write");
        std::fs::write(games.join("c.db.tmp"), b"in progress").expect("write");
        std::fs::write(games.join(".d.db"), b"hidden").expect("write");
        std::fs::write(root.join("models/m.pth.partial"), b"in progress").expect("write");
        std::fs::write(root.join("models/m.pth"), b"model").expect("write");
        std::fs::write(dir.path().join("secret"), SECRET).expect("write");
        std::fs::write(root.join("secret"), SECRET).expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret"), games.join("escape"))
            .expect("symlink");
        std::os::unix::fs::symlink(dir.path(), games.join("updir")).expect("symlink");
        let mut options = ServerOptions::new(&root, "node-test");
        options.bind = "127.0.0.1:0".to_string();
        options.workers = 2;
        // The fixture's files are written just now; the settle rule has its own unit test (inventory.rs).
        options.settle = Duration::ZERO;
        adjust(&mut options);
        let server = BackgroundServer::start(options).expect("server starts");
        Fixture {
            _dir: dir,
            root,
            server,
        }
    }

    fn address(&self) -> SocketAddr {
        self.server.address()
    }
}

fn pattern(length: usize) -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn health_answers_get_and_post() {
    let fixture = Fixture::start();
    for method in ["GET", "POST"] {
        let response = send(fixture.address(), method, "/health", &[]).expect("request");
        assert_eq!(response.status, 200, "{method}");
        assert_eq!(
            response.json(),
            serde_json::json!({"status": "ok"}),
            "{method}"
        );
    }
}

#[test]
fn unknown_endpoint_is_404_with_json_error() {
    let fixture = Fixture::start();
    let response = get(fixture.address(), "/nope", &[]);
    assert_eq!(response.status, 404);
    assert!(response.json()["error"]
        .as_str()
        .is_some_and(|error| error.contains("/health")));
}

#[test]
fn inventory_matches_the_files_and_omits_temporaries() {
    let fixture = Fixture::start();
    let response = get(fixture.address(), "/inventory.json", &[]);
    assert_eq!(response.status, 200);
    let inventory = response.json();
    assert_eq!(inventory["node"], "node-test");
    assert!(inventory["generated_at"].as_str().is_some());
    let files: BTreeMap<String, u64> = inventory["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                format!(
                    "{}/{}",
                    f["category"].as_str().unwrap(),
                    f["path"].as_str().unwrap()
                ),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: BTreeMap<String, u64> = [
        ("games/a.db", 3),
        ("games/sub/b.db", 1 << 20),
        ("models/m.pth", 5),
    ]
    .into_iter()
    .map(|(p, s)| (p.to_string(), s))
    .collect();
    assert_eq!(files, expected);
    // Settled files are hashed while the inventory is built, so a puller needs no /checksum request per file.
    let content: BTreeMap<&str, Vec<u8>> = [
        ("games/a.db", b"abc".to_vec()),
        ("games/sub/b.db", pattern(1 << 20)),
        ("models/m.pth", b"model".to_vec()),
    ]
    .into_iter()
    .collect();
    for file in inventory["files"].as_array().expect("files") {
        assert!(file["mtime"].as_f64().is_some_and(|mtime| mtime > 0.0));
        let key = format!(
            "{}/{}",
            file["category"].as_str().unwrap(),
            file["path"].as_str().unwrap()
        );
        assert_eq!(
            file["sha256"].as_str(),
            Some(sha256_hex(&content[key.as_str()]).as_str()),
            "{key}"
        );
    }
}

#[test]
fn an_unchanged_inventory_answers_304_to_its_etag_and_a_change_gives_a_new_one() {
    let fixture = Fixture::start();
    let first = get(fixture.address(), "/inventory.json", &[]);
    assert_eq!(first.status, 200);
    let etag = first.header("ETag").expect("inventory ETag").to_string();
    let again = get(
        fixture.address(),
        "/inventory.json",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304, "nothing changed");
    assert!(again.body.is_empty());
    assert_eq!(again.header("ETag"), Some(etag.as_str()));
    assert_eq!(
        get(
            fixture.address(),
            "/inventory.json",
            &[("If-None-Match", "\"other\"")]
        )
        .status,
        200
    );

    std::fs::write(fixture.root.join("games/new.db"), b"new").expect("write");
    let changed = get(
        fixture.address(),
        "/inventory.json",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(changed.status, 200, "a new file changes the inventory");
    assert_ne!(changed.header("ETag"), Some(etag.as_str()));
    assert!(changed.json()["files"]
        .as_array()
        .expect("files")
        .iter()
        .any(|f| f["path"] == "new.db"));
}

#[test]
fn full_download_has_etag_and_accepts_ranges() {
    let fixture = Fixture::start();
    let response = get(fixture.address(), "/files/games/sub/b.db", &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, pattern(1 << 20));
    assert_eq!(response.header("content-length"), Some("1048576"));
    assert_eq!(response.header("accept-ranges"), Some("bytes"));
    let etag = response.header("etag").expect("etag").to_string();
    assert!(etag.starts_with('"'));
    assert!(response.header("last-modified").is_some());

    let again = get(
        fixture.address(),
        "/files/games/sub/b.db",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    std::fs::write(fixture.root.join("games/sub/b.db"), b"changed").expect("rewrite");
    let file = std::fs::File::options()
        .write(true)
        .open(fixture.root.join("games/sub/b.db"))
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .expect("touch");
    let changed = get(fixture.address(), "/files/games/sub/b.db", &[]);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    assert_eq!(changed.body, b"changed");
}

#[test]
fn range_resume_returns_exactly_the_missing_bytes() {
    let fixture = Fixture::start();
    let content = pattern(1 << 20);
    let have = 300_000usize;
    let response = get(
        fixture.address(),
        "/files/games/sub/b.db",
        &[("Range", &format!("bytes={have}-"))],
    );
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes {have}-1048575/1048576").as_str())
    );
    assert_eq!(
        response.header("content-length"),
        Some((content.len() - have).to_string().as_str())
    );
    assert_eq!(response.body, content[have..]);
    let mut resumed = content[..have].to_vec();
    resumed.extend_from_slice(&response.body);
    assert_eq!(sha256_hex(&resumed), sha256_hex(&content));

    let middle = get(
        fixture.address(),
        "/files/games/sub/b.db",
        &[("Range", "bytes=10-19")],
    );
    assert_eq!(middle.status, 206);
    assert_eq!(middle.header("content-range"), Some("bytes 10-19/1048576"));
    assert_eq!(middle.body, content[10..20]);

    let tail = get(
        fixture.address(),
        "/files/games/sub/b.db",
        &[("Range", "bytes=-5")],
    );
    assert_eq!(tail.body, content[content.len() - 5..]);
}

#[test]
fn range_past_the_end_is_416_and_stale_if_range_sends_everything() {
    let fixture = Fixture::start();
    let response = get(
        fixture.address(),
        "/files/games/a.db",
        &[("Range", "bytes=3-")],
    );
    assert_eq!(response.status, 416);
    assert_eq!(response.header("content-range"), Some("bytes */3"));
    assert!(response.json()["error"].is_string());

    let stale = get(
        fixture.address(),
        "/files/games/a.db",
        &[("Range", "bytes=1-"), ("If-Range", "\"stale\"")],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, b"abc");
    let etag = get(fixture.address(), "/files/games/a.db", &[])
        .header("etag")
        .expect("etag")
        .to_string();
    let fresh = get(
        fixture.address(),
        "/files/games/a.db",
        &[("Range", "bytes=1-"), ("If-Range", &etag)],
    );
    assert_eq!(fresh.status, 206);
    assert_eq!(fresh.body, b"bc");
}

#[test]
fn checksum_is_correct_cached_and_follows_changes() {
    let fixture = Fixture::start();
    let response = get(fixture.address(), "/checksum/games/sub/b.db", &[]);
    assert_eq!(response.status, 200);
    let body = response.json();
    assert_eq!(body["sha256"], sha256_hex(&pattern(1 << 20)));
    assert_eq!(body["size"], 1 << 20);

    let inventory = get(fixture.address(), "/inventory.json", &[]).json();
    let listed = inventory["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "sub/b.db")
        .cloned();
    assert_eq!(
        listed.expect("listed")["sha256"],
        sha256_hex(&pattern(1 << 20)),
        "cached value shows in inventory"
    );

    let path = fixture.root.join("games/sub/b.db");
    std::fs::write(&path, b"abc").expect("rewrite");
    let file = std::fs::File::options()
        .write(true)
        .open(&path)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(10))
        .expect("touch");
    let changed = get(fixture.address(), "/checksum/games/sub/b.db", &[]).json();
    assert_eq!(changed["sha256"], sha256_hex(b"abc"));
    assert_eq!(changed["size"], 3);
}

#[test]
fn traversal_is_refused_in_every_form_and_never_serves_the_file() {
    let fixture = Fixture::start();
    let absolute = fixture.root.join("secret");
    let absolute = format!("/files/games/{}", absolute.display());
    let attempts: Vec<(String, &[u16])> = vec![
        ("/files/games/../secret".into(), &[400]),
        ("/files/games/../../secret".into(), &[400]),
        ("/files/games/sub/../../secret".into(), &[400]),
        ("/files/games/%2e%2e/secret".into(), &[400]),
        ("/files/games/%2E%2E/secret".into(), &[400]),
        ("/files/games/.%2e/secret".into(), &[400]),
        ("/files/games/..%2fsecret".into(), &[400]),
        ("/files/games/..%2Fsecret".into(), &[400]),
        ("/files/games/%2e%2e%2fsecret".into(), &[400]),
        ("/files/games/%252e%252e/secret".into(), &[400]),
        ("/files/games/..%5csecret".into(), &[400]),
        ("/files/games/..\\secret".into(), &[400]),
        ("/files/games/a.db%00".into(), &[400]),
        (absolute, &[400]),
        ("/files/games/%2ftmp/secret".into(), &[400]),
        ("/files/games/escape".into(), &[404]),
        ("/files/games/updir/secret".into(), &[404]),
        ("/files/nope/a.db".into(), &[404]),
        ("/files/../secret".into(), &[400, 404]),
        ("/files/%2e%2e/secret".into(), &[400, 404]),
        ("/files/games".into(), &[400, 404]),
        ("/files/games/sub".into(), &[404]),
        ("/files/games/missing.db".into(), &[404]),
    ];
    for endpoint in ["/files/", "/checksum/"] {
        for (attempt, statuses) in &attempts {
            let path = attempt.replacen("/files/", endpoint, 1);
            let response = get(fixture.address(), &path, &[]);
            assert!(
                statuses.contains(&response.status),
                "{path}: status {} not in {statuses:?}",
                response.status
            );
            assert!(
                !response.body.windows(SECRET.len()).any(|w| w == SECRET),
                "{path}: served the secret"
            );
            assert!(
                !response
                    .body
                    .windows(12)
                    .any(|w| w == &sha256_hex(SECRET).as_bytes()[..12]),
                "{path}: hashed the secret"
            );
            let error = response.json();
            assert!(
                error["error"].as_str().is_some_and(|text| !text.is_empty()),
                "{path}: {error}"
            );
        }
    }
}

#[test]
fn health_answers_while_a_large_download_is_stalled() {
    let fixture = Fixture::start();
    let big = fixture.root.join("games/big.db");
    std::fs::write(&big, pattern(32 << 20)).expect("write");
    let mut slow = TcpStream::connect_timeout(&fixture.address(), WAIT).expect("connect");
    slow.set_read_timeout(Some(WAIT)).expect("timeout");
    slow.write_all(b"GET /files/games/big.db HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut first = [0u8; 1024];
    slow.read_exact(&mut first).expect("download started");
    // The download now waits on a client that does not read; /health must still answer.
    let response = get(fixture.address(), "/health", &[]);
    assert_eq!(response.status, 200);
    drop(slow);
}

#[test]
fn test_hook_makes_health_hang_but_not_the_rest() {
    let fixture =
        Fixture::start_with(|options| options.test_hook_hang_health_after = Some(Duration::ZERO));
    let mut stream = TcpStream::connect_timeout(&fixture.address(), WAIT).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut buffer = [0u8; 64];
    let error = stream
        .read(&mut buffer)
        .expect_err("health must not answer");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{error}"
    );
    assert_eq!(get(fixture.address(), "/inventory.json", &[]).status, 200);
}

#[test]
fn a_port_in_use_is_a_clear_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = ServerOptions::new(dir.path(), "node-test");
    options.bind = address.clone();
    let error = BackgroundServer::start(options.clone())
        .err()
        .expect("must fail");
    assert!(
        matches!(error, DataServerError::AddressInUse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&address), "{error}");
    let standalone = actors::data_server::run_standalone(options).expect_err("must fail");
    assert!(
        standalone.to_string().contains("already in use"),
        "{standalone}"
    );
}

#[test]
fn categories_are_created_and_only_configured_ones_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = ServerOptions::new(dir.path().join("fresh"), "node-test");
    options.bind = "127.0.0.1:0".to_string();
    options.categories = [("elo".to_string(), PathBuf::from("ratings"))]
        .into_iter()
        .collect();
    let server = BackgroundServer::start(options).expect("starts");
    assert!(Path::new(&dir.path().join("fresh/ratings")).is_dir());
    std::fs::write(dir.path().join("fresh/ratings/elo.db"), b"elo").expect("write");
    assert_eq!(get(server.address(), "/files/elo/elo.db", &[]).body, b"elo");
    assert_eq!(
        get(server.address(), "/files/games/elo.db", &[]).status,
        404
    );
    server.stop().expect("stops");
}

/// Issue 13 item 7: `/health` answers only after a real file read (the probe in the root), so a server that cannot
/// read files is not healthy; the error it gives shows no server path.
#[test]
fn health_reads_a_real_file_and_fails_when_it_cannot() {
    let fixture = Fixture::start();
    let probe = fixture.root.join(actors::data_server::server::PROBE_NAME);
    assert!(probe.is_file(), "the server wrote its probe file");
    assert_eq!(get(fixture.address(), "/health", &[]).status, 200);
    let listed = get(fixture.address(), "/inventory.json", &[]).json();
    assert!(
        !listed
            .to_string()
            .contains(actors::data_server::server::PROBE_NAME),
        "the probe is never listed: {listed}"
    );

    // The probe replaced by a FIFO: the read is refused at once (no thread held), and /health says failing.
    std::fs::remove_file(&probe).expect("remove probe");
    let c_path = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
    let started = std::time::Instant::now();
    let response = get(fixture.address(), "/health", &[]);
    assert_eq!(response.status, 503);
    assert!(started.elapsed() < Duration::from_secs(5));
    let body = response.json();
    assert_eq!(body["status"], "failing");
    let root = fixture.root.to_string_lossy().to_string();
    assert!(!body.to_string().contains(&root), "{body}");
}
