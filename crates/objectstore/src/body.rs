//! Object bodies going in ([`Body`]) and coming out ([`ObjectBody`]): streams of chunks, so a
//! large object is never held whole in memory.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::error::{Error, Result};

/// The body of a put or a part upload: bytes in hand, or a stream of chunks read as they are
/// written.
pub struct Body {
    inner: Inner,
}

enum Inner {
    Chunks(VecDeque<Bytes>),
    Stream(BoxStream<'static, std::io::Result<Bytes>>),
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Chunks(chunks) => f
                .debug_struct("Body")
                .field("bytes", &chunks.iter().map(Bytes::len).sum::<usize>())
                .finish(),
            Inner::Stream(_) => f.debug_struct("Body").field("stream", &true).finish(),
        }
    }
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Self::from_chunks(Vec::new())
    }

    /// A body made of chunks already in memory.
    pub fn from_chunks(chunks: impl IntoIterator<Item = Bytes>) -> Self {
        Self {
            inner: Inner::Chunks(chunks.into_iter().collect()),
        }
    }

    /// A body read from `stream` as it is stored; an error from the stream aborts the write
    /// and leaves the previous object intact.
    pub fn from_stream(
        stream: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Inner::Stream(stream.boxed()),
        }
    }

    /// The next chunk, `None` at the end.
    pub(crate) async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        match &mut self.inner {
            Inner::Chunks(chunks) => chunks.pop_front().map(Ok),
            Inner::Stream(stream) => stream.next().await.map(|r| r.map_err(Error::Io)),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Self::from_chunks([bytes])
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

/// The body of a read: a stream of chunks of at most 1 MiB. It reads the object as it was when
/// the read began, even if the object is overwritten or deleted meanwhile.
pub struct ObjectBody {
    stream: BoxStream<'static, Result<Bytes>>,
    len: u64,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody")
            .field("len", &self.len)
            .finish()
    }
}

impl ObjectBody {
    pub(crate) fn new(stream: BoxStream<'static, Result<Bytes>>, len: u64) -> Self {
        Self {
            stream: stream.fuse().boxed(),
            len,
        }
    }

    pub(crate) fn empty() -> Self {
        Self::new(futures::stream::empty().boxed(), 0)
    }

    /// How many bytes the stream yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the stream yields no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the whole body into memory.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Storage`] when reading fails.
    pub async fn bytes(mut self) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
        while let Some(chunk) = self.stream.next().await {
            let chunk = chunk?;
            if out.is_empty() && chunk.len() as u64 == self.len {
                return Ok(chunk);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// The chunks as a boxed stream.
    pub fn into_stream(self) -> BoxStream<'static, Result<Bytes>> {
        self.stream
    }
}

impl Stream for ObjectBody {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}
