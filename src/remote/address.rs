//! Where the runner finds its appliances. A URL (`https://host:port`) is one appliance.
//! `dns+https://NAME:PORT` is every address NAME resolves to, each one appliance —
//! requests still name NAME, and TLS is verified against it — resolved afresh each time
//! a pool is made: the shape of a Kubernetes headless Service, ECS Cloud Map multi-value
//! records and Azure private DNS. `dns+http://` is allowed only when every address is
//! a loopback one (tokens would otherwise cross the network in the clear).

use std::net::SocketAddr;

use async_trait::async_trait;

use super::client::Appliance;
use crate::{Error, Result};

/// Turns a host name into addresses; the system's resolver, or a test's.
#[async_trait]
pub trait Resolve: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (getaddrinfo, as every other program on the host).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// How an entry of `--via` / `urls` names its appliances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// One appliance at this URL.
    Url(String),
    /// Every address `host` resolves to; requests go to `url` (`http(s)://host:port`).
    Dns {
        url: String,
        host: String,
        port: u16,
    },
}

impl Address {
    pub fn parse(s: &str) -> Result<Address> {
        let s = s.trim();
        let bad = |why: &str| Error::Invalid(format!("archiver address {s:?}: {why}"));
        let Some(rest) = s.strip_prefix("dns+") else {
            return Ok(Address::Url(s.to_string()));
        };
        let url = reqwest::Url::parse(rest).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(
                "use dns+https://NAME:PORT (or dns+http:// on loopback)",
            ));
        }
        let host = url.host_str().ok_or_else(|| bad("no host name"))?;
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        if url.path() != "/" || url.query().is_some() {
            return Err(bad("a name and a port only (dns+https://NAME:PORT)"));
        }
        Ok(Address::Dns {
            url: format!("{}://{host}:{port}", url.scheme()),
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }
}

/// The appliances `entries` name, each name resolved now: one [`Appliance`] per URL,
/// and one per address of a `dns+` name (reached as the name, at that address).
pub async fn appliances(
    entries: &[String],
    token: &str,
    ca: Option<&[u8]>,
    resolver: &dyn Resolve,
) -> Result<Vec<Appliance>> {
    let mut out = Vec::new();
    for entry in entries {
        match Address::parse(entry)? {
            Address::Url(url) => out.push(Appliance::new(&url, token, ca)?),
            Address::Dns { url, host, port } => {
                let mut addrs = resolver.resolve(&host, port).await.map_err(|e| {
                    Error::Invalid(format!(
                        "archiver address {entry}: {host} does not resolve: {e}"
                    ))
                })?;
                addrs.sort();
                addrs.dedup();
                if addrs.is_empty() {
                    return Err(Error::Invalid(format!(
                        "archiver address {entry}: {host} resolves to no address"
                    )));
                }
                if url.starts_with("http://") && addrs.iter().any(|a| !a.ip().is_loopback()) {
                    return Err(Error::Invalid(format!(
                        "archiver address {entry}: plain HTTP to an address beyond loopback \
                         would send the token in the clear; use dns+https://"
                    )));
                }
                tracing::info!("archivers: {host} resolves to {} address(es)", addrs.len());
                for a in addrs {
                    out.push(Appliance::pinned(&url, a, token, ca)?);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("https://a.example:8443").unwrap(),
            Address::Url("https://a.example:8443".into())
        );
        assert_eq!(
            Address::parse("dns+https://archiver.backup.svc:8443").unwrap(),
            Address::Dns {
                url: "https://archiver.backup.svc:8443".into(),
                host: "archiver.backup.svc".into(),
                port: 8443,
            }
        );
        assert_eq!(
            Address::parse("dns+https://archivers").unwrap(),
            Address::Dns {
                url: "https://archivers:443".into(),
                host: "archivers".into(),
                port: 443,
            }
        );
        for bad in ["dns+ftp://x:1", "dns+https://x:1/path", "dns+nonsense"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    struct Fixed(Vec<SocketAddr>);

    #[async_trait]
    impl Resolve for Fixed {
        async fn resolve(&self, _: &str, _: u16) -> std::io::Result<Vec<SocketAddr>> {
            Ok(self.0.clone())
        }
    }

    #[tokio::test]
    async fn a_name_is_every_address_it_resolves_to() {
        let two = Fixed(vec![
            "127.0.0.2:9000".parse().unwrap(),
            "127.0.0.1:9000".parse().unwrap(),
        ]);
        let apps = appliances(&["dns+http://archivers:9000".into()], "t", None, &two)
            .await
            .unwrap();
        let urls: Vec<&str> = apps.iter().map(|a| a.url()).collect();
        assert_eq!(
            urls,
            [
                "http://archivers:9000 (127.0.0.1:9000)",
                "http://archivers:9000 (127.0.0.2:9000)"
            ]
        );
        let far = Fixed(vec!["10.0.0.7:9000".parse().unwrap()]);
        let plain = appliances(&["dns+http://archivers:9000".into()], "t", None, &far).await;
        assert!(plain.is_err());
        let tls = appliances(&["dns+https://archivers:9000".into()], "t", None, &far).await;
        assert_eq!(tls.unwrap().len(), 1);
        let nothing = Fixed(vec![]);
        let none = appliances(&["dns+https://archivers:9000".into()], "t", None, &nothing).await;
        assert!(none.is_err());
    }
}
