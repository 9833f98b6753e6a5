//! The DirSync control (`1.2.840.113556.1.4.841`, MS-ADTS 3.1.1.3.4.1.3), encoded and
//! decoded by hand (three BER fields each way).
//!
//! In: the cookie of the last DirSync search (empty for the first). Out: the request
//! control; and, from a search's response controls, whether more results wait and the next
//! cookie. Pure.

use ldap3::asn1::{StructureTag, parse_tag, parse_uint};
use ldap3::controls::{Control, RawControl};

pub const OID: &str = "1.2.840.113556.1.4.841";

/// A BER length.
fn length(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
}

fn field(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    length(content.len(), out);
    out.extend_from_slice(content);
}

/// `SEQUENCE { flags 0, maxBytes 0 (the server's default), cookie }`, critical.
pub fn request(cookie: &[u8]) -> RawControl {
    let mut inner = Vec::with_capacity(cookie.len() + 16);
    field(0x02, &[0], &mut inner);
    field(0x02, &[0], &mut inner);
    field(0x04, cookie, &mut inner);
    let mut value = Vec::with_capacity(inner.len() + 4);
    field(0x30, &inner, &mut value);
    RawControl {
        ctype: OID.to_owned(),
        crit: true,
        val: Some(value),
    }
}

/// `(more results wait, next cookie)` from the response control
/// `SEQUENCE { moreResults, unused, cookie }`; `None` when absent or malformed.
pub fn response(controls: &[Control]) -> Option<(bool, Vec<u8>)> {
    let raw = controls.iter().find(|c| c.1.ctype == OID)?;
    let (_, tag) = parse_tag(raw.1.val.as_deref()?).ok()?;
    let mut fields = tag.expect_constructed()?.into_iter();
    let more = integer(fields.next()?)?;
    fields.next()?;
    let cookie = fields.next()?.expect_primitive()?;
    Some((more != 0, cookie))
}

fn integer(tag: StructureTag) -> Option<u64> {
    let bytes = tag.expect_primitive()?;
    parse_uint(&bytes).ok().map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_ber_and_a_response_decodes() {
        let cookie = vec![7u8; 200];
        let request = request(&cookie);
        let value = request.val.clone().expect("a value");
        // SEQUENCE, long-form length 209, INTEGER 0, INTEGER 0, OCTET STRING of 200.
        assert_eq!(&value[..9], [0x30, 0x81, 209, 2, 1, 0, 2, 1, 0]);
        assert_eq!(&value[9..12], [4, 0x81, 200]);
        assert!(request.crit);

        // A response has the same shape: moreResults 1, unused 0, the cookie.
        let mut inner = Vec::new();
        field(0x02, &[1], &mut inner);
        field(0x02, &[0], &mut inner);
        field(0x04, b"next", &mut inner);
        let mut val = Vec::new();
        field(0x30, &inner, &mut val);
        let control = Control(
            None,
            RawControl {
                ctype: OID.to_owned(),
                crit: false,
                val: Some(val),
            },
        );
        assert_eq!(response(&[control]), Some((true, b"next".to_vec())));
        assert_eq!(response(&[]), None);
    }
}
