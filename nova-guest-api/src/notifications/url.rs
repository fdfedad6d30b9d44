//! oslo.messaging's transport URL, `rabbit://user:pass@host:port[,user:pass@host:port...]/vhost`
//! (oslo_messaging/transport.py `TransportURL.parse`): several hosts are tried in order
//! (failover). A host without credentials takes the previous host's, as a URL such as
//! `rabbit://u:p@a:5672,b:5672/` means; user, password and vhost are percent-decoded; an
//! empty vhost is RabbitMQ's default `/`. `Debug` and [`TransportUrl::redacted`] never show
//! a password.

use std::fmt;

use nova_guest_conf::Secret;

/// One broker of the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Port (default 5672).
    pub port: u16,
    /// User name.
    pub username: String,
    /// Password.
    pub password: Secret,
}

impl Broker {
    /// `host:port`, for logs (no credentials).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:***@{}", self.username, self.address())
    }
}

/// A parsed transport URL.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    /// The brokers, in the order to try them.
    pub brokers: Vec<Broker>,
    /// The virtual host.
    pub vhost: String,
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Percent-decodes `s` (`%2F` → `/`).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding that is not UTF-8".to_owned())
}

impl TransportUrl {
    /// Parses a URL. Errors never contain the password.
    ///
    /// # Errors
    ///
    /// Another scheme than `rabbit://` (or its aliases `kombu://`, `amqp://`), no host, a bad
    /// port, a query string (TLS and other options are not supported), bad percent-encoding.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("expected rabbit://user:pass@host:port/vhost")?;
        if !matches!(scheme, "rabbit" | "kombu" | "amqp") {
            return Err(format!(
                "only the rabbit driver is supported (got {scheme}://)"
            ));
        }
        if rest.contains('?') {
            return Err("query options (ssl=..., ...) are not supported".into());
        }
        let (hosts, vhost) = rest.split_once('/').unwrap_or((rest, ""));
        let vhost = decode(vhost)?;
        let vhost = if vhost.is_empty() { "/".into() } else { vhost };
        let mut brokers: Vec<Broker> = Vec::new();
        for part in hosts.split(',') {
            // The credentials end at the last '@' (a password may hold one, percent-encoded or
            // not).
            let (userinfo, hostport) = match part.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, part),
            };
            let (username, password) = match userinfo {
                Some(u) => {
                    let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                    (decode(user)?, Secret::new(decode(pass)?))
                }
                None => match brokers.last() {
                    Some(prev) => (prev.username.clone(), prev.password.clone()),
                    None => ("guest".to_owned(), Secret::new("guest")),
                },
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, after) = v6.split_once(']').ok_or("unclosed [ in a host")?;
                (h.to_owned(), after.strip_prefix(':'))
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_owned(), Some(p)),
                    None => (hostport.to_owned(), None),
                }
            };
            if host.is_empty() {
                return Err("a host is empty".into());
            }
            let port = match port {
                None | Some("") => 5672,
                Some(p) => p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("bad port {p:?} for host {host}"))?,
            };
            brokers.push(Broker {
                host,
                port,
                username,
                password,
            });
        }
        Ok(Self { brokers, vhost })
    }

    /// The URL with every password replaced by `***`.
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self.brokers.iter().map(|b| format!("{b:?}")).collect();
        // RabbitMQ's default vhost `/` is oslo's empty one.
        let vhost = if self.vhost == "/" { "" } else { &self.vhost };
        format!("rabbit://{}/{vhost}", hosts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oslo_forms() {
        let u = TransportUrl::parse("rabbit://guest:guest@127.0.0.1:25999/").unwrap();
        assert_eq!(u.vhost, "/");
        assert_eq!(u.brokers.len(), 1);
        assert_eq!(u.brokers[0].address(), "127.0.0.1:25999");
        let u = TransportUrl::parse(
            "rabbit://openstack:p%40ss@rabbit-1:5672,rabbit-2,other:x@[fd00::3]:5673/nova",
        )
        .unwrap();
        assert_eq!(u.vhost, "nova");
        assert_eq!(u.brokers[0].password.expose(), "p@ss");
        assert_eq!(u.brokers[1].host, "rabbit-2");
        assert_eq!(u.brokers[1].port, 5672);
        assert_eq!(u.brokers[1].username, "openstack", "inherits credentials");
        assert_eq!(u.brokers[2].host, "fd00::3");
        assert_eq!(u.brokers[2].address(), "[fd00::3]:5673");
        assert_eq!(
            TransportUrl::parse("rabbit://a:b@h/%2F").unwrap().vhost,
            "/"
        );
    }

    #[test]
    fn errors_and_redaction() {
        for bad in [
            "http://h/",
            "rabbit://u:p@:5672/",
            "rabbit://u:p@h:99999/",
            "rabbit://u:p@h/?ssl=1",
            "rabbit://u:p%zz@h/",
            "h:5672",
        ] {
            let e = TransportUrl::parse(bad).unwrap_err();
            assert!(!e.contains("p%zz"), "{e}");
        }
        let u = TransportUrl::parse("rabbit://svc:s3cret@h1:5672,h2:5672/v").unwrap();
        let shown = format!("{u:?} {}", u.redacted());
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(u.redacted(), "rabbit://svc:***@h1:5672,svc:***@h2:5672/v");
        let u = TransportUrl::parse("rabbit://svc:s3cret@h1/").unwrap();
        assert_eq!(u.redacted(), "rabbit://svc:***@h1:5672/");
    }
}
