//! The service catalog of a Keystone token, endpoint selection (type, then interface, then
//! region) and the endpoint URL forms real clouds register.

use serde::Deserialize;

/// One catalog entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Service {
    /// Service type (`compute`, `network`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its endpoints.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint of a service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// `public`, `internal` or `admin`.
    pub interface: String,
    /// Region id.
    #[serde(default)]
    pub region_id: Option<String>,
    /// Older region field.
    #[serde(default)]
    pub region: Option<String>,
    /// The URL (templates already substituted by Keystone).
    pub url: String,
}

/// The endpoint URL of `kind`: the first of `interfaces` present, in `region` if given.
pub fn find<'a>(
    catalog: &'a [Service],
    kind: &str,
    interfaces: &[String],
    region: Option<&str>,
) -> Option<&'a str> {
    let service = catalog.iter().find(|s| s.kind == kind)?;
    interfaces.iter().find_map(|interface| {
        service
            .endpoints
            .iter()
            .filter(|e| &e.interface == interface)
            .find(|e| match region {
                None => true,
                Some(r) => e.region_id.as_deref() == Some(r) || e.region.as_deref() == Some(r),
            })
            .map(|e| e.url.as_str())
    })
}

fn looks_like_project_id(segment: &str) -> bool {
    segment.len() >= 16 && segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Nova's endpoint in any registered form (`…:8774`, `…/v2`, `…/v2.1`, with or without the
/// project id, with or without a trailing slash) → the `…/v2.1` base that `/servers/{id}` is
/// appended to. The project id is dropped: the service token's project is implied.
pub fn compute_base(url: &str) -> String {
    let mut base = url.trim_end_matches('/');
    if let Some((head, last)) = base.rsplit_once('/')
        && (looks_like_project_id(last) || last.starts_with("%("))
    {
        base = head;
    }
    let base = base.trim_end_matches('/');
    for suffix in ["/v2.1", "/v2"] {
        if let Some(root) = base.strip_suffix(suffix) {
            return format!("{root}/v2.1");
        }
    }
    format!("{base}/v2.1")
}

/// Neutron's endpoint with or without `/v2.0` → the `…/v2.0` base.
pub fn network_base(url: &str) -> String {
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/v2.0").unwrap_or(base);
    format!("{base}/v2.0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_forms() {
        let p = "42f5af63d3594b3e9c20a5c0911b9925";
        for url in [
            "http://nova:8774/v2.1".to_owned(),
            "http://nova:8774/v2.1/".to_owned(),
            format!("http://nova:8774/v2.1/{p}"),
            format!("http://nova:8774/v2/{p}"),
            "http://nova:8774".to_owned(),
            "http://nova:8774/".to_owned(),
        ] {
            assert_eq!(compute_base(&url), "http://nova:8774/v2.1", "{url}");
        }
        assert_eq!(
            compute_base("https://cloud/compute/v2.1/"),
            "https://cloud/compute/v2.1"
        );
        assert_eq!(
            compute_base("https://cloud/compute"),
            "https://cloud/compute/v2.1"
        );
    }

    #[test]
    fn network_forms() {
        for url in [
            "http://n:9696",
            "http://n:9696/",
            "http://n:9696/v2.0",
            "http://n:9696/v2.0/",
        ] {
            assert_eq!(network_base(url), "http://n:9696/v2.0");
        }
        assert_eq!(
            network_base("https://cloud/network"),
            "https://cloud/network/v2.0"
        );
    }

    #[test]
    fn selection_by_interface_and_region() {
        let catalog: Vec<Service> = serde_json::from_value(serde_json::json!([
            {"type": "identity", "endpoints": [{"interface": "public", "url": "k"}]},
            {"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "R1", "url": "pub1"},
                {"interface": "internal", "region_id": "R2", "url": "int2"},
                {"interface": "internal", "region_id": "R1", "url": "int1"}]}
        ]))
        .unwrap();
        let both = ["internal".to_owned(), "public".to_owned()];
        assert_eq!(find(&catalog, "compute", &both, Some("R1")), Some("int1"));
        assert_eq!(find(&catalog, "compute", &both, None), Some("int2"));
        assert_eq!(find(&catalog, "compute", &both[1..], Some("R2")), None);
        assert_eq!(find(&catalog, "network", &both, None), None);
    }
}
