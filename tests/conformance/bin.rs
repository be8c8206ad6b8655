//! The built `offsite` binary as a user runs it: cheap keys, only the passwords given,
//! and what it prints; a one-request webhook receiver.

use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_offsite");

/// Runs offsite with only the passwords given in `env` (none inherited) and cheap keys.
pub fn with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("OFFSITE_KDF", "256,1,1")
        .env_remove("OFFSITE_PASSWORD")
        .env_remove("OFFSITE_TARGET_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("offsite runs")
}

pub fn offsite(args: &[&str], password: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = password
        .map(|p| ("OFFSITE_PASSWORD", p))
        .into_iter()
        .collect();
    with_env(args, &env)
}

pub fn ok(args: &[&str]) -> String {
    let o = offsite(args, Some("pw"));
    assert!(
        o.status.success(),
        "offsite {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

pub fn fails(args: &[&str], password: Option<&str>) -> (i32, String) {
    let o = offsite(args, password);
    assert!(!o.status.success(), "offsite {args:?} should have failed");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

pub fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(args)).expect("--json prints JSON")
}

/// A one-request HTTP receiver on loopback: its URL, and the body it is sent.
pub fn webhook_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut r = std::io::BufReader::new(stream.try_clone().unwrap());
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut w = stream;
        w.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        tx.send(String::from_utf8(body).unwrap()).unwrap();
    });
    (url, rx)
}
