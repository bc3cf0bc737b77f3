//! Pieces of the fixed newstyle handshake that need no connection state:
//! the greeting, option reply framing, and parsers for the data of
//! `NBD_OPT_INFO` / `NBD_OPT_GO` and the two metadata-context options.
//!
//! The parsers take untrusted bytes and fail with a short description of
//! what is wrong, which goes back to the client in `NBD_REP_ERR_INVALID`.

use crate::wire;

/// The server's greeting: `NBDMAGIC`, `IHAVEOPT`, handshake flags
/// (fixed newstyle, no zeroes).
pub(crate) fn greeting() -> [u8; 18] {
    let mut greeting = [0u8; 18];
    greeting[0..8].copy_from_slice(&wire::INIT_PASSWD.to_be_bytes());
    greeting[8..16].copy_from_slice(&wire::IHAVEOPT.to_be_bytes());
    greeting[16..18]
        .copy_from_slice(&(wire::FLAG_FIXED_NEWSTYLE | wire::FLAG_NO_ZEROES).to_be_bytes());
    greeting
}

/// The 20-byte header of an option reply whose data is `length` bytes.
pub(crate) fn option_reply_header(option: u32, reply_type: u32, length: u32) -> [u8; 20] {
    let mut header = [0u8; 20];
    header[0..8].copy_from_slice(&wire::OPTION_REPLY_MAGIC.to_be_bytes());
    header[8..12].copy_from_slice(&option.to_be_bytes());
    header[12..16].copy_from_slice(&reply_type.to_be_bytes());
    header[16..20].copy_from_slice(&length.to_be_bytes());
    header
}

/// The specification's name of an option, for messages.
pub(crate) fn option_name(option: u32) -> String {
    let name = match option {
        wire::OPT_EXPORT_NAME => "NBD_OPT_EXPORT_NAME",
        wire::OPT_ABORT => "NBD_OPT_ABORT",
        wire::OPT_LIST => "NBD_OPT_LIST",
        wire::OPT_INFO => "NBD_OPT_INFO",
        wire::OPT_GO => "NBD_OPT_GO",
        wire::OPT_STRUCTURED_REPLY => "NBD_OPT_STRUCTURED_REPLY",
        wire::OPT_LIST_META_CONTEXT => "NBD_OPT_LIST_META_CONTEXT",
        wire::OPT_SET_META_CONTEXT => "NBD_OPT_SET_META_CONTEXT",
        other => return format!("option {other}"),
    };
    name.to_owned()
}

/// The data of `NBD_OPT_INFO` and `NBD_OPT_GO`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InfoRequest<'a> {
    pub(crate) name: &'a [u8],
    /// The `NBD_INFO_*` types the client asks for (unknown ones included).
    pub(crate) requests: Vec<u16>,
}

/// The data of `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MetaContextRequest<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) queries: Vec<&'a [u8]>,
}

/// Parses `u32 name length, name, u16 count, count × u16`.
pub(crate) fn parse_info_request(data: &[u8]) -> Result<InfoRequest<'_>, &'static str> {
    let mut reader = Reader(data);
    let name_length = reader
        .u32()
        .ok_or("it is too short for the export name length")?;
    let name = reader
        .bytes(name_length)
        .ok_or("the export name runs past the end of the option")?;
    let count = reader
        .u16()
        .ok_or("it is too short for the number of information requests")?;
    let requests = (0..count)
        .map(|_| reader.u16())
        .collect::<Option<Vec<u16>>>()
        .ok_or("the information requests run past the end of the option")?;
    reader.finish()?;
    Ok(InfoRequest { name, requests })
}

/// Parses `u32 name length, name, u32 count, count × (u32 length, query)`.
pub(crate) fn parse_meta_context_request(
    data: &[u8],
) -> Result<MetaContextRequest<'_>, &'static str> {
    let mut reader = Reader(data);
    let name_length = reader
        .u32()
        .ok_or("it is too short for the export name length")?;
    let name = reader
        .bytes(name_length)
        .ok_or("the export name runs past the end of the option")?;
    let count = reader
        .u32()
        .ok_or("it is too short for the number of queries")?;
    // Every query takes at least 4 bytes, so a huge count fails here
    // without allocating for it.
    let mut queries = Vec::new();
    for _ in 0..count {
        let query = reader
            .u32()
            .and_then(|length| reader.bytes(length))
            .ok_or("a query runs past the end of the option")?;
        queries.push(query);
    }
    reader.finish()?;
    Ok(MetaContextRequest { name, queries })
}

/// A cursor over untrusted option data; every read checks the length.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, length: u32) -> Option<&'a [u8]> {
        let length = usize::try_from(length).ok()?;
        if length > self.0.len() {
            return None;
        }
        let (taken, rest) = self.0.split_at(length);
        self.0 = rest;
        Some(taken)
    }

    fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|bytes| wire::be_u16(bytes, 0))
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|bytes| wire::be_u32(bytes, 0))
    }

    fn finish(&self) -> Result<(), &'static str> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err("it has trailing bytes after the last field")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_request_with_name_and_two_requests_parses() {
        let data = [0, 0, 0, 2, b'r', b'0', 0, 2, 0, 1, 0, 3];
        let parsed = parse_info_request(&data).unwrap();
        assert_eq!(parsed.name, b"r0");
        assert_eq!(parsed.requests, vec![1, 3]);
    }

    #[test]
    fn info_request_framing_errors_are_reported() {
        assert!(parse_info_request(&[0, 0, 0]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 9, b'x', 0, 0]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 0, 0]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 0, 0, 1]).is_err());
        assert!(parse_info_request(&[0, 0, 0, 0, 0, 0, 7]).is_err());
        assert_eq!(
            parse_info_request(&[0, 0, 0, 0, 0, 0]).unwrap().requests,
            Vec::<u16>::new()
        );
    }

    #[test]
    fn meta_context_request_parses_queries_and_rejects_overruns() {
        let mut data = vec![0, 0, 0, 0, 0, 0, 0, 2];
        data.extend_from_slice(&[0, 0, 0, 5]);
        data.extend_from_slice(b"base:");
        data.extend_from_slice(&[0, 0, 0, 3]);
        data.extend_from_slice(b"x:y");
        let parsed = parse_meta_context_request(&data).unwrap();
        assert_eq!(parsed.name, b"");
        assert_eq!(parsed.queries, vec![&b"base:"[..], &b"x:y"[..]]);

        // A count of 2^32-1 with no queries fails quickly and cleanly.
        assert!(parse_meta_context_request(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A query longer than the data.
        assert!(parse_meta_context_request(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    }
}
