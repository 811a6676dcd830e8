"""Listing a REST service's objects of one type, as pure functions of its answers: `PageWalk` says which
page to ask for next and reads the rows out of each answer. The connector sends the requests.

Paging styles (`list.paging.style`), each sending `size_param=size` too:

* `none`: one request answers every object.
* `offset`: `offset_param` (0, then the number of objects read so far) and the page size; the last page
  is the first one shorter than `size`.
* `page`: `page_param` from `first_page` up, the last page as for offset.
* `cursor`: the next page's cursor is at `cursor_path` in the answer, sent back as `cursor_param`; the
  last page has none (null, empty or absent).
* `link`: the next page is the `Link: <url>; rel="next"` header's URL, followed only below the
  service's `url` (credentials go with every request, so never to another host); the last page has none.

An object listed twice (offsets shift when objects come or go meanwhile) or a cursor that comes back
makes the listing incomplete: an error, never a guess, since an object left out would look absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from common.errors import PermanentError, TransientError
from workers.connectors.rest.settings import ObjectSettings
from workers.connectors.rest.templates import Unfilled, as_text


class PageWalk:
    """The pages of one listing in order; `request` is the next one's path and query until `done`."""

    def __init__(self, kind: str, spec: ObjectSettings, fields: Sequence[str], base_url: str) -> None:
        if spec.listing is None:
            raise PermanentError(f"{kind}s cannot be listed: the target has no `list:` for them")
        self._kind = kind
        self._spec = spec
        self._listing = spec.listing
        self._paths = [spec.attribute_path(name) for name in fields]
        self._base_url = base_url
        self._seen: set[str] = set()
        self._cursors: set[str] = set()
        self._page = spec.paging.first_page
        try:
            self._path, self._query = self._listing.url.render({})
        except Unfilled as exc:
            raise PermanentError(f"list: {exc}: a listing URL takes no placeholder") from None
        self.done = False
        self.request: tuple[str, str] = (self._path, self._with(self._first_params()))

    def read(self, body: Any, next_url: str | None) -> list[list[Any]]:
        """The rows of the page just answered (`body`, the answer's `Link` next URL), and the next
        request set, or `done`."""
        items = self._listing.path.get(body)
        if not isinstance(items, list):
            raise self._incomplete(f"the answer holds no list at {self._listing.path}")
        rows = [self._row(item) for item in items]
        paging = self._spec.paging
        style = paging.style
        if style == "none":
            self.done = True
        elif style in ("offset", "page"):
            self._page += 1
            self.done = len(items) < paging.size
            offset = (
                (paging.offset_param, len(self._seen))
                if style == "offset"
                else (paging.page_param, self._page)
            )
            self.request = (self._path, self._with([offset, (paging.size_param, paging.size)]))
        elif style == "cursor":
            cursor = paging.cursor_path.get(body)
            self.done = cursor in (None, "")
            if not self.done:
                if as_text(cursor) in self._cursors:
                    raise self._incomplete(f"cursor {cursor!r} came back")
                self._cursors.add(as_text(cursor))
                params = [(paging.cursor_param, cursor), (paging.size_param, paging.size)]
                self.request = (self._path, self._with(params))
        else:
            self.done = next_url is None
            if next_url is not None:
                self.request = self._below_service(next_url)
        return rows

    def _first_params(self) -> list[tuple[str, Any]]:
        paging = self._spec.paging
        if paging.style == "none":
            return []
        if paging.style == "offset":
            return [(paging.offset_param, 0), (paging.size_param, paging.size)]
        if paging.style == "page":
            return [(paging.page_param, self._page), (paging.size_param, paging.size)]
        return [(paging.size_param, paging.size)]

    def _with(self, params: Sequence[tuple[str, Any]]) -> str:
        added = "&".join(f"{quote(name, safe='')}={quote(as_text(value), safe='')}" for name, value in params)
        return "&".join(part for part in (self._query, added) if part)

    def _below_service(self, url: str) -> tuple[str, str]:
        if not url.startswith(self._base_url + "/"):
            raise PermanentError(
                f"listing {self._kind}s: the next page's link {url.split('?')[0]!r} is not below the "
                "service's url; not followed, since the credentials would go with it",
                code="listing",
            )
        path, _, query = url.removeprefix(self._base_url).partition("?")
        return path, query

    def _row(self, item: Any) -> list[Any]:
        target_id = self._spec.id_path.get(item)
        if isinstance(target_id, int) and not isinstance(target_id, bool):
            target_id = str(target_id)
        if not isinstance(target_id, str) or not target_id:
            raise self._incomplete(f"a listed object has no id at {self._spec.id_path}")
        if target_id in self._seen:
            raise self._incomplete(f"object {target_id!r} came twice")
        self._seen.add(target_id)
        return [target_id, *(_listed(path.get(item), str(path)) for path in self._paths)]

    def _incomplete(self, why: str) -> TransientError:
        return TransientError(f"listing {self._kind}s: {why}; the listing is incomplete", code="listing")


def _listed(value: Any, where: str) -> Any:
    """A value as a listing page carries it: a scalar, a list of scalars, or None."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(v is None or isinstance(v, str | int | float | bool) for v in value):
        return value
    raise TransientError(f"listing: {where} holds a {type(value).__name__}, which cannot be matched on")
