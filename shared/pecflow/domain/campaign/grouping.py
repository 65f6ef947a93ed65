"""One PEC per group of rows ("raggruppamento per anagrafica"): with the manifest's `group_by`,
the rows sharing a value of that column (compared trimmed, ignoring capitals) make one message.
Its templates see the first row's columns, as without grouping, and `righe`: every row of the
group, in the CSV's order, for loops and sums.

Memory stays constant whatever the number of rows, the CSV sorted by the column or not: an
external sort. The rows are appended to a scratch sqlite database on disk as they are read
(`GroupSpill`), then sorted there by (group, row) with one covering index (sqlite's external
merge sort, its temporary files on disk too) and read back one group at a time, groups in the
order of their first row. In memory: sqlite's page cache (2 MiB), a batch of 1,000 rows being
written, and one group (at most MAX_GROUP_ROWS rows) being read. Disk: about twice the rows'
values. Chosen over a two-pass index of row offsets because the CSV may be an S3 stream (no
seeking) in a non-seekable encoding (UTF-16, a BOM, quoted fields spanning lines), and because
a second reading of the CSV would parse every row twice again where sqlite sorts once.
Pure domain code: a local scratch file, no AWS, no sockets.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pecflow.domain.campaign.manifest import Manifest
from pecflow.domain.campaign.recipients import Row
from pecflow.domain.campaign.rendering import row_values

RIGHE = "righe"  # the template variable holding the group's rows
MAX_GROUP_ROWS = 1000  # rows of one message (they travel on its job: a DynamoDB item is 400 KB at most)
MAX_GROUP_CHARS = 300_000  # characters of a group's values together, for the same reason


def group_key(value: str | None) -> str:
    """The value rows are grouped by: trimmed, capitals ignored (addresses compare so)."""
    return (value or "").strip().casefold()


def group_values(manifest: Manifest, rows: Iterable[Row | Mapping[str, str]]) -> dict[str, Any]:
    """What a group's templates render with: its first row's values and `righe`, the values of
    each of its rows (optional columns default to '' in each)."""
    defaults = dict.fromkeys(manifest.optional_keys, "")
    righe = [{**defaults, **(row if isinstance(row, Mapping) else row.values)} for row in rows]
    if not righe:
        raise ValueError("a group has at least one row")
    return {**righe[0], RIGHE: righe}


@dataclass(frozen=True, slots=True)
class Group:
    """The rows of one message. `rows` is empty when the group has more than the spill's
    `max_rows` (it is never loaded: the validation refuses it)."""

    key: str
    first_row: int
    count: int
    rows: tuple[Row, ...]
    sizes: tuple[int | None, ...] = ()  # each row's own attachment size, when the spill was told
    ok: bool = True  # False: a row of it has an error (GroupSpill.add's `ok`)

    @property
    def numbers(self) -> tuple[int, ...]:
        return tuple(row.number for row in self.rows)


def _scratch_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -2048")  # KiB: the memory sqlite may use, whatever the rows
    db.execute("PRAGMA temp_store = FILE")  # its sorts spill to disk too
    return db


_SEP = "\x00"  # between a row's values on disk: no CSV cell holds a NUL (the reader refuses it)
_BATCH = 1000


class GroupSpill:
    """Rows spilled to disk by group; `groups()` gives them back one group at a time, groups in
    the order of their first row, rows in the CSV's order. Lives in a new folder in `directory`
    (default: the system's temp folder), removed by `close()`.

    Rows are appended as they come (batched inserts, no lookup per row); `groups()` then sorts
    them on disk with one covering index on (group, row) (sqlite's external merge sort) and reads
    the groups in the order of their first row."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, max_rows: int = MAX_GROUP_ROWS):
        self.max_rows = max_rows
        self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
            prefix="pecflow-groups-", dir=directory
        )
        self.db = _scratch_db(os.path.join(self._tmp.name, "groups.sqlite3"))
        self.db.execute(
            "CREATE TABLE rows (key TEXT, row INTEGER, shape INTEGER, data TEXT, size INTEGER, ok INTEGER)"
        )
        self.db.execute("BEGIN")
        self._pending: list[tuple[str, int, int, str, int | None, int]] = []
        self._shapes: dict[tuple[str, ...], int] = {}  # the columns of a row: one, or a few when ragged
        self._sorted = False
        self.rows_count = 0
        self.groups_count = 0  # known once `groups()` has started

    def add(self, key: str, row: Row, size: int | None = None, *, ok: bool = True) -> None:
        """Spill `row` into the group `key`, with its own attachment's `size` when known; `ok`
        False: the row has an error (`groups(usable=True)` then leaves its group out)."""
        if self._sorted:
            raise RuntimeError("rows are added before the groups are read")
        names = tuple(row.values)
        shape = self._shapes.setdefault(names, len(self._shapes))
        data = _SEP.join(row.values.values())
        self._pending.append((key, row.number, shape, data, size, int(ok)))
        self.rows_count += 1
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def _sort(self) -> None:
        if self._sorted:
            return
        self._flush()
        self._sorted = True
        self.db.execute("CREATE INDEX rows_by_group ON rows (key, row, shape, data, size, ok)")
        self.db.execute(
            "CREATE TABLE groups AS SELECT key, min(row) AS first_row, count(*) AS count, "
            "sum(length(data)) AS chars, min(ok) AS ok FROM rows GROUP BY key"
        )
        self.db.execute("CREATE INDEX groups_by_first ON groups (first_row)")
        self.db.execute("COMMIT")
        self.groups_count = self.db.execute("SELECT count(*) FROM groups").fetchone()[0]

    def oversized(self) -> Iterator[tuple[str, int, int, int]]:
        """(key, first row, rows, characters) of each group over `max_rows` or MAX_GROUP_CHARS."""
        self._sort()
        yield from self.db.execute(
            "SELECT key, first_row, count, chars FROM groups WHERE count > ? OR chars > ? ORDER BY first_row",
            (self.max_rows, MAX_GROUP_CHARS),
        )

    def groups(self, *, after_row: int = 0, usable: bool = False) -> Iterator[Group]:
        """Every group whose first row is at or after `after_row`, one at a time; `usable`: only
        those with no row in error."""
        self._sort()
        names = {shape: names for names, shape in self._shapes.items()}
        found = self.db.cursor().execute(
            "SELECT g.key, g.first_row, g.count, g.chars, g.ok, r.row, r.shape, r.data, r.size "
            "FROM groups g JOIN rows r INDEXED BY rows_by_group ON r.key = g.key "
            f"WHERE g.first_row >= ? {'AND g.ok = 1 ' if usable else ''}ORDER BY g.first_row, r.row",
            (after_row,),
        )
        key: str | None = None
        first_row = count = 0
        skip = ok = False
        rows: list[Row] = []
        sizes: list[int | None] = []
        for group, first, total, chars, good, number, shape, data, size in found:
            if group != key:
                if key is not None:
                    yield Group(
                        key, first_row, count, () if skip else tuple(rows), () if skip else tuple(sizes), ok
                    )
                key, first_row, count, rows, sizes, ok = group, first, total, [], [], bool(good)
                skip = total > self.max_rows or chars > MAX_GROUP_CHARS  # never loaded
            if not skip:
                rows.append(Row(number, dict(zip(names[shape], data.split(_SEP)))))
                sizes.append(size)
        if key is not None:
            yield Group(key, first_row, count, () if skip else tuple(rows), () if skip else tuple(sizes), ok)

    def close(self) -> None:
        if self._tmp is not None:
            self.db.close()
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> GroupSpill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grouped(
    rows: Iterable[Row],
    column: str,
    *,
    directory: str | os.PathLike[str] | None = None,
    after_row: int = 0,
    max_rows: int = MAX_GROUP_ROWS,
) -> Iterator[Group]:
    """The groups of `rows` by the column key `column`, in constant memory (see the module)."""
    with GroupSpill(directory, max_rows=max_rows) as spill:
        for row in rows:
            spill.add(group_key(row.values.get(column)), row)
        yield from spill.groups(after_row=after_row)


class NoSuchRow(ValueError):
    """The row a test send names is not a row of the CSV; the message says which rows are."""


def message_of_row(
    manifest: Manifest, read: Callable[[], Iterable[Row]], number: int
) -> tuple[dict[str, Any], tuple[int, ...]]:
    """The values row `number` renders with as the campaign would send it, and the rows its
    message covers: the row alone, or, with group_by, every row of its group (a second reading
    of the CSV, `read()` again: constant memory, the group at most MAX_GROUP_ROWS rows).
    NoSuchRow when `number` is the header, a blank line or past the end."""
    if number < 2:
        raise NoSuchRow(f"row {number} is the header (or before it): the first recipient is on row 2")
    found: Row | None = None
    last = 1
    for row in read():
        last = row.number
        if row.number == number:
            found = row
            break
        if row.number > number:
            break
    if found is None:
        where = "a blank line" if number < last else f"past the last row ({last})"
        raise NoSuchRow(f"row {number} is {where}: name a row with a recipient")
    column = manifest.group_by_key
    if not column:
        return row_values(manifest, found), (number,)
    key = group_key(found.values.get(column))
    if not key:
        raise NoSuchRow(
            f"row {number} has no value in {manifest.group_by!r}, the column the rows are grouped by"
        )
    rows = []
    for row in read():
        if group_key(row.values.get(column)) == key:
            rows.append(row)
            if len(rows) > MAX_GROUP_ROWS:
                raise NoSuchRow(f"the message of row {number} would cover more than {MAX_GROUP_ROWS:,} rows")
    return group_values(manifest, rows), tuple(row.number for row in rows)
