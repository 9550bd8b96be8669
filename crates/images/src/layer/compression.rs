//! Layer compression: gzip, zstd or none.

use std::io::{BufReader, Read};

use super::error::LayerError;

pub use crate::manifest::Compression;

/// Wraps `r` in a decoder for `compression`. The decoded stream is unbounded: bound it
/// with [`Limits::max_input_bytes`](super::Limits::max_input_bytes) (which
/// [`apply`](super::apply) does), so a decompression bomb stops there. zstd frames that
/// ask for a window above 128 MiB are refused by the decoder's default limit.
pub fn decompress<'a, R: Read + Send + 'a>(
    r: R,
    compression: Compression,
) -> Result<Box<dyn Read + Send + 'a>, LayerError> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(r))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(r)
                .map_err(|source| LayerError::Decompress { source })?,
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trips_each_compression() {
        let data = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&data[..], 3).unwrap();
        for (blob, c) in [
            (data.clone(), Compression::None),
            (gz, Compression::Gzip),
            (zst, Compression::Zstd),
        ] {
            assert_eq!(Compression::detect(&blob), c);
            let mut out = Vec::new();
            decompress(&blob[..], c)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data);
        }
    }
}
