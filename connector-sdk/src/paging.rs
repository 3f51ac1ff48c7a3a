//! Following page cursors safely: a guard that stops a listing whose cursor comes back, and a
//! drain in octocrab's `all_pages` shape (first page in, every item out) with the guard built in.
//!
//! A connector's `list` hands the host one page per call, and the host follows `next` with the
//! same [`CursorGuard`]. Inside a connector, a collection read in full (a scope discovery, a
//! group's members) goes through [`all_pages`]:
//!
//! ```
//! use idhost_connector_sdk::paging::all_pages;
//! use idhost_connector_sdk::{ConnectorError, Page, PageToken};
//!
//! async fn sites(page: PageToken) -> Result<Page<u32>, ConnectorError> {
//!     // One upstream request per call; here, three pages of two.
//!     let n: u32 = page.as_str().map_or(0, |t| t.parse().unwrap_or(0));
//!     let next = (n < 4).then(|| (n + 2).to_string());
//!     Ok(Page::new(vec![n, n + 1], next))
//! }
//!
//! # futures::executor::block_on(async {
//! let first = sites(PageToken::first()).await?;
//! let all = all_pages("sites", first, sites).await?;
//! assert_eq!(all, [0, 1, 2, 3, 4, 5]);
//! # Ok::<(), ConnectorError>(())
//! # }).unwrap();
//! ```

use std::collections::HashSet;
use std::future::Future;

use crate::connector::{Page, PageToken};
use crate::error::ConnectorError;

/// Most pages one guard follows: a listing past it is a cursor that never ends, not data.
pub const MAX_PAGES: usize = 1_000_000;

/// Most times [`all_pages`] starts over after a page asks for a relist before it gives up.
pub const MAX_RELISTS: usize = 5;

/// Remembers the cursors of one listing and refuses one that comes back: an upstream that
/// hands out a cursor twice would otherwise be paged for ever, or list records twice.
#[derive(Debug)]
pub struct CursorGuard {
    what: String,
    seen: HashSet<String>,
    pages: usize,
}

impl CursorGuard {
    /// A guard for the listing `what` (named in its errors, e.g. ``"`user` pages"``).
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            seen: HashSet::new(),
            pages: 0,
        }
    }

    /// The token to fetch after a page whose `next` is `next`: `Ok(None)` at the end, an error
    /// when the cursor was handed out before or the listing passed [`MAX_PAGES`].
    pub fn follow(&mut self, next: Option<&str>) -> Result<Option<PageToken>, ConnectorError> {
        self.pages += 1;
        let Some(next) = next else {
            return Ok(None);
        };
        if !self.seen.insert(next.to_owned()) {
            return Err(ConnectorError::internal(format!(
                "listing {}: page {} handed back cursor `{next}` a second time; stopping instead of \
                 looping",
                self.what, self.pages
            )));
        }
        if self.pages >= MAX_PAGES {
            return Err(ConnectorError::internal(format!(
                "listing {}: more than {MAX_PAGES} pages; stopping instead of paging for ever",
                self.what
            )));
        }
        Ok(Some(PageToken::from_string(next)))
    }

    /// Forgets every cursor, for a listing that starts over from its first page (a relist).
    pub fn restart(&mut self) {
        self.seen.clear();
        self.pages = 0;
    }

    /// Pages seen so far.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// Every item of a listing: the items of `first`, then of each page `fetch` returns for the
/// previous page's `next`, until a page has no `next` (octocrab's `all_pages`). A repeated
/// cursor is an error ([`CursorGuard`]). A page that asks for a relist ([`Page::relist`])
/// starts the listing over from the first page (fetched with [`PageToken::first`]), at most
/// [`MAX_RELISTS`] times.
pub async fn all_pages<T, F, Fut>(
    what: &str,
    first: Page<T>,
    mut fetch: F,
) -> Result<Vec<T>, ConnectorError>
where
    F: FnMut(PageToken) -> Fut,
    Fut: Future<Output = Result<Page<T>, ConnectorError>>,
{
    let mut guard = CursorGuard::new(what);
    let mut items = Vec::new();
    let mut relists = 0;
    let mut page = first;
    loop {
        if let Some(reason) = page.relist.take() {
            relists += 1;
            if relists > MAX_RELISTS {
                return Err(ConnectorError::unavailable(format!(
                    "listing {what}: the upstream's listing kept shifting while it was paged \
                     ({reason}); gave up after {MAX_RELISTS} fresh starts"
                )));
            }
            items.clear();
            guard.restart();
            page = fetch(PageToken::first()).await?;
            continue;
        }
        let next = guard.follow(page.next.as_deref())?;
        items.append(&mut page.items);
        match next {
            None => return Ok(items),
            Some(token) => page = fetch(token).await?,
        }
    }
}

/// [`all_pages`] from the first page: `fetch(PageToken::first())`, then onwards.
pub async fn drain<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>, ConnectorError>
where
    F: FnMut(PageToken) -> Fut,
    Fut: Future<Output = Result<Page<T>, ConnectorError>>,
{
    let first = fetch(PageToken::first()).await?;
    all_pages(what, first, fetch).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;

    #[test]
    fn a_repeated_cursor_stops_the_listing_with_an_error() {
        let mut guard = CursorGuard::new("`user` pages");
        assert!(guard.follow(Some("a")).expect("new").is_some());
        assert!(guard.follow(Some("b")).expect("new").is_some());
        let err = guard.follow(Some("a")).expect_err("repeated");
        assert!(err.message.contains("`a` a second time"), "{}", err.message);
        assert!(err.message.contains("`user` pages"), "{}", err.message);
        assert_eq!(guard.follow(None).expect("end"), None);
        guard.restart();
        assert!(guard.follow(Some("a")).expect("after a restart").is_some());
    }

    #[test]
    fn drain_follows_next_until_the_end_and_refuses_a_loop() {
        let pages = |token: PageToken| async move {
            Ok::<_, ConnectorError>(match token.as_str() {
                None => Page::new(vec![1, 2], Some("p2".into())),
                Some("p2") => Page::new(vec![3], Some("p3".into())),
                _ => Page::last(vec![4]),
            })
        };
        assert_eq!(block_on(drain("n", pages)).expect("drains"), [1, 2, 3, 4]);
        let looping = |_token: PageToken| async {
            Ok::<_, ConnectorError>(Page::new(vec![0], Some("same".into())))
        };
        let err = block_on(drain("n", looping)).expect_err("loops");
        assert!(err.message.contains("second time"), "{}", err.message);
    }

    #[test]
    fn a_relist_page_starts_over_and_a_listing_that_never_settles_fails() {
        let calls = std::cell::Cell::new(0);
        let shifting = |token: PageToken| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                Ok::<_, ConnectorError>(match (token.as_str(), n) {
                    (None, _) => Page::new(vec![n], Some("p2".into())),
                    // The first time page 2 is asked for, the upstream had shifted.
                    (Some(_), 2) => Page::relist("total changed from 3 to 2"),
                    (Some(_), _) => Page::last(vec![n]),
                })
            }
        };
        assert_eq!(block_on(drain("n", shifting)).expect("settles"), [3, 4]);
        let never = |_token: PageToken| async {
            Ok::<_, ConnectorError>(Page::<u8>::relist("always moving"))
        };
        let err = block_on(drain("n", never)).expect_err("gives up");
        assert!(err.message.contains("always moving"), "{}", err.message);
    }
}
