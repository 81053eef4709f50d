//! Parsing of the List Blobs XML answer (only the fields we use). Pure.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// One listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
    /// User metadata (only when listed with metadata); keys as stored.
    pub metadata: BTreeMap<String, String>,
}

/// The blobs of one page and the marker of the next page (if any).
pub(super) fn parse_page(xml: &str) -> (Vec<BlobItem>, Option<String>) {
    let mut items = Vec::new();
    let mut rest = xml;
    while let Some((blob, tail)) = element(rest, "Blob") {
        if let Some(name) = element(blob, "Name").map(|(n, _)| unescape(n)) {
            let size = element(blob, "Content-Length")
                .and_then(|(s, _)| s.trim().parse().ok())
                .unwrap_or(0);
            let last_modified = element(blob, "Last-Modified")
                .and_then(|(t, _)| httpdate::parse_http_date(t.trim()).ok());
            let metadata = element(blob, "Metadata")
                .map(|(m, _)| children(m))
                .unwrap_or_default();
            items.push(BlobItem {
                name,
                size,
                last_modified,
                metadata,
            });
        }
        rest = tail;
    }
    let marker = element(rest, "NextMarker")
        .map(|(m, _)| unescape(m))
        .filter(|m| !m.is_empty());
    (items, marker)
}

/// The content of the first `<tag>...</tag>` and the text after it.
fn element<'a>(xml: &'a str, tag: &str) -> Option<(&'a str, &'a str)> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some((&xml[start..end], &xml[end + close.len()..]))
}

/// `<a>1</a><b>2</b>` -> {a: 1, b: 2}; anything unparsable ends the list.
fn children(xml: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = xml.trim_start();
    while let Some(open) = rest.strip_prefix('<') {
        let Some(end) = open.find('>') else { break };
        let tag = &open[..end];
        if tag.is_empty() || tag.contains(['/', ' ']) {
            break;
        }
        let Some((value, tail)) = element(rest, tag) else {
            break;
        };
        out.insert(tag.to_string(), unescape(value));
        rest = tail.trim_start();
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `<Error><Code>..</Code><Message>..</Message></Error>` -> (code, message).
pub(super) fn parse_error(xml: &str) -> (String, String) {
    let code = element(xml, "Code")
        .map(|(c, _)| unescape(c))
        .unwrap_or_default();
    let message = element(xml, "Message")
        .map(|(m, _)| unescape(m).lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    (code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_sizes_and_next_marker() {
        let xml = "<?xml version=\"1.0\"?><EnumerationResults><Blobs>\
            <Blob><Name>a&amp;b.txt</Name><Properties><Content-Length>12</Content-Length></Properties></Blob>\
            <Blob><Name>dir/c</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>\
            </Blobs><NextMarker>m2</NextMarker></EnumerationResults>";
        let (items, marker) = parse_page(xml);
        let names: Vec<_> = items.iter().map(|i| (i.name.as_str(), i.size)).collect();
        assert_eq!(names, vec![("a&b.txt", 12), ("dir/c", 0)]);
        assert!(items.iter().all(|i| i.metadata.is_empty()));
        assert_eq!(marker.as_deref(), Some("m2"));
        let (_, none) =
            parse_page("<EnumerationResults><Blobs/><NextMarker /></EnumerationResults>");
        assert_eq!(none, None);
    }

    #[test]
    fn parses_last_modified_and_metadata() {
        let xml = "<EnumerationResults><Blobs><Blob><Name>m/x.json</Name><Properties>\
            <Last-Modified>Thu, 26 Mar 2026 19:05:29 GMT</Last-Modified><Content-Length>7</Content-Length>\
            </Properties><Metadata><amlops_sketch>0a,1b</amlops_sketch><note>a &amp; b</note></Metadata></Blob>\
            <Blob><Name>m/y.json</Name><Metadata /></Blob></Blobs></EnumerationResults>";
        let (items, _) = parse_page(xml);
        assert_eq!(
            items[0].last_modified,
            httpdate::parse_http_date("Thu, 26 Mar 2026 19:05:29 GMT").ok()
        );
        assert_eq!(
            items[0].metadata,
            BTreeMap::from([
                ("amlops_sketch".to_string(), "0a,1b".to_string()),
                ("note".to_string(), "a & b".to_string())
            ])
        );
        assert!(items[1].metadata.is_empty() && items[1].last_modified.is_none());
    }

    #[test]
    fn parses_storage_error_body() {
        let (code, message) = parse_error(
            "<Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:1</Message></Error>",
        );
        assert_eq!(code, "BlobNotFound");
        assert_eq!(message, "The specified blob does not exist.");
    }
}
