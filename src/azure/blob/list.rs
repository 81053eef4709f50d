//! Parsing of the List Blobs XML answer (only the fields we use). Pure.

/// One listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
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
            items.push(BlobItem { name, size });
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
        assert_eq!(
            items,
            vec![
                BlobItem {
                    name: "a&b.txt".into(),
                    size: 12
                },
                BlobItem {
                    name: "dir/c".into(),
                    size: 0
                }
            ]
        );
        assert_eq!(marker.as_deref(), Some("m2"));
        let (_, none) =
            parse_page("<EnumerationResults><Blobs/><NextMarker /></EnumerationResults>");
        assert_eq!(none, None);
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
