//! A response head for the filters' unit tests: the phases are driven by hand,
//! without Pingora's response type.

use super::HeaderEdit;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// A response head with a status, as the proxy's view gives one.
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl HeaderEdit for Resp {
    fn get(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.get(name)
    }
    fn get_all(&self, name: &HeaderName) -> http::header::GetAll<'_, HeaderValue> {
        self.headers.get_all(name)
    }
    fn set(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove(&mut self, name: &HeaderName) -> Option<HeaderValue> {
        self.headers.remove(name)
    }
    fn entries(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers.entries()
    }
    fn status(&self) -> Option<StatusCode> {
        Some(self.status)
    }
}
