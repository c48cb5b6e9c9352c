//! Request and response bodies on our side of hyper, in buffers that are wiped when dropped:
//! request bodies carry plaintext (Encrypt, GenerateMac, Sign), responses carry plaintext and
//! data keys (Decrypt, GenerateDataKey*, GenerateRandom, DeriveSharedSecret).
//!
//! What we own is wiped: the collected request body (each frame is copied into a
//! [`Zeroizing`] buffer that grows by moving to a larger wiped buffer, never by `realloc`,
//! which would leave the old copy behind; a frame we hold the only reference to is wiped too)
//! and the serialized response (written into a buffer of its exact size, handed to hyper as
//! [`Bytes`] whose owner wipes it when hyper drops it after writing). What we cannot reach:
//! hyper's connection read buffer (the request bytes stay there until the next read overwrites
//! them), hyper's write buffer when it copies a small body into it instead of writing it
//! vectored (always with TLS), and rustls's record buffers. Those live as long as the
//! connection and are reused, not freed.

use axum::body::{Body, Bytes, HttpBody};
use http_body_util::BodyExt;
use zeroize::{Zeroize, Zeroizing};

use super::error::ProtocolError;

/// Reads a request body up to `max` bytes into a wiped buffer: beyond it (declared or sent)
/// RequestEntityTooLarge, and a body that stalls past the listener's body timeout
/// RequestTimeout.
pub(crate) async fn read_body(
    mut body: Body,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let hint = body.size_hint();
    if hint.lower() > max as u64 {
        return Err(ProtocolError::RequestEntityTooLarge);
    }
    // The declared length (bounded by `max`) sizes the buffer once.
    let declared = hint.exact().map_or(0, |n| n.min(max as u64) as usize);
    let mut out = Zeroizing::new(Vec::with_capacity(declared));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if serve::is_body_timeout(&e) {
                ProtocolError::RequestTimeout
            } else {
                ProtocolError::RequestEntityTooLarge
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing of ours
        };
        if out.len() + data.len() > max {
            wipe_frame(data);
            return Err(ProtocolError::RequestEntityTooLarge);
        }
        append(&mut out, &data);
        wipe_frame(data);
    }
    Ok(out)
}

/// Appends without `realloc`: a full buffer moves to a new one of twice the size, and the old
/// one is wiped as it is dropped.
fn append(out: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    let needed = out.len() + data.len();
    if needed > out.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * out.capacity())));
        bigger.extend_from_slice(out);
        *out = bigger;
    }
    out.extend_from_slice(data);
}

/// Wipes a received frame when nobody else holds its bytes (hyper often still does: the frame
/// is a view of its read buffer, and then the bytes are left to it).
fn wipe_frame(data: Bytes) {
    if let Ok(mut owned) = data.try_into_mut() {
        owned[..].zeroize();
    }
}

/// A response body that is wiped when hyper drops it (after writing it).
pub(crate) fn wiped(bytes: Zeroizing<Vec<u8>>) -> Body {
    Body::from(Bytes::from_owner(bytes))
}

/// Serializes a response into a wiped buffer of its exact size (a growing `Vec` would leave
/// copies of the plaintext behind in the memory it gave back).
pub(crate) fn to_wiped_json<T: serde::Serialize>(
    value: &T,
) -> serde_json::Result<Zeroizing<Vec<u8>>> {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value)?;
    let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
    serde_json::to_writer(&mut *out, value)?;
    Ok(out)
}

/// Counts what is written (the size pass of [`to_wiped_json`]).
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A body sent in `chunks` frames without a declared length.
    fn streamed(chunks: Vec<Vec<u8>>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from(c)));
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_in_many_frames_is_read_whole_and_bounded() {
        let chunks: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
        let expected: Vec<u8> = chunks.concat();
        let got = read_body(streamed(chunks.clone()), expected.len())
            .await
            .unwrap();
        assert_eq!(&got[..], &expected[..]);
        // One byte over the limit, sent without a declared length.
        assert!(matches!(
            read_body(streamed(chunks), expected.len() - 1).await,
            Err(ProtocolError::RequestEntityTooLarge)
        ));
        // A declared length over the limit is refused before reading.
        assert!(matches!(
            read_body(Body::from(vec![1u8; 10]), 9).await,
            Err(ProtocolError::RequestEntityTooLarge)
        ));
        assert_eq!(
            &read_body(Body::from(vec![1u8; 10]), 10).await.unwrap()[..],
            &[1u8; 10][..]
        );
        assert!(read_body(Body::empty(), 0).await.unwrap().is_empty());
    }

    #[test]
    fn growth_moves_to_a_new_buffer_and_keeps_the_bytes() {
        let mut out = Zeroizing::new(Vec::with_capacity(4));
        append(&mut out, b"abcd");
        assert_eq!(out.capacity(), 4);
        append(&mut out, b"e");
        assert_eq!(&out[..], b"abcde");
        assert!(out.capacity() >= 8);
    }

    #[test]
    fn a_response_is_serialized_into_a_buffer_of_its_exact_size() {
        let v = serde_json::json!({"Plaintext": "c2VjcmV0", "KeyId": "k", "n": [1, 2, 3]});
        let wiped = to_wiped_json(&v).unwrap();
        assert_eq!(&wiped[..], serde_json::to_vec(&v).unwrap().as_slice());
        assert_eq!(wiped.capacity(), wiped.len());
    }
}
