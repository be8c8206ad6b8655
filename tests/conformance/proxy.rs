//! The forwarding half of the fault-injecting proxies: a request received by a wiremock
//! server, sent on unchanged to the real local server, and its answer handed back.

use std::io::Read;
use std::time::Duration;

use wiremock::{Request, ResponseTemplate};

pub struct Upstream {
    base: String,
    agent: ureq::Agent,
}

impl Upstream {
    pub fn new(base: &str) -> Upstream {
        Upstream {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(),
        }
    }

    /// The same request, aimed at the real server.
    fn request(&self, req: &Request) -> ureq::Request {
        let mut url = format!("{}{}", self.base, req.url.path());
        if let Some(q) = req.url.query() {
            url.push('?');
            url.push_str(q);
        }
        let mut r = self.agent.request(req.method.as_str(), &url);
        for (k, v) in &req.headers {
            if !matches!(k.as_str(), "host" | "content-length" | "connection") {
                r = r.set(k.as_str(), v.to_str().unwrap_or_default());
            }
        }
        r
    }

    /// Sends the request on and returns the real server's answer.
    pub fn forward(&self, req: &Request) -> ResponseTemplate {
        let resp = match self.request(req).send_bytes(&req.body) {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => return ResponseTemplate::new(502).set_body_string(e.to_string()),
        };
        let mut t = ResponseTemplate::new(resp.status());
        for name in resp.headers_names() {
            if !matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                for v in resp.all(&name) {
                    t = t.append_header(name.as_str(), v);
                }
            }
        }
        let mut body = Vec::new();
        let _ = resp.into_reader().read_to_end(&mut body);
        t.set_body_bytes(body)
    }

    /// The body of the real server's answer to a GET.
    pub fn forward_raw(&self, req: &Request) -> Vec<u8> {
        let mut body = Vec::new();
        match self.request(req).call() {
            Ok(resp) | Err(ureq::Error::Status(_, resp)) => {
                let _ = resp.into_reader().read_to_end(&mut body);
            }
            Err(_) => {}
        }
        body
    }
}
