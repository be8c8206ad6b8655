//! A container's health probe without curl in the image: `offsite job probe` (the
//! runner's `/health`) and `offsite-archiver probe` (the appliance's `/v1/ready`) GET a
//! URL on this host and exit 0 on a 2xx answer — for Docker's HEALTHCHECK and ECS
//! health checks, which run a command inside the container.

use std::time::Duration;

/// How long a probe waits for its answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `url` (on a loopback address: a probe never leaves the host); the status when
/// it answers 2xx, else what is wrong. An appliance's certificate names its service,
/// not 127.0.0.1, so a probe over TLS does not check the name or the issuer — it
/// sends no token and reads nothing but the status.
pub async fn probe(url: &str) -> Result<u16, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if !loopback {
        return Err(format!(
            "{url}: a probe looks at this host only (127.0.0.1, ::1, localhost)"
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = answer.status();
    match status.is_success() {
        true => Ok(status.as_u16()),
        false => Err(format!("{url}: answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_only_this_host_and_wants_2xx() {
        assert!(
            probe("http://192.0.2.1:9184/health")
                .await
                .unwrap_err()
                .contains("this host only")
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for answer in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let r =
                    format!("HTTP/1.1 {answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                s.write_all(r.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://{addr}/health");
        assert_eq!(probe(&url).await, Ok(200));
        assert!(probe(&url).await.unwrap_err().contains("503"));
    }
}
